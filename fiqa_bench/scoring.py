"""Scoring a dataset with a FIQA method, through the cache.

The method's card says what it reads (``chips:<template>``,
``embeddings:<model>``, ``backbone:<model>``, ``stages:<model>`` or
``landmarks:dlib5``); :func:`method_inputs` makes that from the dataset with
:mod:`fiqa_bench.pipeline`.  Scores are cached
per image (key: image sha256) under ``scores/<method fingerprint>/<alignment>``.
An image that failed upstream, or that the method cannot assess, gets a NaN
quality and a reason; it is never dropped.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fiqa_bench.cache import KeyedStore, atomic_write
from fiqa_bench.context import RunContext
from fiqa_bench.data import Dataset
from fiqa_bench.method import QualityMethod
from fiqa_bench.pipeline import dataset_chips, dataset_landmarks, embed_dataset, face_status, hash_files


@dataclass(frozen=True)
class ScoreTable:
    """Per-image qualities of a dataset, in the dataset's order.

    Attributes:
        paths, identities: as in the dataset.
        quality: ``(N,)`` float64, higher = better for recognition; NaN = not assessed.
        native: ``(N,)`` float64, the method's own output.
        reasons: ``(N,)`` str: why an image was not assessed, else the notes of its reading and
            alignment (e.g. "no face detected: fallback box", "grayscale converted to RGB").
        face: ``(N,)`` str: whether its face was found and by which detector ("found by hog",
            "not found by hog: fallback box", "not analysed").
        method: the method's name.
    """

    paths: np.ndarray
    identities: np.ndarray
    quality: np.ndarray
    native: np.ndarray
    reasons: np.ndarray
    face: np.ndarray
    method: str

    def write_csv(self, path: Path) -> None:
        """``path,identity,quality,native,face,reason`` rows (empty quality = NaN), plain newlines."""
        with atomic_write(path) as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["path", "identity", "quality", "native", "face", "reason"])
            for row in zip(self.paths, self.identities, self.quality, self.native, self.face, self.reasons):
                p, ident, q, n, face, reason = row
                writer.writerow([p, ident, "" if np.isnan(q) else repr(float(q)),
                                 "" if np.isnan(n) else repr(float(n)), face, reason])


def method_inputs(needs: str, dataset: Dataset, context: RunContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a method with card ``needs`` reads, for every sample: (inputs, failed, reasons)."""
    kind, _, argument = needs.partition(":")
    if kind == "chips":
        return dataset_chips(dataset, argument, context)
    if kind == "landmarks" and argument == "dlib5":
        return dataset_landmarks(dataset, context)
    if kind in ("embeddings", "backbone", "stages"):
        output = "embedding" if kind == "embeddings" else kind
        result = embed_dataset(dataset, context.model(argument), context, output)
        return result.embeddings, result.failed, result.reasons
    raise ValueError(f"a method's 'needs' must be chips:<template>, embeddings:<model>, "
                     f"backbone:<model>, stages:<model> or landmarks:dlib5, got {needs!r}")


def score_dataset(method: QualityMethod, dataset: Dataset, context: RunContext) -> ScoreTable:
    """Qualities of every sample of ``dataset`` by ``method``, cached per image."""
    keys = hash_files(dataset.paths, context.progress)
    store = KeyedStore(context.cache_dir / "scores" / method.fingerprint()[:32] / context.alignment.digest())
    todo = store.missing(keys)
    if todo:
        inputs, failed, reasons = method_inputs(method.card.needs, dataset, context)
        first_row = {}
        for row, key in enumerate(keys):
            first_row.setdefault(key, row)
        rows = np.array([first_row[k] for k in todo])
        native = np.full(len(rows), np.nan)
        usable = ~failed[rows]
        if usable.any():
            native[usable] = np.asarray(method.native_score(inputs[rows[usable]]), dtype=np.float64)
        why = np.where(usable & np.isnan(native), "method could not assess the image", "")
        why = np.where(~usable, np.char.add("upstream failure: ", reasons[rows].astype(str)), why)
        store.put(todo, {"native": native, "reason": why.astype(str)})
    got = store.get(keys, ["native", "reason"])
    status = face_status(keys, context)
    if status is None:  # scores cached but the faces store was removed: align again
        method_inputs(method.card.needs, dataset, context)
        status = face_status(keys, context)
    _, upstream, face = status
    native = got["native"]
    quality = method.card.quality_from_native(native)
    return ScoreTable(
        paths=np.array([str(p) for p in dataset.paths]),
        identities=np.array(dataset.identities),
        quality=quality,
        native=native,
        reasons=np.where(got["reason"] != "", got["reason"], upstream).astype(str),
        face=face,
        method=method.card.name,
    )
