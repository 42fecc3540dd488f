"""IJB-C (Maze et al., ICB 2018) in the insightface 1:1 verification layout.

Expected layout under ``ROOT`` (the folder given, e.g. ``<data-root>/ijbc``)::

    meta/ijbc_face_tid_mid.txt         <image name> <template id> <media id>     one line per image
    meta/ijbc_template_pair_label.txt  <template id 1> <template id 2> <0|1>     one line per pair (1 = genuine)
    meta/ijbc_name_5pts_score.txt      <image name> x1 y1 ... x5 y5 <detector score>
    loose_crop/<image name>

The three text files may also lie directly in ``ROOT`` (no ``meta/``).
Samples are the lines of ``ijbc_face_tid_mid.txt``, in file order; the
five-point landmarks (pixel coordinates in the loose crop) and detector
score are joined by image name.  Lines of the landmark file naming an image
not in the template file are ignored.

Subjects: these files say which template an image belongs to and whether a
template pair is genuine, but not *whose* a template is.  Without a subject
map the sample identity is therefore the template id (as a string), so two
templates of one person carry different "identities"; the template pairs and
labels are still exact, and the template is the resampling unit of
:func:`~fiqa_bench.metrics.templates.bootstrap_set_tar`.  If the subject of
each template is known from elsewhere (IJB-C's own protocol files carry a
subject id), pass ``subjects={template id: subject}``; it is checked against
the pair labels.  Image-level comparisons built from template-id identities
would be wrong (two templates of one person would count as impostors), so use
the template pairs, not the identities, for verification on IJB-C.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np

from fiqa_bench.data.base import DATASETS, Dataset, DatasetError, Sample, only_split_all
from fiqa_bench.metrics.templates import TemplatePairs

__all__ = ["IJBCTemplates", "load_ijbc", "TEMPLATE_FILE", "PAIR_FILE", "LANDMARK_FILE", "IMAGES"]

TEMPLATE_FILE = "ijbc_face_tid_mid.txt"
PAIR_FILE = "ijbc_template_pair_label.txt"
LANDMARK_FILE = "ijbc_name_5pts_score.txt"
IMAGES = "loose_crop"
EXPECTED_LAYOUT = (
    f"expected ROOT/meta/{TEMPLATE_FILE}, ROOT/meta/{PAIR_FILE}, ROOT/meta/{LANDMARK_FILE} "
    f"(or the three files directly in ROOT) and the images in ROOT/{IMAGES}/<image name>"
)


@dataclass(frozen=True)
class IJBCTemplates:
    """IJB-C templates, media, landmarks and template pairs, aligned with the dataset's samples.

    Attributes:
        template_ids: ``(T,)`` int64 IJB-C template ids, increasing; template index ``t``
            means ``template_ids[t]``.
        template_of_image: ``(N,)`` int64 template index of each sample.
        media_of_image: ``(N,)`` int64 IJB-C media id of each sample (the photo or video it comes from).
        landmarks: ``(N, 5, 2)`` float32 five points (x, y) in loose-crop pixels.
        detector_scores: ``(N,)`` float32 face detector confidence.
        pairs: :class:`~fiqa_bench.metrics.templates.TemplatePairs` in template indices, file order.
        template_subjects: ``(T,)`` subject of each template (str): the given
            subject map, else the template id as a string.
        subjects_known: whether ``template_subjects`` came from a subject map.
    """

    template_ids: np.ndarray
    template_of_image: np.ndarray
    media_of_image: np.ndarray
    landmarks: np.ndarray
    detector_scores: np.ndarray
    pairs: TemplatePairs
    template_subjects: np.ndarray
    subjects_known: bool

    @property
    def n_templates(self) -> int:
        return len(self.template_ids)

    @property
    def bootstrap_subjects(self) -> np.ndarray | None:
        """What to pass as ``template_subjects`` to ``bootstrap_set_tar``: None (template units) when unknown."""
        return self.template_subjects if self.subjects_known else None

    def to_dict(self) -> dict:
        return {"n_images": len(self.template_of_image), "n_templates": self.n_templates,
                "n_media": int(len(np.unique(self.media_of_image))), "subjects_known": self.subjects_known,
                **self.pairs.to_dict()}


def _meta_dir(root: Path) -> Path:
    if (root / "meta" / TEMPLATE_FILE).is_file() or (root / "meta").is_dir():
        return root / "meta"
    return root


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of the non-blank lines of ``path``, streamed."""
    if not path.is_file():
        raise DatasetError(f"IJB-C metadata file {path} is missing; {EXPECTED_LAYOUT}")
    with path.open("r", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if fields:
                yield number, fields


def _int(path: Path, number: int, fields: list[str], position: int, what: str) -> int:
    try:
        return int(fields[position])
    except ValueError:
        raise DatasetError(f"{path}: line {number}: {what} {fields[position]!r} is not an integer "
                           f"(line: {' '.join(fields)!r})") from None


def _pair_line_error(path: Path, number: int, fields: list[str], known: set[int], template_file: str) -> str | None:
    """The complaint about one line of the pair file, or None if it is well formed."""
    if len(fields) != 3:
        return (f"{path}: line {number} should be '<template id 1> <template id 2> <0|1>', "
                f"got {len(fields)} fields: {' '.join(fields)!r}")
    ids = []
    for position in (0, 1):
        try:
            ids.append(int(fields[position]))
        except ValueError:
            return (f"{path}: line {number}: template id {fields[position]!r} is not an integer "
                    f"(line: {' '.join(fields)!r})")
    if fields[2] not in ("0", "1"):
        return f"{path}: line {number}: label must be 0 or 1, got {fields[2]!r}"
    for tid in ids:
        if tid not in known:
            return f"{path}: line {number}: template {tid} has no image in {template_file}"
    if ids[0] == ids[1]:
        return f"{path}: line {number}: template {ids[0]} is paired with itself"
    return None


def _first_bad_pair_line(path: Path, known: set[int], template_file: str) -> str:
    for number, fields in _rows(path):
        message = _pair_line_error(path, number, fields, known, template_file)
        if message is not None:
            return message
    return f"{path} could not be read as '<template id 1> <template id 2> <0|1>' lines"


def _read_pairs(
    path: Path, template_ids: np.ndarray, template_file: str
) -> tuple[TemplatePairs, Callable[[int], int]]:
    """The pair file as :class:`TemplatePairs` (template indices) and a pair -> line number function.

    IJB-C lists 15.7 million pairs, so the file is parsed with ``numpy.loadtxt``;
    only when something is wrong is it scanned line by line, to name the first
    bad line.
    """
    if not path.is_file():
        raise DatasetError(f"IJB-C metadata file {path} is missing; {EXPECTED_LAYOUT}")
    known = {int(t) for t in template_ids}

    def fail() -> DatasetError:
        return DatasetError(_first_bad_pair_line(path, known, template_file))

    try:
        table = np.loadtxt(path, dtype=np.int64, ndmin=2, comments=None)
    except ValueError:
        raise fail() from None
    if table.size == 0:
        raise DatasetError(f"{path} lists no template pair")
    if table.shape[1] != 3:
        raise fail()
    a = np.searchsorted(template_ids, table[:, 0])
    b = np.searchsorted(template_ids, table[:, 1])
    a_ok = (a < len(template_ids)) & (template_ids[np.minimum(a, len(template_ids) - 1)] == table[:, 0])
    b_ok = (b < len(template_ids)) & (template_ids[np.minimum(b, len(template_ids) - 1)] == table[:, 1])
    if not (a_ok.all() and b_ok.all() and np.isin(table[:, 2], (0, 1)).all() and (a != b).all()):
        raise fail()

    def line_of_pair(k: int) -> int:
        """Line number of the ``k``-th pair (0-based), counting blank lines."""
        seen = -1
        with path.open("r", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                seen += bool(line.strip())
                if seen == k:
                    return number
        raise IndexError(k)

    return TemplatePairs(a.astype(np.int64), b.astype(np.int64), table[:, 2] == 1), line_of_pair


def load_ijbc(
    root: Path,
    *,
    subjects: Mapping[int, str] | None = None,
    check_images: bool = True,
) -> tuple[Dataset, IJBCTemplates]:
    """IJB-C's 1:1 templates from the insightface metadata layout (module docstring).

    Args:
        root: the IJB-C folder (holding ``meta/`` or the three files, and ``loose_crop/``).
        subjects: optional ``{template id: subject}`` for every template; without it
            the identity of a sample is its template id (see the module docstring).
        check_images: check that every listed image exists (one directory listing).

    Returns:
        ``(dataset, templates)``: a :class:`~fiqa_bench.data.base.Dataset` named
        ``"ijbc"`` with one sample per line of the template file (no image-level
        pairs), and the :class:`IJBCTemplates` aligned with it.

    Raises:
        DatasetError: a file or the image folder is missing, a line is malformed
            (file and line named), an image name repeats, an image is absent or has
            no landmarks, a pair names an unknown template, the subject map misses
            a template or contradicts a pair label.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"IJB-C not found: {root} is not a folder; {EXPECTED_LAYOUT}")
    meta = _meta_dir(root)
    template_path, pair_path, landmark_path = meta / TEMPLATE_FILE, meta / PAIR_FILE, meta / LANDMARK_FILE
    images = root / IMAGES

    names: list[str] = []
    tids: list[int] = []
    mids: list[int] = []
    seen: dict[str, int] = {}
    for number, fields in _rows(template_path):
        if len(fields) != 3:
            raise DatasetError(f"{template_path}: line {number} should be '<image name> <template id> <media id>', "
                               f"got {len(fields)} fields: {' '.join(fields)!r}")
        name = fields[0]
        if name in seen:
            raise DatasetError(f"{template_path}: line {number}: image {name!r} already listed on line {seen[name]}")
        seen[name] = number
        names.append(name)
        tids.append(_int(template_path, number, fields, 1, "template id"))
        mids.append(_int(template_path, number, fields, 2, "media id"))
    if not names:
        raise DatasetError(f"{template_path} lists no image")
    index = {name: i for i, name in enumerate(names)}

    n = len(names)
    landmarks = np.full((n, 5, 2), np.nan, dtype=np.float32)
    scores = np.full(n, np.nan, dtype=np.float32)
    found = np.zeros(n, dtype=bool)
    for number, fields in _rows(landmark_path):
        if len(fields) != 12:
            raise DatasetError(f"{landmark_path}: line {number} should be '<image name> x1 y1 ... x5 y5 <score>' "
                               f"(12 fields), got {len(fields)}: {' '.join(fields)!r}")
        i = index.get(fields[0])
        if i is None:
            continue
        if found[i]:
            raise DatasetError(f"{landmark_path}: line {number}: image {fields[0]!r} has landmarks twice")
        try:
            values = np.array([float(v) for v in fields[1:]], dtype=np.float64)
        except ValueError:
            raise DatasetError(f"{landmark_path}: line {number}: landmarks and score must be numbers, "
                               f"got {' '.join(fields[1:])!r}") from None
        if not np.isfinite(values).all():
            raise DatasetError(f"{landmark_path}: line {number}: non-finite value in {' '.join(fields[1:])!r}")
        landmarks[i] = values[:10].reshape(5, 2)
        scores[i] = values[10]
        found[i] = True
    if not found.all():
        missing = np.flatnonzero(~found)
        raise DatasetError(f"{landmark_path} has no line for image {names[missing[0]]!r} "
                           f"(listed on line {seen[names[missing[0]]]} of {template_path.name}; "
                           f"{len(missing)} images without landmarks)")

    template_ids, template_of_image = np.unique(np.array(tids, dtype=np.int64), return_inverse=True)
    template_of_image = template_of_image.ravel().astype(np.int64)

    pairs, line_of_pair = _read_pairs(pair_path, template_ids, template_path.name)
    if subjects is None:
        template_subjects = np.array([str(t) for t in template_ids])
    else:
        lacking = [int(t) for t in template_ids if int(t) not in subjects]
        if lacking:
            raise DatasetError(f"the subject map has no subject for template {lacking[0]} "
                               f"({len(lacking)} of {len(template_ids)} templates lack one)")
        template_subjects = np.array([str(subjects[int(t)]) for t in template_ids])
        same = template_subjects[pairs.first] == template_subjects[pairs.second]
        wrong = np.flatnonzero(same != pairs.genuine)
        if len(wrong):
            k = int(wrong[0])
            raise DatasetError(f"{pair_path}: line {line_of_pair(k)}: label {int(pairs.genuine[k])} for templates "
                               f"{template_ids[pairs.first[k]]} and {template_ids[pairs.second[k]]} contradicts "
                               f"the subject map ({template_subjects[pairs.first[k]].item()!r}, "
                               f"{template_subjects[pairs.second[k]].item()!r})")

    if check_images:
        if not images.is_dir():
            raise DatasetError(f"IJB-C image folder {images} does not exist; {EXPECTED_LAYOUT}")
        present = {entry.name for entry in os.scandir(images) if entry.is_file()}
        for name in names:
            exists = (images / name).is_file() if "/" in name else name in present
            if not exists:
                raise DatasetError(f"IJB-C image {images / name} listed on line {seen[name]} of "
                                   f"{template_path} is missing")

    identities = template_subjects[template_of_image]
    samples = tuple(Sample(images / name, str(identity)) for name, identity in zip(names, identities))
    templates = IJBCTemplates(template_ids, template_of_image, np.array(mids, dtype=np.int64), landmarks, scores,
                              pairs, template_subjects, subjects is not None)
    return Dataset(name="ijbc", root=images, samples=samples, templates=lambda: templates), templates


def _load(argument: str | None, data_root: Path, split: str | None, cache_dir: Path) -> Dataset:
    only_split_all("ijbc", split)
    root = Path(argument) if argument else data_root / "ijbc"
    if not root.is_dir():
        raise DatasetError(f"dataset not found at {root} (IJB-C: give --dataset ijbc:PATH or put it under the data "
                           f"root as ijbc/)")
    return load_ijbc(root)[0]


DATASETS.add("ijbc", _load, description="IJB-C 1:1 in the insightface layout (meta/, loose_crop/): <data root>/ijbc "
             "or ijbc:PATH")
