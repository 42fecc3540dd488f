"""Heads trained side by side in worker processes (:mod:`fiqa_bench.method.parallel_training`) are the
heads an in-process training makes, byte for byte, and a study finds them instead of training again."""

from __future__ import annotations

from pathlib import Path

import pytest

from fiqa_bench.method import method_class
from fiqa_bench.method.learned import checkpoint_to_train, learned_checkpoint
from fiqa_bench.method.parallel_training import HeadJob, train_missing
from fiqa_bench.pipeline.context import RunContext


def test_workers_train_the_same_bytes_as_one_process(small_folder: Path, tmp_path: Path):
    spec = f"folder:{small_folder}"
    jobs = [HeadJob("sdd", {"m": "2", "repetitions": "1"}, spec),
            HeadJob("sdd", {"m": "2", "repetitions": "2", "variant": "neg-only"}, spec),
            HeadJob("sdd", {"m": "2", "repetitions": "1"}, spec)]  # the same head twice: trained once
    parallel = RunContext(tmp_path / "parallel", workers=2, progress=False)
    said: list[str] = []
    assert train_missing(jobs, parallel, said.append) == 2
    assert said[0] == "training 2 heads not shipped or cached, 2 at a time" and len(said) == 3
    assert all(checkpoint_to_train(method_class(j.method), j.settings, j.trained_on, parallel) is None for j in jobs)
    assert train_missing(jobs, parallel) == 0  # all cached now

    alone = RunContext(tmp_path / "alone", workers=1, progress=False)
    assert train_missing(jobs, alone) == 0  # one worker: left to the caller
    for job in jobs[:2]:
        made_apart, trained = learned_checkpoint(method_class(job.method), job.settings, job.trained_on, parallel)
        assert not trained or made_apart.is_file()
        made_here, trained = learned_checkpoint(method_class(job.method), job.settings, job.trained_on, alone)
        assert trained and made_here.name == made_apart.name
        assert made_here.read_bytes() == made_apart.read_bytes(), job


def test_a_failing_training_is_left_to_the_study(small_folder: Path, tmp_path: Path):
    """A training that fails in a worker (SDD-FIQA on people with one image each) is not counted and leaves
    nothing behind; the in-process call then raises the error the user sees, and the other head is made."""
    import shutil

    from fiqa_bench.data import DatasetError

    singles = tmp_path / "singles"
    for person in sorted(p for p in small_folder.iterdir() if p.is_dir())[:3]:
        (singles / person.name).mkdir(parents=True)
        first = sorted(f for f in person.iterdir() if f.stat().st_size)[0]
        shutil.copy(first, singles / person.name / first.name)
    context = RunContext(tmp_path / "c", workers=2, progress=False)
    good = HeadJob("sdd", {"m": "2", "repetitions": "1"}, f"folder:{small_folder}")
    bad = HeadJob("sdd", {"m": "2", "repetitions": "1"}, f"folder:{singles}")
    assert train_missing([bad, good], context) == 1
    assert checkpoint_to_train(method_class("sdd"), good.settings, good.trained_on, context) is None
    target = checkpoint_to_train(method_class("sdd"), bad.settings, bad.trained_on, context)
    assert target is not None and not list(target.parent.glob(f".{target.name}*"))
    with pytest.raises(DatasetError, match="two or more images"):
        learned_checkpoint(method_class("sdd"), bad.settings, bad.trained_on, context)


def test_a_study_reads_each_training_set_once(small_folder: Path, tmp_path: Path, monkeypatch):
    """Inside ``training_sets_read_once`` every plan of one training set shares one load and one identity, and
    plans the same checkpoint as outside; outside, each plan reads the files afresh (they may have changed)."""
    import fiqa_bench.data
    from fiqa_bench.method.learned import training_sets_read_once

    loads: list[str] = []
    real = fiqa_bench.data.load_dataset
    monkeypatch.setattr(fiqa_bench.data, "load_dataset", lambda spec, *a, **k: loads.append(spec) or real(spec, *a, **k))
    context = RunContext(tmp_path / "c", workers=1, progress=False)
    spec, sdd = f"folder:{small_folder}", method_class("sdd")
    settings = [{"m": "2", "repetitions": "1"}, {"m": "3", "repetitions": "1"}, {"variant": "neg-only"}]
    apart = [checkpoint_to_train(sdd, s, spec, context) for s in settings]
    assert len(loads) == 3
    with training_sets_read_once():
        with training_sets_read_once():  # nested: the outer block remembers
            together = [checkpoint_to_train(sdd, s, spec, context) for s in settings + settings]
    assert len(loads) == 4 and together == apart + apart and len(set(apart)) == 3
    checkpoint_to_train(sdd, settings[0], spec, context)
    assert len(loads) == 5
