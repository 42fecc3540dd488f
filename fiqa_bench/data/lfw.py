"""Labeled Faces in the Wild (Huang et al., 2007), deep-funneled images.

Expected layout under ``<data-root>/lfw/``::

    images_deepfunneled/<Name>/<Name>_NNNN.jpg
    lfw-names.txt        <Name>\\t<count>         (all 5,749 people)
    peopleDevTrain.txt   <n> then <Name>\\t<count> (View 1 training people)
    peopleDevTest.txt    <n> then <Name>\\t<count> (View 1 test people)
    pairs.txt            View 2: "<folds>\\t<n>" then per fold n matched
                         "<Name> i j" and n mismatched "<A> i <B> j" lines
    pairsDevTrain.txt    View 1: "<n>" then n matched and n mismatched lines
    pairsDevTest.txt     likewise

Splits: ``all`` (13,233 images), ``devtrain`` (4,038 people, 9,525 images),
``devtest`` (1,711 people, 3,708 images).  Pair lists: ``view2``
(6,000 pairs, 10 folds), ``devtrain``, ``devtest``; a pair whose images are
not in the chosen split is left out.

Cross-fitting: the View 1 people split is identity-disjoint and holds all
5,749 people, so a trained method scores the peopleDevTest images with its
model trained on peopleDevTrain and the peopleDevTrain images with the one
trained on peopleDevTest (:data:`CROSS_FIT`): no image meets a model trained
on its identity.  Attributes: gender, from ``lfw/gender/``
(:func:`load_lfw_gender`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from fiqa_bench.data.attributes import AttributeTable, lfw_gender_table
from fiqa_bench.data.base import DATASETS, CrossFitting, Dataset, DatasetError, Pair, Sample

IMAGES = "images_deepfunneled"
SPLIT_FILES = {"all": "lfw-names.txt", "devtrain": "peopleDevTrain.txt", "devtest": "peopleDevTest.txt"}
PAIR_FILES = {"view2": "pairs.txt", "devtrain": "pairsDevTrain.txt", "devtest": "pairsDevTest.txt"}
#: View 1 split scored -> the dataset its scoring model was trained on.
CROSS_FIT = {"devtest": "lfw:devtrain", "devtrain": "lfw:devtest"}
#: The View 1 splits whose images make up each split.
SPLIT_PARTS = {"all": ("devtest", "devtrain"), "devtest": ("devtest",), "devtrain": ("devtrain",)}
CROSS_FIT_NOTE = ("Trained methods are cross-fitted over LFW's identity-disjoint View 1 people split: no image is "
                  "scored by a model trained on its identity.")
EXPECTED_LAYOUT = (
    "expected <data-root>/lfw/images_deepfunneled/<Name>/<Name>_NNNN.jpg plus lfw-names.txt, "
    "peopleDevTrain.txt, peopleDevTest.txt and pairs*.txt (set --data-root or $FIQA_BENCH_DATA)"
)


def image_name(person: str, number: int) -> str:
    """``<Name>/<Name>_NNNN.jpg`` for the ``number``-th (1-based) image of ``person``."""
    return f"{person}/{person}_{number:04d}.jpg"


def parse_people(path: Path) -> list[tuple[str, int]]:
    """(name, image count) rows of ``lfw-names.txt`` or ``peopleDev*.txt``.

    The peopleDev files begin with a line holding the number of rows; that
    count is checked.
    """
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    declared = None
    if lines and len(lines[0]) == 1:
        declared = int(lines[0][0])
        lines = lines[1:]
    rows = []
    for number, fields in enumerate(lines, start=1):
        if len(fields) != 2:
            raise DatasetError(f"{path}: line {number} should be '<Name> <count>', got {fields!r}")
        rows.append((fields[0], int(fields[1])))
    if declared is not None and declared != len(rows):
        raise DatasetError(f"{path}: header says {declared} people, found {len(rows)}")
    return rows


def parse_pairs(path: Path) -> list[tuple[str, int, str, int, int]]:
    """(name_a, number_a, name_b, number_b, fold) rows of an LFW pairs file.

    The header is ``<folds> <n>`` (View 2: ``10 300``; each fold lists ``n``
    matched then ``n`` mismatched pairs) or just ``<n>`` (View 1: one fold).
    """
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    if not lines:
        raise DatasetError(f"{path} is empty")
    try:
        header = [int(v) for v in lines[0]]
    except ValueError:
        raise DatasetError(f"{path}: the first line must be '<folds> <pairs per half-fold>' or "
                           f"'<pairs per half>', got {lines[0]!r}") from None
    per_fold = 2 * header[1] if len(header) == 2 else len(lines) - 1
    if len(header) == 2 and header[0] * per_fold != len(lines) - 1:
        raise DatasetError(f"{path}: the header announces {header[0]} folds of {per_fold} pairs, "
                           f"but {len(lines) - 1} pairs follow")
    rows = []
    for number, fields in enumerate(lines[1:], start=2):
        fold = (number - 2) // per_fold
        if len(fields) not in (3, 4) or not (fields[1].isdecimal() and fields[-1].isdecimal()):
            raise DatasetError(f"{path}: line {number} is not a pair ('<Name> i j' or '<A> i <B> j'): {fields!r}")
        rows.append((fields[0], int(fields[1]), fields[0] if len(fields) == 3 else fields[2], int(fields[-1]), fold))
    return rows


def load_lfw(data_root: Path, split: str = "all") -> Dataset:
    """LFW restricted to ``split`` ("all", "devtrain" or "devtest").

    Raises:
        DatasetError: the folder or a protocol file is missing, an image
            listed by the protocol files is absent, or ``split`` is unknown.
    """
    if split not in SPLIT_FILES:
        raise DatasetError(f"unknown LFW split {split!r}; choose one of {sorted(SPLIT_FILES)}")
    root = Path(data_root) / "lfw"
    images = root / IMAGES
    if not images.is_dir():
        raise DatasetError(f"LFW not found: {images} does not exist; {EXPECTED_LAYOUT}")
    people_file = root / SPLIT_FILES[split]
    if not people_file.is_file():
        raise DatasetError(f"LFW protocol file {people_file} is missing; {EXPECTED_LAYOUT}")
    samples = []
    for person, count in sorted(parse_people(people_file)):
        for number in range(1, count + 1):
            path = images / image_name(person, number)
            if not path.is_file():
                raise DatasetError(f"LFW image {path} listed in {people_file.name} is missing")
            samples.append(Sample(path, person))
    index = {s.path.relative_to(images).as_posix(): i for i, s in enumerate(samples)}
    pairs = {}
    for pair_name, file_name in PAIR_FILES.items():
        pair_file = root / file_name
        if not pair_file.is_file():
            continue
        kept = []
        for a, i, b, j, fold in parse_pairs(pair_file):
            first, second = index.get(image_name(a, i)), index.get(image_name(b, j))
            if first is not None and second is not None:
                kept.append(Pair(first, second, a == b, fold))
        pairs[pair_name] = tuple(kept)
    return Dataset(name=f"lfw:{split}", root=images, samples=tuple(samples), pairs=pairs,
                   cross_fitting=partial(cross_fitting, Path(data_root), split),
                   attributes=partial(load_lfw_gender, Path(data_root)))


def cross_fitting(data_root: Path, split: str) -> CrossFitting:
    """The View 1 parts of ``split``, each with the split its scoring model was trained on (:data:`CROSS_FIT`)."""
    return CrossFitting(tuple((load_lfw(data_root, part), CROSS_FIT[part]) for part in SPLIT_PARTS[split]),
                        CROSS_FIT_NOTE)


#: Gender label -> its name list under ``lfw/gender/`` (Afifi and Abdelhamed 2017).
LFW_GENDER_FILES = {"male": "male_names.txt", "female": "female_names.txt"}


def load_lfw_gender(data_root: Path) -> AttributeTable:
    """LFW gender labels (``male``/``female``) for ``<data_root>/lfw/images_deepfunneled``.

    The image set is every ``<Person>/<file>.jpg`` on disk, as :func:`load_lfw`
    lists it.  See :func:`lfw_gender_table` for the matching rules and issues.

    Raises:
        DatasetError: the image folder or a name list is missing.
    """
    root = Path(data_root) / "lfw"
    images = root / IMAGES
    if not images.is_dir():
        raise DatasetError(f"LFW not found: {images} does not exist")
    lists = {label: root / "gender" / name for label, name in LFW_GENDER_FILES.items()}
    for path in lists.values():
        if not path.is_file():
            raise DatasetError(f"LFW gender list {path} is missing; expected lfw/gender/male_names.txt "
                               "and female_names.txt")
    paths = [p.relative_to(images).as_posix() for p in images.glob("*/*.jpg")]
    return lfw_gender_table(lists, paths, images_source=str(images))


def _load(argument: str | None, data_root: Path, split: str | None, cache_dir: Path) -> Dataset:
    if argument and argument not in SPLIT_FILES:
        raise DatasetError(f"'lfw' takes a split after ':' ({', '.join(sorted(SPLIT_FILES))}), got {argument!r}")
    if argument and split not in (None, argument):
        raise DatasetError(f"lfw:{argument} names split {argument!r} but --split says {split!r}; give one")
    return load_lfw(data_root, argument or split or "all")


DATASETS.add("lfw", _load, description="Labeled Faces in the Wild, deep-funneled; splits all/devtrain/devtest "
             "(--split, or lfw:devtrain)")
