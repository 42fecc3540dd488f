"""Heads a study needs that are neither shipped nor cached, trained side by side in worker processes.

A study of many learned settings (the ablation's 36 SDD-FIQA heads, FaceQnet-v1's heads for a second
model) trains each on first use (:func:`~fiqa_bench.method.learned.learned_checkpoint`).  One head is a
small network over cached features: a training step is a few tiny matrix products, which a second torch
thread barely speeds up, so one training keeps about one core busy.  :func:`train_missing` trains the
missing heads in ``workers`` spawned processes with one torch thread each, before the study scores:
the same checkpoints, byte for byte (each is trained by the same :func:`learned_checkpoint` and written
atomically; the tests compare the bytes with an in-process training), about ``workers`` times sooner.

Nothing changes where only one head is missing, where one worker is asked for, or under a
``torch.distributed`` process group (whose ranks already share each training).  A training that fails in
a worker is left to the study, which trains it again in-process and reports its error as it always does.
"""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from fiqa_bench.pipeline.context import RunContext


@dataclass(frozen=True)
class HeadJob:
    """One checkpoint to make: the method (registered name), its settings and the training set spec."""

    method: str
    settings: Mapping[str, Any]
    trained_on: str


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _train(job: HeadJob, context: RunContext) -> str:
    from fiqa_bench.method import method_class
    from fiqa_bench.method.learned import learned_checkpoint

    return str(learned_checkpoint(method_class(job.method), job.settings, job.trained_on, context)[0])


def train_missing(jobs: Sequence[HeadJob], context: RunContext, say: Callable[[str], None] = lambda _: None) -> int:
    """Train the checkpoints of ``jobs`` that are neither shipped nor cached, ``context.workers`` at a time;
    returns how many were trained here (0 when it left them to the caller)."""
    from fiqa_bench.method import method_class
    from fiqa_bench.method.distributed import is_distributed
    from fiqa_bench.method.learned import checkpoint_to_train

    missing, seen = [], set()
    for job in jobs:
        path = checkpoint_to_train(method_class(job.method), job.settings, job.trained_on, context)
        if path is not None and path not in seen:
            seen.add(path)
            missing.append(job)
    workers = min(context.workers, len(missing))
    if workers < 2 or is_distributed():
        return 0
    say(f"training {len(missing)} heads not shipped or cached, {workers} at a time")
    quiet = context.but(progress=False, workers=1)  # a pool's workers cannot start alignment pools of their own
    done = 0
    with mp.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
        results = [pool.apply_async(_train, (job, quiet)) for job in missing]
        for job, result in zip(missing, results):
            try:
                result.get()
            except Exception:  # noqa: BLE001 - the study trains it again in-process and reports the error
                continue
            done += 1
            say(f"trained {job.method}{dict(job.settings) or ''} on {job.trained_on} ({done}/{len(missing)})")
    return done
