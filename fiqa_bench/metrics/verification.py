"""Verification accuracy of a pair list with one best threshold.

Decision rule: a pair is accepted as genuine when its score ``s >= t``.
The accuracy at threshold ``t`` is

    acc(t) = (#{genuine: s >= t} + #{impostor: s < t}) / N

and :func:`best_threshold_accuracy` maximises it over every ``t`` that
changes a decision, i.e. over the distinct scores and ``+inf`` (accept
nothing), exactly, with ties in score always decided together.  This is the
"one threshold over all pairs" figure (not LFW's 10-fold protocol, where the
threshold is chosen on nine folds and tested on the tenth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ThresholdAccuracy:
    """Best single-threshold accuracy.

    Attributes:
        accuracy: fraction of pairs decided correctly at ``threshold``.
        threshold: the highest threshold achieving it (accept if s >= t).
        n_genuine: genuine pairs used.
        n_impostor: impostor pairs used.
    """

    accuracy: float
    threshold: float
    n_genuine: int
    n_impostor: int


def best_threshold_accuracy(scores: np.ndarray, genuine: np.ndarray) -> ThresholdAccuracy:
    """The accuracy-maximising threshold for ``scores`` labelled by ``genuine``.

    Args:
        scores: ``(N,)`` similarity scores, higher = more alike; no NaN.
        genuine: ``(N,)`` bool, True for same-identity pairs.

    Example:
        >>> best_threshold_accuracy(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 1, 0, 0], bool)).accuracy
        1.0
    """
    scores = np.asarray(scores, dtype=np.float64)
    genuine = np.asarray(genuine, dtype=bool)
    if scores.shape != genuine.shape or scores.ndim != 1:
        raise ValueError(f"scores and genuine must be 1-D of one length, got {scores.shape} and {genuine.shape}")
    if len(scores) == 0:
        raise ValueError("no pairs to evaluate")
    if np.isnan(scores).any():
        raise ValueError(f"{int(np.isnan(scores).sum())} scores are NaN; drop or handle failed pairs first")
    order = np.argsort(-scores, kind="stable")
    s, g = scores[order], genuine[order]
    n_gen = int(g.sum())
    n_imp = len(g) - n_gen
    # Candidate thresholds: each distinct score (accept it and all above), plus accept-nothing.
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    tp = np.cumsum(g)[last_of_tie]
    fp = np.cumsum(~g)[last_of_tie]
    correct = np.r_[n_imp, tp + (n_imp - fp)]
    thresholds = np.r_[np.inf, s[last_of_tie]]
    best = int(np.argmax(correct))
    return ThresholdAccuracy(float(correct[best] / len(s)), float(thresholds[best]), n_gen, n_imp)
