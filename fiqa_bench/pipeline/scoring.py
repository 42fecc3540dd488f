"""Scoring a dataset with a FIQA method, through the cache.

The method's card says what it reads (``chips:<template>``,
``embeddings:<model>``, ``backbone:<model>``, ``stages:<model>`` or
``landmarks:dlib5``, parsed by :class:`~fiqa_bench.method.MethodInput`);
:func:`method_inputs` makes that from the dataset with
:mod:`fiqa_bench.pipeline.embedding`.  Scores are cached
per image (key: image sha256, hashed once per run by ``context.file_keys``) under
``scores/<method fingerprint>/<alignment>`` (:func:`~fiqa_bench.pipeline.stores.scores_dir`).
An image that failed upstream, or that the method cannot assess, gets a NaN
quality and a reason; it is never dropped.  A method's NaN, inf or -inf is
never a quality: the image gets a NaN quality and the reason "method
returned NaN" (or "inf", "-inf"), and ``native`` keeps what the method
returned.  Scored images keep the notes of their reading and alignment in
the same reason column (a conversion, a small image, no face found).  A
dataset of which no image gets a quality is an error, not a table of NaNs.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fiqa_bench.pipeline.cache import KeyedStore, atomic_write
from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.data import Dataset
from fiqa_bench.method import MethodInput, QualityMethod
from fiqa_bench.pipeline.embedding import (
    NOTE_SEPARATOR,
    dataset_chips,
    dataset_landmarks,
    embed_dataset,
    face_status,
    require_usable,
)
from fiqa_bench.pipeline.stores import scores_dir

UPSTREAM = "upstream failure: "
#: Appended to the CSV reason of a path written with ``\xNN`` escapes.
NOT_UTF8_NOTE = "file name is not valid UTF-8: path written with \\xNN escapes"


def csv_text(text: str) -> str:
    """``text`` as valid UTF-8: the bytes of a file name that is not UTF-8 (held by Python as
    surrogate escapes) become ``\\xNN`` escapes; other text is unchanged."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class ScoreTable:
    """Per-image qualities of a dataset, in the dataset's order.

    Attributes:
        paths, identities: as in the dataset.
        quality: ``(N,)`` float64, higher = better for recognition; NaN = not assessed.
        native: ``(N,)`` float64, the method's own output.
        reasons: ``(N,)`` str: why an image was not assessed ("upstream failure: empty file",
            "method returned NaN"), then, for an image that was read, the notes of its reading and
            alignment (e.g. "converted from grayscale (L)", "20x16 px, below the 32 px a face
            detector can use", "no face detected: fallback box"), joined by "; ".
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
        """``path,identity,quality,native,face,reason`` rows (empty quality = NaN), plain newlines.

        The file is valid UTF-8: a path or identity that is not (a file name's raw bytes) is written
        with ``\\xNN`` escapes (:func:`csv_text`) and its reason says so.
        """
        with atomic_write(path) as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["path", "identity", "quality", "native", "face", "reason"])
            for row in zip(self.paths, self.identities, self.quality, self.native, self.face, self.reasons):
                p, ident, q, n, face, reason = (str(v) if isinstance(v, str) else v for v in row)
                if csv_text(p) != p or csv_text(ident) != ident:
                    reason = NOTE_SEPARATOR.join(r for r in (reason, NOT_UTF8_NOTE) if r)
                writer.writerow([csv_text(p), csv_text(ident), "" if np.isnan(q) else repr(float(q)),
                                 "" if np.isnan(n) else repr(float(n)), face, reason])


def method_inputs(needs: MethodInput | str, dataset: Dataset, context: RunContext
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a method reads, for every sample of ``dataset``.

    Args:
        needs: the method's input (``card.input``), or its card's ``needs`` string.
        dataset: the samples.
        context: cache, alignment settings, workers and progress.

    Returns:
        (inputs, failed, reasons), one row per sample.

    Raises:
        ValueError: ``needs`` is not a known input (:meth:`MethodInput.parse`).
    """
    wanted = needs if isinstance(needs, MethodInput) else MethodInput.parse(needs)
    if wanted.kind == "chips":
        return dataset_chips(dataset, wanted.argument, context)
    if wanted.kind == "landmarks":
        return dataset_landmarks(dataset, context)
    result = embed_dataset(dataset, context.model(wanted.argument), context, wanted.output)
    return result.embeddings, result.failed, result.reasons


def refusal(native: float) -> str:
    """Why a method's output is not a quality: ``"method returned NaN"``, ``"... inf"``, ``"... -inf"``; or ``""``."""
    value = float(native)
    if math.isfinite(value):
        return ""
    return "method returned NaN" if math.isnan(value) else f"method returned {'inf' if value > 0 else '-inf'}"


def _row_reason(stored: str, native: float, failed: bool, upstream: str) -> str:
    """One row's reason: the upstream failure, else the method's refusal (if any) and the image's notes."""
    if failed or stored.startswith(UPSTREAM):
        return stored or UPSTREAM + upstream
    return NOTE_SEPARATOR.join(r for r in (stored or refusal(native), upstream) if r)


def score_dataset(method: QualityMethod, dataset: Dataset, context: RunContext) -> ScoreTable:
    """Qualities of every sample of ``dataset`` by ``method``, cached per image.

    Raises:
        DatasetError: no image of ``dataset`` could be read.
        ValueError: the card's ``needs`` is not a known input, or the method returned the wrong number of
            scores, or no finite score at all.
    """
    wanted = method.card.input  # raises, naming the card, before any work
    keys = context.file_keys.of(dataset.paths, context.progress)
    store = KeyedStore(scores_dir(context.cache_dir, method.fingerprint(), context.alignment.digest()))
    todo = store.missing(keys)
    if todo:
        inputs, failed, reasons = method_inputs(wanted, dataset, context)
        first_row = {}
        for row, key in enumerate(keys):
            first_row.setdefault(key, row)
        rows = np.array([first_row[k] for k in todo])
        native = np.full(len(rows), np.nan)
        usable = ~failed[rows]
        if usable.any():
            scores = np.asarray(method.native_score(inputs[rows[usable]]), dtype=np.float64)
            if scores.shape != (int(usable.sum()),):
                raise ValueError(f"method {method.card.name!r} returned scores of shape {scores.shape} for "
                                 f"{int(usable.sum())} images; native_score must give one number per image")
            native[usable] = scores
        why = [refusal(v) if ok else UPSTREAM + str(r) for v, ok, r in zip(native, usable, reasons[rows])]
        store.put(todo, {"native": native, "reason": np.array(why, dtype=str)})
    got = store.get(keys, ["native", "reason"])
    status = face_status(keys, context)
    if status is None:  # scores cached but the faces store was removed: align again
        method_inputs(wanted, dataset, context)
        status = face_status(keys, context)
    failed, upstream, face = status
    native = got["native"].astype(np.float64)
    quality = method.card.quality_from_native(native)
    quality = np.where(np.isfinite(native) & np.isfinite(quality), quality, np.nan)
    reasons = np.array([_row_reason(str(s), v, bool(f), str(u))
                        for s, v, f, u in zip(got["reason"], native, failed, upstream)], dtype=str)
    if not np.isfinite(quality).any():
        require_usable(dataset, failed, upstream)
        examples = "; ".join(f"{p}: {r}" for p, r in zip(dataset.paths[:3], reasons[:3].tolist()))
        raise ValueError(f"method {method.card.name!r} gave no quality to any of the {len(keys)} images of "
                         f"{dataset.name} (e.g. {examples})")
    return ScoreTable(
        paths=np.array([str(p) for p in dataset.paths]),
        identities=np.array(dataset.identities),
        quality=quality,
        native=native,
        reasons=reasons,
        face=face,
        method=method.card.name,
    )
