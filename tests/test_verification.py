import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fiqa_bench.metrics.verification import best_threshold_accuracy


def brute_force(scores: np.ndarray, genuine: np.ndarray) -> float:
    best = 0.0
    for t in list(np.unique(scores)) + [np.inf]:
        accepted = scores >= t
        best = max(best, float(np.mean(accepted == genuine)))
    return best


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-3, 3), st.booleans()), min_size=1, max_size=40))
def test_matches_brute_force_on_tied_scores(rows):
    scores = np.array([r[0] for r in rows], float) / 3
    genuine = np.array([r[1] for r in rows])
    result = best_threshold_accuracy(scores, genuine)
    assert result.accuracy == pytest.approx(brute_force(scores, genuine))
    assert np.mean((scores >= result.threshold) == genuine) == pytest.approx(result.accuracy)


def test_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        best_threshold_accuracy(np.array([0.1, np.nan]), np.array([True, False]))
    with pytest.raises(ValueError, match="one length"):
        best_threshold_accuracy(np.array([0.1]), np.array([True, False]))
    with pytest.raises(ValueError, match="no pairs"):
        best_threshold_accuracy(np.array([]), np.array([], bool))


def test_kfold_accuracy_tests_each_fold_at_the_other_folds_threshold():
    from fiqa_bench.metrics.verification import kfold_accuracy

    rng = np.random.default_rng(3)
    folds = np.repeat(np.arange(5), 40)
    genuine = np.tile(np.r_[np.ones(20, bool), np.zeros(20, bool)], 5)
    scores = np.round(rng.normal(genuine * 1.5, 1.0), 1)  # rounded: many ties
    result = kfold_accuracy(scores, genuine, folds)
    for k in range(5):
        train = folds != k
        # brute force: every candidate threshold, highest among the best
        candidates = np.r_[np.unique(scores[train]), np.inf]
        acc = [np.mean((scores[train] >= t) == genuine[train]) for t in candidates]
        t = max(c for c, a in zip(candidates, acc) if a == max(acc))
        assert result.thresholds[k] == t
        assert result.fold_accuracies[k] == np.mean((scores[folds == k] >= t) == genuine[folds == k])
    assert result.mean == pytest.approx(result.fold_accuracies.mean())
    assert result.sd == pytest.approx(np.std(result.fold_accuracies))
    assert result.standard_error == pytest.approx(np.std(result.fold_accuracies, ddof=1) / np.sqrt(5))
    with pytest.raises(ValueError, match="two folds"):
        kfold_accuracy(scores, genuine, np.zeros(200, int))
