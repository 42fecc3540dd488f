"""Plain verification pair lists beside an image folder: ``pairs:LIST[@IMAGES]`` and ``lfw-view2[:ROOT]``.

``pairs:LIST[@IMAGES]`` reads the pair list ``LIST`` over the images under ``IMAGES`` (default: the folder
``LIST`` is in).  When the whole argument names an existing file it is ``LIST``, even if it holds an ``@``;
otherwise it is split at the first ``@`` whose left side is an existing file (or, failing that, at the last
``@``).  Two formats, told apart by the suffix:

* LFW's ``pairs.txt`` format (any suffix but ``.csv``)::

      <folds> <n>            (or just <n>: one fold)
      <Name> i j             a matched pair: IMAGES/<Name>/<Name>_NNNN.jpg (NNNN = i, then j, 4 digits)
      <A> i <B> j            a mismatched pair

  as :func:`fiqa_bench.data.lfw.parse_pairs` reads it (each fold holds ``n`` matched then ``n``
  mismatched lines); the fold is the file's.  Identities are the names (``has_identities=True``).

* CSV (``.csv``), read with :mod:`csv`::

      path1,path2,same[,fold]
      a/1.jpg,a/2.jpg,1,0
      /abs/b.png,c/9.png,no,3

  paths relative to ``IMAGES`` or absolute; ``same`` is 1/0, true/false or yes/no (any case); ``fold`` an
  integer >= 0 (default 0).  A first row whose third field is not such a boolean is a header and is skipped;
  blank rows are skipped.  A CSV names no people, so the identities are pseudo-identities joined by the
  genuine pairs, ``<LIST stem>-00000``, ... (:func:`~fiqa_bench.data.base.identities_from_pairs`, as a ``.bin``
  file's; ``has_identities=False``).
  An absolute path outside ``IMAGES`` is read where it is, but has no path relative to the dataset root
  (:meth:`~fiqa_bench.data.base.Dataset.relative_paths`, which only attribute tables use).

The samples are the distinct images the pairs name, sorted by path; the pairs refer to them by index, in the
file's order, as the one pair list ``"pairs"`` the dataset is evaluated on (a pair-list set).  Loaders do not
decode images; every listed image must be a file.  A pair listed again (the same two images, either way
round) is kept as given and counted in the dataset's notes; listed again with the other label it is an error.
Every :class:`~fiqa_bench.data.base.DatasetError` names the file and the line: a missing list, a missing image
(its path), a malformed line, a pair of an image with itself, an unknown ``same`` value, an empty list.

``lfw-view2[:ROOT]`` is LFW View 2 (Huang et al., 2007): ``ROOT/pairs.txt`` (6,000 pairs, 3,000 genuine, in 10
folds) over ``ROOT/images_deepfunneled``, ``ROOT`` being the LFW folder (default ``<data root>/lfw``), read by
the same function as ``pairs:ROOT/pairs.txt@ROOT/images_deepfunneled`` (7,701 distinct images of 4,281 people).
It can be cross-fitted: the View 1 people split (``peopleDevTest.txt``/``peopleDevTrain.txt``) is
identity-disjoint and holds all 5,749 people, so a trained method scores the images of peopleDevTest people
(2,286 of View 2's images) with its model trained on ``lfw:devtrain`` and those of peopleDevTrain people
(5,415) with the one trained on ``lfw:devtest`` (:func:`view2_cross_fitting`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from fiqa_bench.data.base import (
    DATASETS,
    CrossFitting,
    Dataset,
    DatasetError,
    Pair,
    Sample,
    identities_from_pairs,
    only_split_all,
)
from fiqa_bench.data.lfw import (
    CROSS_FIT,
    CROSS_FIT_NOTE,
    IMAGES,
    SPLIT_FILES,
    SPLIT_PARTS,
    image_name,
    parse_pairs,
    parse_people,
)

#: The name of the one pair list of a ``pairs:`` dataset (its :attr:`~fiqa_bench.data.base.Dataset.pair_list`).
PAIR_LIST = "pairs"
#: ``same`` values of a CSV pair list (lower case) -> whether the pair is genuine.
BOOLEANS = {"1": True, "0": False, "true": True, "false": False, "yes": True, "no": False}
FORMATS = ("expected LFW's pairs.txt format ('<folds> <n>' or '<n>', then '<Name> i j' and '<A> i <B> j' lines) "
           "or a .csv of 'path1,path2,same[,fold]' rows")


@dataclass(frozen=True)
class PairRow:
    """One line of a pair list: two image paths, whether they show one person, the fold, the line number."""

    first: Path
    second: Path
    genuine: bool
    fold: int
    line: int


def read_lfw_format(list_file: Path, images: Path) -> tuple[list[PairRow], dict[Path, str]]:
    """The rows of an LFW-format pair list, and each image's person (the name it is listed under).

    Raises:
        DatasetError: the file is malformed (:func:`~fiqa_bench.data.lfw.parse_pairs`).
    """
    parsed = parse_pairs(list_file)
    lines = [n for n, text in enumerate(list_file.read_text().splitlines(), start=1) if text.strip()][1:]
    rows, person = [], {}
    for (a, i, b, j, fold), line in zip(parsed, lines):
        first, second = images / image_name(a, i), images / image_name(b, j)
        person[first], person[second] = a, b
        rows.append(PairRow(first, second, a == b, fold, line))
    return rows, person


def read_csv_format(list_file: Path, images: Path) -> list[PairRow]:
    """The rows of a ``path1,path2,same[,fold]`` CSV pair list (see the module docstring).

    Raises:
        DatasetError: a row has other than 3 or 4 fields, an empty path, an unknown ``same`` value or a fold
            that is not an integer >= 0 (the file and line are named).
    """
    rows: list[PairRow] = []
    first_row = True
    with list_file.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        for fields in reader:
            fields = [f.strip() for f in fields]
            if not any(fields):
                continue
            where = f"{list_file}: line {reader.line_num}"
            if first_row and len(fields) in (3, 4) and fields[2].lower() not in BOOLEANS:
                first_row = False  # a header row
                continue
            first_row = False
            if len(fields) not in (3, 4) or not fields[0] or not fields[1]:
                raise DatasetError(f"{where} is not a pair: {fields!r}; expected 'path1,path2,same[,fold]'")
            same = fields[2].lower()
            if same not in BOOLEANS:
                raise DatasetError(f"{where}: unknown 'same' value {fields[2]!r}; expected one of "
                                   f"{', '.join(BOOLEANS)} (any case)")
            fold = fields[3] if len(fields) == 4 else "0"
            if not fold.isdecimal():
                raise DatasetError(f"{where}: the fold {fold!r} is not an integer >= 0")
            first, second = (Path(p) if Path(p).is_absolute() else images / p for p in fields[:2])
            rows.append(PairRow(first, second, BOOLEANS[same], int(fold), reader.line_num))
    return rows


def load_pair_list(list_file: Path, images: Path | None = None) -> Dataset:
    """The pair list ``list_file`` (LFW's format, or ``.csv``) over the images under ``images``.

    Args:
        list_file: the pair list.
        images: the folder its image paths are under (default: ``list_file``'s folder).

    Returns:
        A pair-list set named ``pairs:<file name>``: the distinct images sorted by path, the pairs
        (``pairs["pairs"]``, in the file's order) and a note counting pairs listed more than once.

    Raises:
        DatasetError: see the module docstring; every message names the file (and line).
    """
    list_file = Path(list_file).expanduser()
    images = list_file.parent if images is None else Path(images).expanduser()
    if not list_file.is_file():
        raise DatasetError(f"pair list {list_file} does not exist; {FORMATS}")
    if not images.is_dir():
        raise DatasetError(f"image folder {images} of pair list {list_file} does not exist")
    csv_format = list_file.suffix.lower() == ".csv"
    if csv_format:
        rows, person = read_csv_format(list_file, images), {}
    else:
        rows, person = read_lfw_format(list_file, images)
    if not rows:
        raise DatasetError(f"pair list {list_file} holds no pair; {FORMATS}")
    first_line: dict[Path, int] = {}
    seen: dict[frozenset[Path], PairRow] = {}
    duplicates = 0
    for row in rows:
        if row.first == row.second:
            raise DatasetError(f"{list_file}: line {row.line} pairs the image {row.first} with itself")
        for path in (row.first, row.second):
            first_line.setdefault(path, row.line)
        key = frozenset((row.first, row.second))
        if key in seen:
            if seen[key].genuine != row.genuine:
                raise DatasetError(f"{list_file}: line {row.line} lists the pair of line {seen[key].line} again "
                                   f"with the other label ({'same' if row.genuine else 'different'} person)")
            duplicates += 1
        else:
            seen[key] = row
    for path, line in first_line.items():
        if not path.is_file():
            raise DatasetError(f"{list_file}: line {line}: image {path} does not exist")
    paths = sorted(first_line)
    index = {path: i for i, path in enumerate(paths)}
    pairs = tuple(Pair(index[r.first], index[r.second], r.genuine, r.fold) for r in rows)
    if csv_format:
        identities = identities_from_pairs(len(paths), pairs, prefix=f"{list_file.stem}-")
    else:
        identities = [person[path] for path in paths]
    notes = (f"{list_file}: {duplicates} pair{'s' if duplicates != 1 else ''} listed more than once, kept as "
             f"given",) if duplicates else ()
    return Dataset(name=f"pairs:{list_file.name}", root=images,
                   samples=tuple(Sample(p, identity) for p, identity in zip(paths, identities)),
                   pairs={PAIR_LIST: pairs}, notes=notes, has_identities=not csv_format, pair_list=PAIR_LIST)


def split_argument(argument: str) -> tuple[Path, Path | None]:
    """``LIST[@IMAGES]`` -> (LIST, IMAGES or None): the whole argument when it is a file, else split at the
    first ``@`` whose left side is a file, else at the last ``@`` (so that a missing list is named)."""
    if Path(argument).expanduser().is_file() or "@" not in argument:
        return Path(argument), None
    at = [i for i, char in enumerate(argument) if char == "@"]
    cut = next((i for i in at if Path(argument[:i]).expanduser().is_file()), at[-1])
    return Path(argument[:cut]), Path(argument[cut + 1:]) if argument[cut + 1:] else None


def view2_cross_fitting(dataset: Dataset, lfw_folder: Path) -> CrossFitting:
    """``dataset``'s images (LFW people) split by the View 1 people files, each part with the dataset its
    scoring model was trained on (:data:`~fiqa_bench.data.lfw.CROSS_FIT`): peopleDevTest people's images
    first (scored by ``lfw:devtrain``'s model), then peopleDevTrain people's; each part in dataset order.

    Raises:
        DatasetError: a people file is missing, a person is in both, or an image's person is in neither.
    """
    part_of: dict[str, str] = {}
    for split in SPLIT_PARTS["all"]:
        people_file = lfw_folder / SPLIT_FILES[split]
        if not people_file.is_file():
            raise DatasetError(f"LFW View 1 people file {people_file} is missing; cross-fitting {dataset.name} "
                               f"needs {SPLIT_FILES['devtrain']} and {SPLIT_FILES['devtest']}")
        for person, _ in parse_people(people_file):
            if part_of.setdefault(person, split) != split:
                raise DatasetError(f"{person} is listed in both {SPLIT_FILES['devtrain']} and "
                                   f"{SPLIT_FILES['devtest']} under {lfw_folder}")
    unknown = sorted({s.identity for s in dataset.samples} - part_of.keys())
    if unknown:
        raise DatasetError(f"{len(unknown)} people of {dataset.name} are in neither View 1 people file under "
                           f"{lfw_folder} (e.g. {unknown[0]}), so it cannot be cross-fitted")
    folds = []
    for split in SPLIT_PARTS["all"]:
        samples = tuple(s for s in dataset.samples if part_of[s.identity] == split)
        part = Dataset(name=f"{dataset.name}[{Path(SPLIT_FILES[split]).stem}]", root=dataset.root, samples=samples)
        folds.append((part, CROSS_FIT[split]))
    counts = "; ".join(f"{len(part)} images of {part.name} scored by the model trained on {trained_on}"
                       for part, trained_on in folds)
    return CrossFitting(tuple(folds), f"{CROSS_FIT_NOTE} ({counts}.)")


def load_lfw_view2(lfw_folder: Path) -> Dataset:
    """LFW View 2 (``lfw_folder/pairs.txt`` over ``lfw_folder/images_deepfunneled``) as a pair-list set named
    ``lfw-view2``, cross-fitted over the View 1 people split (:func:`view2_cross_fitting`).

    Raises:
        DatasetError: ``pairs.txt`` or the image folder is missing, or as :func:`load_pair_list`.
    """
    lfw_folder = Path(lfw_folder).expanduser()
    list_file = lfw_folder / "pairs.txt"
    if not list_file.is_file() or not (lfw_folder / IMAGES).is_dir():
        raise DatasetError(f"LFW View 2 not found: expected {list_file} and {lfw_folder / IMAGES}/<Name>/"
                           f"<Name>_NNNN.jpg (lfw-view2:ROOT with ROOT the LFW folder, default <data root>/lfw; "
                           f"set --data-root or $FIQA_BENCH_DATA)")
    dataset = replace(load_pair_list(list_file, lfw_folder / IMAGES), name="lfw-view2")
    return replace(dataset, cross_fitting=partial(view2_cross_fitting, dataset, lfw_folder))


def _load_pairs(argument: str | None, data_root: Path, split: str | None, cache_dir: Path) -> Dataset:
    if not argument:
        raise DatasetError("'pairs' needs a pair list: --dataset pairs:LIST[@IMAGES]")
    only_split_all("pairs", split)
    return load_pair_list(*split_argument(argument))


def _load_view2(argument: str | None, data_root: Path, split: str | None, cache_dir: Path) -> Dataset:
    only_split_all("lfw-view2", split)
    return load_lfw_view2(Path(argument) if argument else Path(data_root) / "lfw")


DATASETS.add("pairs", _load_pairs, description="a pair list over an image folder: pairs:LIST[@IMAGES], LIST in "
             "LFW's pairs.txt format or a .csv of path1,path2,same[,fold]")
DATASETS.add("lfw-view2", _load_view2, description="LFW View 2: 6,000 pairs in 10 folds over images_deepfunneled, "
             "cross-fitted over View 1's people; lfw-view2:ROOT for another LFW folder")
