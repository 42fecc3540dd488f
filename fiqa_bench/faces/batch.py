"""Aligning many images in worker processes.

Detection and landmarking are single-threaded dlib calls, so images are
spread over ``workers`` processes (started with ``spawn``: safe beside
torch's thread pools).  This module imports only what the workers need, so
a worker starts without loading torch.
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from typing import Iterable, Iterator

from fiqa_bench.faces.align import AlignmentSettings, FaceAligner, FaceAnalysis, ImageResult, process_image
from fiqa_bench.faces.detector import detector_card
from fiqa_bench.faces.templates import ChipTemplate

#: One image's work: its path, the templates to cut, and its face if already known.
Job = tuple[str, tuple[ChipTemplate, ...], FaceAnalysis | None]

_WORKER_ALIGNER: FaceAligner | None = None


def _init_worker(settings: AlignmentSettings) -> None:
    global _WORKER_ALIGNER
    import cv2

    cv2.setNumThreads(1)
    _WORKER_ALIGNER = FaceAligner(settings)


def _init_pool_worker(settings: AlignmentSettings) -> None:
    """:func:`_init_worker` in a pool process, where a detector that runs on torch gets one thread (the
    workers share the cores)."""
    if detector_card(settings.detector).uses_torch:
        import torch

        torch.set_num_threads(1)
    _init_worker(settings)


def _work(job: Job) -> ImageResult:
    path, templates, known = job
    if _WORKER_ALIGNER is None:
        raise RuntimeError("align worker used before _init_worker")
    return process_image(_WORKER_ALIGNER, Path(path), templates, known)


def align_images(jobs: list[Job], settings: AlignmentSettings, workers: int) -> Iterator[ImageResult]:
    """Results of ``jobs``, in order; ``workers <= 1`` runs them in this process.

    The returned iterator owns the worker pool: exhaust it or call its
    ``close()`` to stop the workers.
    """
    if workers <= 1:
        _init_worker(settings)
        return _in_process(jobs)
    pool = mp.get_context("spawn").Pool(workers, initializer=_init_pool_worker, initargs=(settings,))
    return _close_after(pool, pool.imap(_work, jobs, chunksize=8))


def _in_process(jobs: list[Job]) -> Iterator[ImageResult]:
    for job in jobs:
        yield _work(job)


def _close_after(pool, results: Iterable[ImageResult]) -> Iterator[ImageResult]:  # noqa: ANN001
    try:
        yield from results
    finally:
        pool.terminate()
        pool.join()
