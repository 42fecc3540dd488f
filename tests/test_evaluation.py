"""EVRC studies on synthetic sets whose per-image quality is known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fiqa_bench.evaluation import StudyConfig, run_study, study_markdown


def synthetic(seed: int = 0, people: int = 100, per_person: int = 20, dim: int = 16):
    """Unit embeddings around identity centres; image i has noise level sigma_i."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, dim))
    identities = np.repeat(np.arange(people), per_person)
    sigma = rng.uniform(0.1, 1.5, size=len(identities))
    emb = centres[identities] / np.sqrt(dim) + sigma[:, None] * rng.normal(size=(len(identities), dim)) / np.sqrt(dim)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return emb.astype(np.float32), identities, sigma


CONFIG = StudyConfig(fmrs=(1e-2,), random_seeds=5, n_boot=10)


def test_a_quality_that_knows_the_noise_beats_the_random_band():
    emb, ids, sigma = synthetic()
    study = run_study("oracle", emb, ids, -sigma, CONFIG)
    for policy in CONFIG.policies:
        assert study.aoc[(policy, 1e-2)] > 0.5
        assert study.above_random(policy, 1e-2)
        ci = study.ci[(policy, 1e-2)]
        assert ci.low <= study.aoc[(policy, 1e-2)] <= ci.high and ci.n_boot == 10
        mean, sd, p95 = study.random_stats(policy, 1e-2)
        assert abs(mean) < 0.3 and sd > 0 and p95 >= mean
    text = study_markdown(study)
    assert "| oracle |" in text and "above the random band's 95th percentile: FMR=0.01: yes" in text
    assert "random, mean ± sd over 5 seeds" in text
    json.dumps(study.to_dict())  # JSON-safe


def test_inverted_quality_is_reported_below_the_band():
    emb, ids, sigma = synthetic(1)
    study = run_study("inverted", emb, ids, sigma, StudyConfig(fmrs=(1e-2,), random_seeds=5, n_boot=0))
    assert not study.ci
    assert study.aoc[("recomputed", 1e-2)] < 0 and not study.above_random("recomputed", 1e-2)
    assert "FMR=0.01: NO" in study_markdown(study)


def test_nan_qualities_are_counted_and_failed_embeddings_refused():
    emb, ids, sigma = synthetic(2)
    q = -sigma.copy()
    q[:7] = np.nan
    study = run_study("partial", emb, ids, q, StudyConfig(fmrs=(1e-2,), random_seeds=2, n_boot=0))
    assert study.n_nan_qualities == 7 and "7 images had no quality" in study_markdown(study)
    emb[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        run_study("broken", emb, ids, q, CONFIG)
    with pytest.raises(ValueError, match="random_seeds"):
        StudyConfig(random_seeds=1)


def test_checkpointed_study_resumes_after_an_interruption_with_identical_results(tmp_path, monkeypatch):
    from fiqa_bench import evaluation

    emb, ids, sigma = synthetic(3, people=40, per_person=10)
    config = StudyConfig(fmrs=(1e-2, 1e-3), random_seeds=3, n_boot=5)
    plain = _text(run_study("q", emb, ids, -sigma, config))

    real_bootstrap, calls = evaluation.bootstrap_ci, []

    def interrupted(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(kwargs["policy"])
        return real_bootstrap(*args, **kwargs)

    monkeypatch.setattr(evaluation, "bootstrap_ci", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_study("q", emb, ids, -sigma, config, checkpoint_dir=tmp_path)
    # the random band (3 seeds) and two intervals finished before the interruption
    assert len(list(tmp_path.glob("*.json"))) == 3 + 2

    monkeypatch.setattr(evaluation, "evrc", _counting(evaluation.evrc, counter := []))
    monkeypatch.setattr(evaluation, "bootstrap_ci", _counting(real_bootstrap, resumed := []))
    messages: list[str] = []
    again = run_study("q", emb, ids, -sigma, config, messages.append, checkpoint_dir=tmp_path)
    assert len(counter) == 1  # only the measure's own EVRC; no random seed recomputed
    assert len(resumed) == 2  # the two intervals that were missing
    assert sum("earlier run" in m for m in messages) == 2
    assert _text(again) == plain
    monkeypatch.setattr(evaluation, "bootstrap_ci", _counting(real_bootstrap, third := []))
    assert _text(run_study("q", emb, ids, -sigma, config, checkpoint_dir=tmp_path)) == plain and not third
    # other qualities never meet these results
    other = run_study("q", emb, ids, sigma, config, checkpoint_dir=tmp_path)
    assert len(third) == 4 and _text(other) != plain


def _text(study) -> str:
    """The study as JSON text (NaN-safe equality, every number to its last bit)."""
    return json.dumps(study.to_dict(), sort_keys=True)


def _counting(function, log: list):
    def wrapper(*args, **kwargs):
        log.append(1)
        return function(*args, **kwargs)

    return wrapper
