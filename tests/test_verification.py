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
