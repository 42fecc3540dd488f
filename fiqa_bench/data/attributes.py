"""Demographic labels of dataset images, for the bias protocol (SDD-FIQA Sec. 4.2.4, Fig. 5).

Every loader returns an :class:`AttributeTable`: for each attribute, a map
from the image path *relative to the dataset's root* (forward slashes, as
:meth:`Dataset.relative_paths` gives it) to a string label, the label order
to report groups in, and a report of everything that could not be parsed or
matched.  Nothing is guessed: a label that is missing, ambiguous or
contradictory is left out and reported.

Sources:

* UTKFace (Zhang, Song and Qi, CVPR 2017): the labels are in the file name,
  ``<data-root>/utkface/images/<age>_<gender>_<race>_<datetime>.jpg.chip.jpg``;
  gender 0 male, 1 female; race 0 White, 1 Black, 2 Asian, 3 Indian,
  4 Others; age in years.  Age groups (:data:`UTKFACE_AGE_BINS`): 0-19,
  20-39, 40-59, 60+ (20-year bins, the last open; the paper does not list
  its bins).  A name with other than four ``_``-separated fields is reported
  and gives *no* label (which field is missing cannot be told).  UTKFace has
  no identities: :func:`load_utkface` makes each image its own identity, so
  it supports per-image quality and distribution comparisons, not
  verification.
* LFW gender (Afifi and Abdelhamed 2017): ``<data-root>/lfw/gender/male_names.txt``
  and ``female_names.txt``, one image file name per line as published
  (Windows line endings, blank lines, a few names without ``.jpg``),
  matched to ``<Person>/<Person>_NNNN.jpg`` under ``lfw/images_deepfunneled``.
  An image in both lists gets no label; images in neither are reported.
* Any CSV file ``path,<attribute>[,<attribute>...]`` (:func:`load_attribute_csv`).
* Adience (Eidinger, Enbar and Hassner, TIFS 2014):
  ``<data-root>/adience/fold_<k>_data.txt`` (tab-separated, header
  :data:`ADIENCE_COLUMNS`) and the aligned faces
  ``faces/<user_id>/coarse_tilt_aligned_face.<face_id>.<original_image>``.
  Age is a range ``(25, 32)`` (label ``"25-32"``), a bare number (kept as
  given) or ``None``; gender ``m``/``f``, with ``u`` or empty = unknown.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Iterable, Mapping, Sequence

from fiqa_bench.data.base import DATASETS, IMAGE_SUFFIXES, Dataset, DatasetError, Sample, only_split_all

__all__ = [
    "ADIENCE_COLUMNS",
    "AttributeIssue",
    "AttributeTable",
    "UTKFACE_AGE_BINS",
    "UTKFACE_GENDERS",
    "UTKFACE_RACES",
    "age_bin_labels",
    "age_group",
    "lfw_gender_table",
    "load_adience",
    "load_attribute_csv",
    "load_utkface",
    "load_utkface_attributes",
    "parse_utkface_name",
]

ISSUE_KINDS = (
    "blank",          # an empty line in a list file (skipped)
    "missing-suffix", # a file name without ".jpg" (repaired, then matched)
    "malformed",      # a line or name that does not have the expected form (no label)
    "missing-field",  # a UTKFace name with a field missing (no label; which one is ambiguous)
    "invalid-value",  # a field outside its code book (no label for that attribute)
    "duplicate",      # the same image listed twice with the same label (kept once)
    "conflict",       # the same image given two different labels (no label)
    "unmatched",      # a listed image that is not in the dataset (dropped)
    "unlabelled",     # a dataset image that no list labels
    "missing-image",  # a row whose image file is absent (dropped)
)


@dataclass(frozen=True)
class AttributeIssue:
    """Something a loader could not parse, match or decide.

    Attributes:
        kind: one of :data:`ISSUE_KINDS`.
        source: the file (or folder) it was found in.
        line: 1-based line number in ``source``; None for file names and dataset images.
        text: the offending text (the line as read, or the file name / image path).
        detail: what is wrong and what was done about it.
    """

    kind: str
    source: str
    line: int | None
    text: str
    detail: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{where}: {self.kind}: {self.text!r}: {self.detail}"


@dataclass(frozen=True)
class AttributeTable:
    """Group labels of images, per attribute.

    Attributes:
        name: what was read, e.g. ``"utkface"``, ``"lfw-gender"``.
        labels: ``attribute -> {relative posix path -> label}``; an image
            without a label for an attribute is absent from its map.
        orders: ``attribute -> labels`` in the order to report groups (a code
            book's order, ages ascending).
        issues: what could not be parsed, matched or decided.
        n_unknown: ``attribute -> count`` of values given as explicitly
            unknown in the source (Adience ``u`` / ``None``, an empty CSV cell).
        studied: the attributes to report by default (empty: all).
    """

    name: str
    labels: Mapping[str, Mapping[str, str]]
    orders: Mapping[str, tuple[str, ...]]
    issues: tuple[AttributeIssue, ...] = ()
    n_unknown: Mapping[str, int] = field(default_factory=dict)
    studied: tuple[str, ...] = ()

    @property
    def attributes(self) -> tuple[str, ...]:
        return tuple(self.labels)

    @property
    def groups_to_study(self) -> tuple[str, ...]:
        """The attributes a bias study reports: :attr:`studied` when given (UTKFace's age groups rather than
        its ages in years), else every attribute."""
        return self.studied or self.attributes

    def _map(self, attribute: str) -> Mapping[str, str]:
        if attribute not in self.labels:
            raise ValueError(f"{self.name} has no attribute {attribute!r}; it has {list(self.labels)}")
        return self.labels[attribute]

    def label(self, attribute: str, path: str) -> str | None:
        """The label of one image (relative posix path), None if it has none."""
        return self._map(attribute).get(path)

    def for_paths(self, paths: Iterable[str], attribute: str) -> list[str | None]:
        """Labels aligned with ``paths`` (relative posix paths); None where unlabelled."""
        m = self._map(attribute)
        return [m.get(p) for p in paths]

    def for_dataset(self, dataset: Dataset, attribute: str) -> list[str | None]:
        """One label (or None) per sample of ``dataset``, keyed by :meth:`Dataset.relative_paths`."""
        return self.for_paths(dataset.relative_paths(), attribute)

    def counts(self, attribute: str) -> dict[str, int]:
        """Images per label, in :attr:`orders` order."""
        m = self._map(attribute)
        out = {label: 0 for label in self.orders.get(attribute, ())}
        for label in m.values():
            out[label] = out.get(label, 0) + 1
        return out

    def issue_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for issue in self.issues:
            out[issue.kind] = out.get(issue.kind, 0) + 1
        return out

    def issues_of(self, kind: str) -> list[AttributeIssue]:
        if kind not in ISSUE_KINDS:
            raise ValueError(f"unknown issue kind {kind!r}; kinds are {list(ISSUE_KINDS)}")
        return [i for i in self.issues if i.kind == kind]

    def to_dict(self) -> dict:
        """Counts, unknowns and every issue (not the per-image labels)."""
        return {
            "name": self.name,
            "attributes": {a: {"n_labelled": len(self.labels[a]), "counts": self.counts(a)} for a in self.labels},
            "n_unknown": dict(self.n_unknown),
            "issue_counts": self.issue_counts(),
            "issues": [i.to_dict() for i in self.issues],
        }


def _posix_key(text: str, source: str, line: int | None) -> str:
    """A relative posix path key (``./`` dropped); absolute paths and ``..`` are refused."""
    p = PurePosixPath(text.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts or str(p) == ".":
        where = f"{source}:{line}" if line is not None else source
        raise DatasetError(f"{where}: path {text!r} must be relative to the dataset root, without '..'")
    return p.as_posix()


# --------------------------------------------------------------------------- UTKFace

UTKFACE_DIR = "utkface"
UTKFACE_IMAGES = "images"
UTKFACE_GENDERS = {"0": "male", "1": "female"}
UTKFACE_RACES = {"0": "White", "1": "Black", "2": "Asian", "3": "Indian", "4": "Others"}
#: lower edges of the age groups: [0, 20), [20, 40), [40, 60), [60, inf) -> "0-19", "20-39", "40-59", "60+".
UTKFACE_AGE_BINS = (0, 20, 40, 60)
UTKFACE_LAYOUT = "expected <data-root>/utkface/images/<age>_<gender>_<race>_<datetime>.jpg.chip.jpg"


def age_bin_labels(edges: Sequence[int]) -> tuple[str, ...]:
    """``"lo-hi"`` labels of the bins ``[e_k, e_{k+1})``, the last ``"e+"``.

    Example:
        >>> age_bin_labels((0, 20, 40, 60))
        ('0-19', '20-39', '40-59', '60+')
    """
    e = _check_edges(edges)
    return tuple(f"{lo}-{hi - 1}" for lo, hi in zip(e[:-1], e[1:])) + (f"{e[-1]}+",)


def _check_edges(edges: Sequence[int]) -> tuple[int, ...]:
    e = tuple(edges)
    if not e or any(isinstance(v, bool) or not isinstance(v, int) for v in e):
        raise ValueError(f"age bin edges must be a non-empty sequence of integers, got {edges!r}")
    if e[0] != 0 or any(b <= a for a, b in zip(e[:-1], e[1:])):
        raise ValueError(f"age bin edges must start at 0 and increase strictly, got {edges!r}")
    return e


def age_group(age: int, edges: Sequence[int] = UTKFACE_AGE_BINS) -> str:
    """The label of the bin holding ``age`` (years, >= 0)."""
    e = _check_edges(edges)
    if age < 0:
        raise ValueError(f"age must be >= 0, got {age!r}")
    k = sum(1 for lo in e if age >= lo) - 1
    return age_bin_labels(e)[k]


def parse_utkface_name(name: str) -> tuple[int, str, str] | AttributeIssue:
    """``(age, gender, race)`` from a UTKFace file name, or the issue that prevents it.

    The label part is the name up to its first ``.``, split at ``_`` into
    ``age, gender, race, datetime``.
    """
    fields = name.split(".", 1)[0].split("_")
    if len(fields) != 4:
        return AttributeIssue(
            "missing-field", UTKFACE_IMAGES, None, name,
            f"{len(fields)} '_'-separated fields, expected <age>_<gender>_<race>_<datetime>; "
            "which field is missing is ambiguous, so the image gets no label",
        )
    age, gender, race, _ = fields
    if not age.isdigit() or int(age) > 150:
        return AttributeIssue("invalid-value", UTKFACE_IMAGES, None, name, f"age {age!r} is not a number of years")
    if gender not in UTKFACE_GENDERS:
        return AttributeIssue("invalid-value", UTKFACE_IMAGES, None, name, f"gender {gender!r} is not 0 or 1")
    if race not in UTKFACE_RACES:
        return AttributeIssue("invalid-value", UTKFACE_IMAGES, None, name, f"race {race!r} is not 0-4")
    return int(age), UTKFACE_GENDERS[gender], UTKFACE_RACES[race]


def _utkface_images(data_root: Path) -> tuple[Path, list[str]]:
    folder = Path(data_root) / UTKFACE_DIR / UTKFACE_IMAGES
    if not folder.is_dir():
        raise DatasetError(f"UTKFace not found: {folder} does not exist; {UTKFACE_LAYOUT}")
    names = sorted(p.name for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not names:
        raise DatasetError(f"no images found in {folder}; {UTKFACE_LAYOUT}")
    return folder, names


def load_utkface(data_root: Path) -> Dataset:
    """Every UTKFace image under ``<data_root>/utkface/images``, sorted by file name.

    UTKFace has no identity labels: each image is its own identity (its file
    name), so there are no genuine comparisons.  Labels come from
    :func:`load_utkface_attributes`.

    Raises:
        DatasetError: the folder does not exist or holds no image.
    """
    folder, names = _utkface_images(data_root)
    return Dataset("utkface", folder, tuple(Sample(folder / n, n) for n in names), has_identities=False,
                   attributes=partial(load_utkface_attributes, data_root))


def load_utkface_attributes(data_root: Path, *, age_bins: Sequence[int] = UTKFACE_AGE_BINS) -> AttributeTable:
    """Age (years), age group, gender and race of every UTKFace image, from the file names.

    Args:
        data_root: the folder holding ``utkface/images``.
        age_bins: lower edges of the age groups (start at 0, increasing).

    Returns:
        :class:`AttributeTable` ``"utkface"`` with attributes ``age``,
        ``age_group``, ``gender``, ``race``; names that cannot be read are
        issues and get no label at all.
    """
    edges = _check_edges(age_bins)
    folder, names = _utkface_images(data_root)
    labels: dict[str, dict[str, str]] = {"age": {}, "age_group": {}, "gender": {}, "race": {}}
    issues = []
    for name in names:
        parsed = parse_utkface_name(name)
        if isinstance(parsed, AttributeIssue):
            issues.append(AttributeIssue(parsed.kind, str(folder), None, parsed.text, parsed.detail))
            continue
        age, gender, race = parsed
        labels["age"][name] = str(age)
        labels["age_group"][name] = age_group(age, edges)
        labels["gender"][name] = gender
        labels["race"][name] = race
    orders = {
        "age": tuple(sorted(set(labels["age"].values()), key=int)),
        "age_group": age_bin_labels(edges),
        "gender": tuple(UTKFACE_GENDERS.values()),
        "race": tuple(UTKFACE_RACES.values()),
    }
    return AttributeTable("utkface", labels, orders, tuple(issues), studied=("age_group", "race", "gender"))


# --------------------------------------------------------------------------- LFW gender

_LFW_NAME = re.compile(r"(?P<person>.+)_(?P<number>\d{4})\.jpg")


def lfw_gender_table(
    lists: Mapping[str, Path], images: Iterable[str], *, images_source: str = "images"
) -> AttributeTable:
    """Gender labels from per-label name lists, matched to LFW relative image paths.

    Args:
        lists: ``label -> file`` with one ``<Person>_NNNN.jpg`` per line
            (CRLF or LF; surrounding white space ignored; blank lines and a
            missing ``.jpg`` are reported and tolerated).
        images: the dataset's relative paths ``<Person>/<Person>_NNNN.jpg``.
        images_source: where those images are, for the ``unlabelled`` issues.

    Returns:
        :class:`AttributeTable` ``"lfw-gender"`` with attribute ``gender``.
        Issues: ``blank``, ``missing-suffix``, ``malformed``, ``unmatched``
        (not an image of the dataset), ``duplicate`` (twice in one list),
        ``conflict`` (in two lists: no label), ``unlabelled`` (in no list).
    """
    known = set(images)
    found: dict[str, dict[str, tuple[str, int]]] = {}  # path -> label -> (file, first line)
    issues = []
    for label, path in lists.items():
        source = str(path)
        for number, raw in enumerate(Path(path).read_text(encoding="utf-8-sig").splitlines(), start=1):
            text = raw.strip()
            if not text:
                issues.append(AttributeIssue("blank", source, number, raw, "empty line, skipped"))
                continue
            repaired = text if text.lower().endswith(".jpg") else text + ".jpg"
            m = _LFW_NAME.fullmatch(repaired)
            if m is None:
                issues.append(AttributeIssue("malformed", source, number, text,
                                             "not <Person>_NNNN[.jpg]; no label"))
                continue
            if repaired != text:
                issues.append(AttributeIssue("missing-suffix", source, number, text, "'.jpg' appended"))
                text = repaired
            key = f"{m['person']}/{text}"
            if key not in known:
                issues.append(AttributeIssue("unmatched", source, number, text, f"{key} is not an LFW image"))
                continue
            seen = found.setdefault(key, {})
            if label in seen:
                first = seen[label]
                issues.append(AttributeIssue("duplicate", source, number, text,
                                             f"already listed on line {first[1]}; kept once"))
                continue
            seen[label] = (source, number)
    gender: dict[str, str] = {}
    for key in sorted(found):
        seen = found[key]
        if len(seen) > 1:
            where = ", ".join(f"{lab} ({Path(src).name}:{line})" for lab, (src, line) in seen.items())
            files = ", ".join(src for src, _ in seen.values())
            issues.append(AttributeIssue("conflict", files, None, key, f"listed as {where}; no label"))
            continue
        gender[key] = next(iter(seen))
    for key in sorted(known - found.keys()):
        issues.append(AttributeIssue("unlabelled", images_source, None, key, "in no list; no label"))
    return AttributeTable("lfw-gender", {"gender": gender}, {"gender": tuple(lists)}, tuple(issues))


# --------------------------------------------------------------------------- CSV


def load_attribute_csv(path: Path, *, root: Path | None = None, name: str | None = None) -> AttributeTable:
    """Labels from a CSV file ``path,<attribute>[,<attribute>...]`` (header row required).

    Paths are relative to the dataset root (``/`` or ``\\`` separators; a
    leading ``./`` is dropped).  An empty cell means unknown (counted in
    ``n_unknown``).  With ``root``, rows whose image does not exist under it
    are reported as ``unmatched`` and dropped.

    Raises:
        DatasetError: naming the file and line, for a missing or empty file, a
            header not starting with ``path`` or with empty / repeated
            attribute names, a row with the wrong number of fields, an empty,
            absolute or ``..`` path, or a path listed twice.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"attribute file {path} does not exist")
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    numbered = [(i, [c.strip() for c in r]) for i, r in enumerate(rows, start=1) if any(c.strip() for c in r)]
    if not numbered:
        raise DatasetError(f"{path} is empty; expected a header 'path,<attribute>[,...]'")
    line, header = numbered[0]
    if header[0].lower() != "path" or len(header) < 2:
        raise DatasetError(f"{path}:{line}: the header must be 'path,<attribute>[,...]', got {','.join(header)!r}")
    attributes = header[1:]
    if any(not a for a in attributes) or len(set(attributes)) != len(attributes) or "path" in attributes:
        raise DatasetError(f"{path}:{line}: attribute names must be non-empty and distinct, got {attributes}")
    labels: dict[str, dict[str, str]] = {a: {} for a in attributes}
    unknown = {a: 0 for a in attributes}
    first_line: dict[str, int] = {}
    issues = []
    for line, cells in numbered[1:]:
        if len(cells) != len(header):
            raise DatasetError(f"{path}:{line}: {len(cells)} fields, the header has {len(header)}: {cells}")
        if not cells[0]:
            raise DatasetError(f"{path}:{line}: empty path")
        key = _posix_key(cells[0], str(path), line)
        if key in first_line:
            raise DatasetError(f"{path}:{line}: {key} is listed again (first on line {first_line[key]})")
        first_line[key] = line
        if root is not None and not (Path(root) / key).is_file():
            issues.append(AttributeIssue("unmatched", str(path), line, cells[0], f"no file {Path(root) / key}"))
            continue
        for attribute, value in zip(attributes, cells[1:]):
            if value:
                labels[attribute][key] = value
            else:
                unknown[attribute] += 1
    orders = {a: tuple(sorted(set(m.values()))) for a, m in labels.items()}
    return AttributeTable(name or f"csv:{path.name}", labels, orders, tuple(issues), unknown)


# --------------------------------------------------------------------------- Adience

ADIENCE_DIR = "adience"
ADIENCE_FACES = "faces"
ADIENCE_FOLDS = 5
ADIENCE_COLUMNS = ("user_id", "original_image", "face_id", "age", "gender", "x", "y", "dx", "dy",
                   "tilt_ang", "fiducial_yaw_angle", "fiducial_score")
ADIENCE_GENDERS = {"m": "male", "f": "female"}
ADIENCE_LAYOUT = ("expected <data-root>/adience/fold_<k>_data.txt (k = 0..4) and "
                  "faces/<user_id>/coarse_tilt_aligned_face.<face_id>.<original_image>")
_ADIENCE_RANGE = re.compile(r"\(\s*(\d+)\s*,\s*(\d+)\s*\)")


def _adience_age(value: str) -> str | None:
    """``"(25, 32)"`` -> ``"25-32"``, ``"35"`` -> ``"35"``, ``"None"``/empty -> None; else ValueError."""
    if value in ("", "None"):
        return None
    m = _ADIENCE_RANGE.fullmatch(value)
    if m:
        return f"{int(m[1])}-{int(m[2])}"
    if value.isdigit():
        return str(int(value))
    raise ValueError(value)


def load_adience(
    data_root: Path, *, folds: Sequence[int] | None = None, identity: str = "user"
) -> tuple[Dataset, AttributeTable]:
    """Adience's aligned faces and their age, gender and fold labels.

    Identity: Adience publishes no person identities.  ``identity="user"``
    (default) uses ``user_id``, the Flickr album owner; an album can show
    several people (and ages), so "genuine" pairs by ``user_id`` are
    approximate.  ``identity="face"`` uses ``<user_id>/<face_id>``, the face
    number the fold files give within an album.

    Args:
        data_root: the folder holding ``adience/``.
        folds: the folds to read (0-4); default every ``fold_<k>_data.txt`` present.
        identity: ``"user"`` or ``"face"``.

    Returns:
        ``(dataset, table)``: samples sorted by path (root ``adience/faces``);
        the table has ``age`` (``"25-32"``, or a bare number as given),
        ``gender`` (``male``/``female``) and ``fold``.  Unknown values
        (``None``, ``u``, empty) are counted in ``n_unknown``; values outside
        these forms, rows whose image is absent, and repeated images are issues.

    Raises:
        DatasetError: "dataset not found at PATH" for a missing folder; a
            missing fold file; a wrong header or a row with the wrong number
            of fields or a non-integer ``face_id`` (file and line named).
    """
    if identity not in ("user", "face"):
        raise ValueError(f"identity must be 'user' or 'face', got {identity!r}")
    root = Path(data_root) / ADIENCE_DIR
    if not root.is_dir():
        raise DatasetError(f"Adience dataset not found at {root}; {ADIENCE_LAYOUT}")
    faces = root / ADIENCE_FACES
    if folds is None:
        fold_ids = [k for k in range(ADIENCE_FOLDS) if (root / f"fold_{k}_data.txt").is_file()]
        if not fold_ids:
            raise DatasetError(f"no fold_<k>_data.txt in {root}; {ADIENCE_LAYOUT}")
    else:
        fold_ids = sorted(set(int(k) for k in folds))
        for k in fold_ids:
            if not (root / f"fold_{k}_data.txt").is_file():
                raise DatasetError(f"Adience fold file {root / f'fold_{k}_data.txt'} is missing; {ADIENCE_LAYOUT}")
    samples: dict[str, str] = {}
    labels: dict[str, dict[str, str]] = {"age": {}, "gender": {}, "fold": {}}
    unknown = {"age": 0, "gender": 0, "fold": 0}
    first: dict[str, str] = {}
    issues = []
    for k in fold_ids:
        fold_file = root / f"fold_{k}_data.txt"
        source = str(fold_file)
        lines = fold_file.read_text(encoding="utf-8-sig").splitlines()
        header = tuple(c.strip() for c in lines[0].split("\t")) if lines else ()
        if header != ADIENCE_COLUMNS:
            raise DatasetError(f"{fold_file}:1: header must be the tab-separated columns {list(ADIENCE_COLUMNS)}, "
                               f"got {list(header)}")
        for number, raw in enumerate(lines[1:], start=2):
            if not raw.strip():
                continue
            cells = [c.strip() for c in raw.split("\t")]
            while len(cells) > len(ADIENCE_COLUMNS) and not cells[-1]:
                cells.pop()
            if len(cells) != len(ADIENCE_COLUMNS):
                raise DatasetError(f"{fold_file}:{number}: {len(cells)} tab-separated fields, expected "
                                   f"{len(ADIENCE_COLUMNS)}: {raw!r}")
            row = dict(zip(ADIENCE_COLUMNS, cells))
            if not row["user_id"] or not row["original_image"] or not row["face_id"].isdigit():
                raise DatasetError(f"{fold_file}:{number}: user_id and original_image must be non-empty and "
                                   f"face_id an integer, got {row['user_id']!r}, {row['original_image']!r}, "
                                   f"{row['face_id']!r}")
            key = f"{row['user_id']}/coarse_tilt_aligned_face.{row['face_id']}.{row['original_image']}"
            if key in first:
                issues.append(AttributeIssue("duplicate", source, number, key,
                                             f"already listed at {first[key]}; first kept"))
                continue
            first[key] = f"{fold_file.name}:{number}"
            if not (faces / key).is_file():
                issues.append(AttributeIssue("missing-image", source, number, key, f"no file {faces / key}; dropped"))
                continue
            samples[key] = row["user_id"] if identity == "user" else f"{row['user_id']}/{row['face_id']}"
            labels["fold"][key] = str(k)
            try:
                age = _adience_age(row["age"])
            except ValueError:
                issues.append(AttributeIssue("invalid-value", source, number, row["age"],
                                             "age is not '(lo, hi)', a number or None; no age label"))
            else:
                if age is None:
                    unknown["age"] += 1
                else:
                    labels["age"][key] = age
            gender = row["gender"]
            if gender in ADIENCE_GENDERS:
                labels["gender"][key] = ADIENCE_GENDERS[gender]
            elif gender in ("u", ""):
                unknown["gender"] += 1
            else:
                issues.append(AttributeIssue("invalid-value", source, number, gender,
                                             "gender is not m, f, u or empty; no gender label"))
    keys = sorted(samples)
    name = "adience" if folds is None else "adience:folds=" + ",".join(map(str, fold_ids))
    orders = {
        "age": tuple(sorted(set(labels["age"].values()), key=lambda a: tuple(int(v) for v in a.split("-")))),
        "gender": tuple(ADIENCE_GENDERS.values()),
        "fold": tuple(str(k) for k in fold_ids),
    }
    table = AttributeTable(name, labels, orders, tuple(issues), unknown,
                           studied=tuple(a for a in ("age", "gender") if a in labels))
    dataset = Dataset(name, faces, tuple(Sample(faces / key, samples[key]) for key in keys),
                      attributes=lambda: table)
    return dataset, table


def _utkface(argument: str | None, data_root: Path, split: str | None, cache_dir: Path) -> Dataset:
    only_split_all("utkface", split)
    return load_utkface(Path(argument) if argument else data_root)


def _adience(argument: str | None, data_root: Path, split: str | None, cache_dir: Path) -> Dataset:
    only_split_all("adience", split)
    return load_adience(Path(argument) if argument else data_root)[0]


DATASETS.add("utkface", _utkface, description="UTKFace aligned faces (age, gender, race in the names; no "
             "identities): <data root>/utkface or utkface:ROOT")
DATASETS.add("adience", _adience, description="Adience aligned faces with fold files: <data root>/adience or "
             "adience:ROOT")
