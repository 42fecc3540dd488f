"""EVRC studies on synthetic sets whose per-image quality is known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fiqa_bench.protocol.study import StudyConfig, run_studies, run_study
from fiqa_bench.report.tables import studies_markdown


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
    result = run_studies({"oracle": -sigma}, emb, ids, CONFIG)
    study = result.studies["oracle"]
    for policy in CONFIG.policies:
        assert study.aoc[(policy, 1e-2)] > 0.5
        assert study.above_random(policy, 1e-2)
        ci = study.ci[(policy, 1e-2)]
        assert ci.low <= study.aoc[(policy, 1e-2)] <= ci.high and ci.n_boot == 10
        mean, sd, p95 = study.random_stats(policy, 1e-2)
        assert abs(mean) < 0.3 and sd > 0 and p95 >= mean
    text = studies_markdown(result)
    assert "| oracle " in text and "above the random band's 95th percentile: FMR=0.01: yes" in text
    assert "random, mean ± sd over 5 seeds" in text
    json.dumps(study.to_dict())  # JSON-safe


def test_inverted_quality_is_reported_below_the_band():
    emb, ids, sigma = synthetic(1)
    result = run_studies({"inverted": sigma}, emb, ids, StudyConfig(fmrs=(1e-2,), random_seeds=5, n_boot=0))
    study = result.studies["inverted"]
    assert not study.ci
    assert study.aoc[("recomputed", 1e-2)] < 0 and not study.above_random("recomputed", 1e-2)
    assert "FMR=0.01: NO" in studies_markdown(result)


def test_nan_qualities_are_counted_and_failed_embeddings_refused():
    emb, ids, sigma = synthetic(2)
    q = -sigma.copy()
    q[:7] = np.nan
    result = run_studies({"partial": q}, emb, ids, StudyConfig(fmrs=(1e-2,), random_seeds=2, n_boot=0))
    assert result.studies["partial"].n_nan_qualities == 7 and "7 images had no quality" in studies_markdown(result)
    emb[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        run_study("broken", emb, ids, q, CONFIG)
    with pytest.raises(ValueError, match="random_seeds"):
        StudyConfig(random_seeds=1)


def test_checkpointed_study_resumes_after_an_interruption_with_identical_results(tmp_path, monkeypatch):
    from fiqa_bench.protocol import study as evaluation

    emb, ids, sigma = synthetic(3, people=40, per_person=10)
    config = StudyConfig(fmrs=(1e-2, 1e-3), random_seeds=3, n_boot=5)
    plain = _text(run_study("q", emb, ids, -sigma, config))

    real_bootstrap = evaluation.bootstrap_replicates

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluation, "bootstrap_replicates", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_study("q", emb, ids, -sigma, config, checkpoint_dir=tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 3  # the random band finished before the interruption

    monkeypatch.setattr(evaluation, "evrc", _counting(evaluation.evrc, counter := []))
    monkeypatch.setattr(evaluation, "bootstrap_replicates", _counting(real_bootstrap, resumed := []))
    messages: list[str] = []
    again = run_study("q", emb, ids, -sigma, config, messages.append, checkpoint_dir=tmp_path)
    assert len(counter) == 1  # only the measure's own EVRC; no random seed recomputed
    assert len(resumed) == 1 and not any("earlier run" in m for m in messages)
    assert _text(again) == plain
    monkeypatch.setattr(evaluation, "bootstrap_replicates", _counting(real_bootstrap, third := []))
    messages.clear()
    assert _text(run_study("q", emb, ids, -sigma, config, messages.append, checkpoint_dir=tmp_path)) == plain
    assert not third and any("earlier run" in m for m in messages)
    # another measure shares the random band but never meets these intervals
    other = run_study("q", emb, ids, sigma, config, checkpoint_dir=tmp_path)
    assert len(counter) == 3 and len(third) == 1 and _text(other) != plain


def test_bootstrap_checkpointed_in_steps_gives_the_same_study(tmp_path, monkeypatch):
    from fiqa_bench.protocol import study as evaluation

    emb, ids, sigma = synthetic(4, people=30, per_person=8)
    config = StudyConfig(fmrs=(1e-2,), random_seeds=2, n_boot=5)
    plain = _text(run_study("q", emb, ids, -sigma, config))
    monkeypatch.setattr(evaluation, "BOOTSTRAP_CHUNK", 2)
    real, calls = evaluation.bootstrap_replicates, []

    def interrupted(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(kwargs["start"])
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation, "bootstrap_replicates", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_study("q", emb, ids, -sigma, config, checkpoint_dir=tmp_path)
    assert calls == [0, 2] and len(list(tmp_path.glob("*.json"))) == 2 + 2  # band seeds + two steps
    monkeypatch.setattr(evaluation, "bootstrap_replicates", _counting(real, resumed := []))
    assert _text(run_study("q", emb, ids, -sigma, config, checkpoint_dir=tmp_path)) == plain
    assert len(resumed) == 1  # only the last step (replicate 4) was missing


def test_several_measures_share_replicates_and_say_which_beats_which():
    from fiqa_bench.protocol.study import run_studies
    from fiqa_bench.metrics import all_vs_all, bootstrap_difference

    emb, ids, sigma = synthetic(5, people=40, per_person=10)
    rng = np.random.default_rng(1)
    measures = {"knows the noise": -sigma, "random": rng.random(len(sigma)), "noisy": -sigma + rng.normal(0, 0.2, len(sigma))}
    config = StudyConfig(fmrs=(1e-2,), policies=("fixed",), random_seeds=3, n_boot=30)
    result = run_studies(measures, emb, ids, config)
    assert result.labels == list(measures)
    assert result.beats("knows the noise", "random", "fixed", 1e-2)
    assert not result.beats("random", "knows the noise", "fixed", 1e-2)
    ci = result.differences[("fixed", 1e-2)][("knows the noise", "noisy")]
    reference = bootstrap_difference(all_vs_all(emb, ids), measures["knows the noise"], measures["noisy"],
                                     fmr=1e-2, policy="fixed", n_boot=30, seed=0)
    np.testing.assert_array_equal(ci.replicates, reference.replicates)
    for label in measures:
        assert result.studies[label].random_aoc is result.studies["random"].random_aoc
    with pytest.raises(ValueError, match="no quality measure"):
        run_studies({}, emb, ids, config)


def _text(study) -> str:
    """The study as JSON text (NaN-safe equality, every number to its last bit)."""
    return json.dumps(study.to_dict(), sort_keys=True)


def _counting(function, log: list):
    def wrapper(*args, **kwargs):
        log.append(1)
        return function(*args, **kwargs)

    return wrapper


def test_forked_bootstrap_processes_give_the_same_study(tmp_path, monkeypatch):
    """Steps computed by two forked processes are the replicates one process computes, and each is kept."""
    from fiqa_bench.protocol import study as evaluation

    if not evaluation.FORK_AVAILABLE:
        pytest.skip("fork is not available here: the bootstrap runs in one process")
    emb, ids, sigma = synthetic(6, people=30, per_person=8)
    rng = np.random.default_rng(2)
    measures = {"oracle": -sigma, "random": rng.random(len(sigma))}
    config = StudyConfig(fmrs=(1e-2,), random_seeds=2, n_boot=7)
    monkeypatch.setattr(evaluation, "BOOTSTRAP_CHUNK", 2)
    said: list[str] = []
    alone = run_studies(measures, emb, ids, config)
    forked = run_studies(measures, emb, ids, config, said.append, checkpoint_dir=tmp_path, workers=2)
    assert json.dumps(forked.to_dict(), sort_keys=True) == json.dumps(alone.to_dict(), sort_keys=True)
    assert any(message.endswith(", 2 processes") for message in said)
    assert len(list(tmp_path.glob("*.json"))) == 2 + 4  # band seeds + the four steps
