"""Heads a study needs that are neither shipped nor cached, trained side by side in worker processes.

A study of many learned settings (the ablation's 36 SDD-FIQA heads, FaceQnet-v1's heads for a second
model) trains each on first use (:func:`~fiqa_bench.method.learned.learned_checkpoint`).  One head is a
small network over cached features whose training steps are a few tiny products, dominated by per-step
overhead: a second torch thread speeds one training up by about 1.4x (18 s against about 25 s for an
ablation head on 2 cores).  :func:`train_missing` trains the missing heads in ``workers`` spawned
processes with one torch thread each, before the study scores, after this process has computed what the
trainings read from images (:func:`~fiqa_bench.method.learned.prepare_training`): the same checkpoints,
byte for byte (each is trained by the same :func:`learned_checkpoint` from the same cached numbers and
written atomically; the tests compare the bytes with an in-process training).

Nothing changes where only one head is missing, where one worker is asked for, or under a
``torch.distributed`` process group (whose ranks already share each training).  A training that fails is
left to the study, which trains it again in-process and reports its error as it always does.
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
    """Train the heads of ``jobs`` that are neither shipped nor cached, ``context.workers`` at a time; returns how
    many were trained here (0 when it left them to the caller).

    This process first computes what the trainings read from images (:func:`prepare_training`, once per
    method, training set and model: the labels of one SDD-FIQA setting read what every other reads), so only
    cached numbers reach the workers, whatever their thread count; the workers train.
    """
    from fiqa_bench.method import MethodSpec, method_class
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
    submitted, prepared, done = [], set(), 0
    with mp.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
        for job in missing:
            group = (job.method, job.trained_on, str(job.settings.get("model", "")))
            try:  # one job per method, training set and model reads what the others read (SDD's 36 heads: 2)
                if group not in prepared and not _prepared(job, context):
                    continue
            except Exception:  # noqa: BLE001 - the study meets the same error in-process and reports it
                continue
            prepared.add(group)
            submitted.append((job, pool.apply_async(_train, (job, quiet))))
        for job, result in submitted:
            try:
                result.get()
            except Exception:  # noqa: BLE001 - the study trains it again in-process and reports the error
                continue
            done += 1
            say(f"trained {MethodSpec(job.method, dict(job.settings)).label} on {job.trained_on} "
                f"({done}/{len(missing)})")
        pool.close()  # a clean shutdown: terminating (the with-block's exit) would leak the workers' semaphores
        pool.join()
    return done


def _prepared(job: HeadJob, context: RunContext) -> bool:
    from fiqa_bench.method import method_class
    from fiqa_bench.method.learned import prepare_training

    return prepare_training(method_class(job.method), job.settings, job.trained_on, context)
