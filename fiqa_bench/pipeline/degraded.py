"""Degraded copies of a labelled dataset's probe images, made as a camera would make them, with a manifest.

For the ``degrade`` protocol: of a dataset (default LFW peopleDevTest) every person with two or more images
gives a *probe* (the first image in dataset order) and a clean *reference* (the second); ``n_probes`` of those
people are kept, spread evenly over the name-sorted list (no randomness).  Each probe image file is read and
degraded by every factor of :mod:`fiqa_bench.faces.degradations` at each of its five levels, **before** any
face detection (the protocol then detects and aligns every copy as it would a photo), with a seed derived
from ``(seed, probe file, factor)`` (:func:`copy_seed`): a copy never depends on which other copies are
made, and the levels of one factor differ only in the physical parameter.
Occlusions are placed from dlib's five landmarks of the *clean* probe.

The copies are written as PNG (lossless: a JPEG copy keeps exactly the artefacts its quality made) to::

    <cache>/datasets/degraded/<digest>/<probe person>/<factor>-<level>.png
    <cache>/datasets/degraded/<digest>/manifest.csv     written last

where the digest covers the probes' file contents, the factors and levels, the seed and :data:`VERSION`.
The clean probe and the reference are the dataset's own files, untouched (severity 0 is the clean image byte
for byte).  A folder whose manifest exists is reused; an interrupted one is completed (each copy is written
whole through a temporary file, and a copy already there is kept).

The manifest has one row per image of the degraded set: ``path, identity, role`` (``reference``, ``probe``),
``probe`` (the probe's number), ``factor`` (``clean`` for the clean probe and the reference), ``severity``
(0 for clean, 1-5), ``parameter``, ``value`` (the physical parameter), ``extra`` (JSON: what the operator drew,
e.g. a motion blur's angle), ``seed``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from fiqa_bench.data import Dataset, DatasetError, Sample
from fiqa_bench.faces.degradations import FACTORS, Factor
from fiqa_bench.faces.io import load_rgb
from fiqa_bench.pipeline.cache import atomic_write, file_lock
from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.pipeline.embedding import dataset_landmarks
from fiqa_bench.pipeline.hashing import sha256_json

#: Bumped with any change here or in :mod:`fiqa_bench.faces.degradations` that could change a copy's pixels.
VERSION = 1
MANIFEST = "manifest.csv"
COLUMNS = ("path", "identity", "role", "probe", "factor", "severity", "parameter", "value", "extra", "seed")


@dataclass(frozen=True)
class DegradedSet:
    """The references, the clean probes and their degraded copies, as one dataset, and what each image is.

    Attributes:
        dataset: every image (identity = the person), references first, then per probe its clean image and
            its copies in factor and level order.
        rows: the manifest rows (dicts with :data:`COLUMNS`), aligned with ``dataset.samples``.
        folder: where the copies are.
        skipped: probes left out (unreadable images), with why.
    """

    dataset: Dataset
    rows: tuple[dict, ...]
    folder: Path
    skipped: tuple[str, ...]

    def column(self, name: str) -> np.ndarray:
        return np.array([row[name] for row in self.rows])


def choose_probes(dataset: Dataset, n_probes: int) -> list[tuple[int, int]]:
    """``(probe, reference)`` sample indices: of each person with two or more images, the first and the second
    in dataset order; ``n_probes`` people spread evenly over the name-sorted list (all when there are fewer).

    Raises:
        DatasetError: no person has two images.
    """
    first: dict[str, list[int]] = {}
    for index, sample in enumerate(dataset.samples):
        first.setdefault(sample.identity, []).append(index)
    people = sorted(name for name, indices in first.items() if len(indices) >= 2)
    if not people:
        raise DatasetError(f"{dataset.name}: no person has two images, so no probe has a clean reference")
    if n_probes < len(people):
        picks = np.linspace(0, len(people) - 1, n_probes).round().astype(int)
        people = [people[i] for i in picks]
    return [(first[name][0], first[name][1]) for name in people]


def copy_seed(seed: int, probe_key: str, factor: str) -> int:
    """The seed of a probe's copies by one factor: from the run's seed, the probe file's content key and the
    factor, not the level, so that what the operator draws (a motion blur's angle, a rotation's sign, a
    patch's place) is the same at every level and only the physical parameter grows."""
    return int(sha256_json([seed, probe_key, factor])[:12], 16)


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, buffer = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode {path} as PNG")
    with atomic_write(path, "wb") as fh:
        fh.write(buffer.tobytes())


def make_degraded_set(dataset: Dataset, context: RunContext, n_probes: int = 300,
                      factors: Sequence[str] | None = None, seed: int = 0) -> DegradedSet:
    """The degraded set of ``dataset`` (module docstring), made in ``context``'s cache or read from it.

    Args:
        dataset: a labelled dataset (people with two or more images give the probes).
        context: cache and alignment (the clean probes' landmarks come from its detector).
        n_probes: how many people give a probe.
        factors: factor names (default: all, in :data:`~fiqa_bench.faces.degradations.FACTORS` order).
        seed: the run's seed.
    """
    chosen = [FACTORS[name] for name in (factors or list(FACTORS))]
    pairs = choose_probes(dataset, n_probes)
    probes = Dataset(f"{dataset.name}[probes]", dataset.root, tuple(dataset.samples[p] for p, _ in pairs))
    keys = context.file_keys.of(probes.paths, False)
    digest = sha256_json({"probes": keys, "factors": [[f.name, list(f.levels)] for f in chosen], "seed": seed,
                          "version": VERSION})[:16]
    folder = Path(context.cache_dir) / "datasets" / "degraded" / digest
    folder.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(folder.parent / f".{digest}.lock"):
        if not (folder / MANIFEST).is_file():
            _make(dataset, pairs, probes, keys, chosen, folder, context, seed)
        rows = tuple(_read_row(row) for row in csv.DictReader((folder / MANIFEST).open(newline="")))
    made = {row["probe"] for row in rows if row["role"] == "probe"}
    skipped = tuple(f"{dataset.samples[probe].path}: unreadable, nothing to degrade"
                    for number, (probe, _) in enumerate(pairs) if number not in made)
    samples = tuple(Sample(Path(row["path"]), row["identity"]) for row in rows)
    return DegradedSet(Dataset(f"degraded:{dataset.name}", folder, samples), rows, folder, skipped)


def _make(dataset: Dataset, pairs: list[tuple[int, int]], probes: Dataset, keys: list[str], chosen: list[Factor],
          folder: Path, context: RunContext, seed: int) -> None:
    """Write every missing copy, then the manifest (last: its presence says the folder is complete)."""
    landmarks, failed, _ = dataset_landmarks(probes, context)
    rows = [_row(dataset.samples[reference].path, dataset.samples[reference].identity, "reference", -1, None, 0,
                 None, {}, -1) for _, reference in pairs]
    for number, ((probe, _), key) in enumerate(zip(pairs, keys)):
        sample = dataset.samples[probe]
        if failed[number]:  # unreadable: nothing to degrade, no landmarks to place occlusions from
            continue
        rows.append(_row(sample.path, sample.identity, "probe", number, None, 0, None, {}, -1))
        image = load_rgb(sample.path)[0]
        for factor in chosen:
            for severity, level in enumerate(factor.levels, start=1):
                path = folder / sample.identity / f"{factor.name}-{severity}.png"
                copy = copy_seed(seed, key, factor.name)
                degraded, extra = factor.apply(image, level, copy, landmarks[number])
                if not path.is_file():  # an interrupted run's copy is whole (atomic) and the same (seeded)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    _write_png(path, degraded)
                rows.append(_row(path, sample.identity, "probe", number, factor, severity, level, extra, copy))
    with atomic_write(folder / MANIFEST) as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _read_row(row: dict) -> dict:
    """A manifest row with its numbers as numbers."""
    return row | {"probe": int(row["probe"]), "severity": int(row["severity"]), "seed": int(row["seed"]),
                  "value": float(row["value"]) if row["value"] else float("nan")}


def _row(path: Path, identity: str, role: str, probe: int, factor: Factor | None, severity: int,
         level: float | None, extra: dict, seed: int) -> dict:
    return {"path": str(path), "identity": identity, "role": role, "probe": probe,
            "factor": factor.name if factor else "clean", "severity": severity,
            "parameter": factor.parameter if factor else "", "value": "" if level is None else level,
            "extra": json.dumps(extra, sort_keys=True), "seed": seed}
