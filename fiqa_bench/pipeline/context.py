"""The run context: where and how a command does its work, passed to every stage.

Every stage of the pipeline (hashing, alignment, embedding, scoring,
training, protocols) needs the same handful of settings: the dataset root,
the cache, the alignment settings (part of every cache key), how many
processes align faces, the torch device and whether to draw progress bars.
They travel together as one frozen :class:`RunContext` instead of a
parameter list repeated by every function, so a new setting is added in one
place and a stage cannot forget to pass one on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from fiqa_bench.faces.align import AlignmentSettings
from fiqa_bench.faces.detector import detector_for_aligned
from fiqa_bench.pipeline.hashing import FileKeys
from fiqa_bench.pipeline.paths import default_data_root, resolve_cache_dir, resolve_chip_store

if TYPE_CHECKING:
    from fiqa_bench.data import Dataset
    from fiqa_bench.recognition.base import RecognitionModel

#: Alignment processes when none is asked for: the CPU count, at most 8.
MAX_DEFAULT_WORKERS = 8


def default_workers() -> int:
    """Worker processes when none are asked for: the CPU count, capped at 8."""
    return min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS)


@dataclass(frozen=True)
class RunContext:
    """Where and how one command runs.

    Attributes:
        cache_dir: root of the cache (:mod:`fiqa_bench.pipeline.cache`).
        data_root: folder holding the datasets (``lfw/``, ``brisque-live/`` ...).
        alignment: face detection and alignment settings (part of every cache key).
        workers: processes for face detection and alignment, for the heads a study trains on first use
            (:mod:`~fiqa_bench.method.parallel_training`) and for a study's bootstrap.
        device: torch device for the recognition models the stages build.
        progress: draw progress bars on stderr.
        detector_chosen: whether ``alignment.detector`` holds for the whole run: chosen by the user
            (``--detector``), or by a dataset of aligned crops (:meth:`for_dataset`); when not,
            :meth:`for_model` gives each recognition model its own default detector, so one
            run can deploy a model on RetinaFace chips and score with a method built on a HOG model.
        chip_store: how aligned chips are kept in the cache: ``"raw"``, ``"webp"`` (lossless) or
            ``"none"`` (cut again when needed); the same chips bit for bit (:mod:`fiqa_bench.pipeline.chips`).
        file_keys: the run's image keys (:class:`~fiqa_bench.pipeline.hashing.FileKeys`): each file is read
            and hashed once per run.  A new context starts with its own; every copy made by :meth:`but`
            (or ``dataclasses.replace``) shares it, so the stages of one run, whichever copy they are
            given, hash each file once.  Not part of equality or the hash of a context.
    """

    cache_dir: Path = field(default_factory=resolve_cache_dir)
    data_root: Path = field(default_factory=default_data_root)
    alignment: AlignmentSettings = field(default_factory=AlignmentSettings)
    workers: int = field(default_factory=default_workers)
    device: str = "cpu"
    progress: bool = True
    detector_chosen: bool = False
    chip_store: str = field(default_factory=resolve_chip_store)
    file_keys: FileKeys = field(default_factory=FileKeys, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cache_dir", Path(self.cache_dir))
        object.__setattr__(self, "data_root", Path(self.data_root))
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        resolve_chip_store(self.chip_store)  # raises for an unknown name

    def but(self, **changes: object) -> RunContext:
        """A copy with ``changes`` (e.g. ``context.but(progress=False)``)."""
        return replace(self, **changes)

    def for_model(self, name: str) -> RunContext:
        """This context with ``name``'s default face detector (read from its card: nothing is built),
        unless the user chose one."""
        if self.detector_chosen:
            return self
        from fiqa_bench.recognition import default_detector

        detector = default_detector(name)
        return self if detector == self.alignment.detector else self.but(alignment=replace(self.alignment, detector=detector))

    def for_dataset(self, dataset: Dataset) -> RunContext:
        """This context for ``dataset``'s images: crops already aligned to a template
        (:attr:`~fiqa_bench.data.base.Dataset.aligned_to`, e.g. an insightface ``.bin``) are read by the
        detector made for such crops (:func:`~fiqa_bench.faces.detector.detector_for_aligned`) for every
        model, unless the user chose a detector; photos keep each model's own."""
        if self.detector_chosen or dataset.aligned_to is None:
            return self
        detector = detector_for_aligned(dataset.aligned_to)
        if detector is None:
            return self
        return self.but(alignment=replace(self.alignment, detector=detector), detector_chosen=True)

    def model(self, name: str, weights: str | Path | None = None) -> RecognitionModel:
        """The registered recognition model ``name``, on this context's device: built once per reference and
        device in a process and shared by every caller, who must not change it
        (:func:`~fiqa_bench.recognition.create_model`)."""
        from fiqa_bench.recognition import create_model

        return create_model(name, str(weights) if weights else None, self.device)
