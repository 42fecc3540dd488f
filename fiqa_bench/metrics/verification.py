"""Verification accuracy of a pair list with one best threshold.

Decision rule: a pair is accepted as genuine when its score ``s >= t``.
The accuracy at threshold ``t`` is

    acc(t) = (#{genuine: s >= t} + #{impostor: s < t}) / N

and :func:`best_threshold_accuracy` maximises it over every ``t`` that
changes a decision, i.e. over the distinct scores and ``+inf`` (accept
nothing), exactly, with ties in score always decided together.  This is the
"one threshold over all pairs" figure.  :func:`kfold_accuracy` is LFW's
10-fold protocol: the threshold is chosen on nine folds and tested on the
tenth, and the ten accuracies are reported as mean +- sd.
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
        >>> r = best_threshold_accuracy(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 1, 0, 0], bool))
        >>> r.accuracy, r.threshold   # accept s >= 0.8: the highest threshold that decides every pair right
        (1.0, 0.8)
        >>> r = best_threshold_accuracy(np.array([0.9, 0.5, 0.5, 0.1]), np.array([1, 1, 0, 0], bool))
        >>> r.accuracy, r.threshold   # the pairs tied at 0.5 are decided together: 3 of 4 at best, highest t 0.9
        (0.75, 0.9)
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


@dataclass(frozen=True)
class KFoldAccuracy:
    """Accuracy under a k-fold protocol (LFW View 2: ten folds).

    Attributes:
        mean: mean over folds of the test-fold accuracy.
        sd: standard deviation of the fold accuracies (``ddof=0``, as
            insightface's LFW evaluation reports it).
        standard_error: ``sd_(ddof=1) / sqrt(k)``, the figure LFW's own
            instructions ask for.
        fold_accuracies: ``(k,)`` test accuracy of each fold.
        thresholds: ``(k,)`` the threshold chosen on the other folds.
    """

    mean: float
    sd: float
    standard_error: float
    fold_accuracies: np.ndarray
    thresholds: np.ndarray


def kfold_accuracy(scores: np.ndarray, genuine: np.ndarray, folds: np.ndarray) -> KFoldAccuracy:
    """Accuracy of each fold at the best threshold of the other folds (LFW's unrestricted protocol).

    For fold ``k``: ``t_k = argmax_t acc_{not k}(t)`` (:func:`best_threshold_accuracy`
    on every other fold's pairs), then ``acc_k(t_k)`` on fold ``k``'s pairs
    (accept if ``s >= t_k``).  Reported as mean and standard deviation
    over the folds.

    Args:
        scores: ``(N,)`` similarity scores; no NaN.
        genuine: ``(N,)`` bool.
        folds: ``(N,)`` int fold of each pair; at least two folds.
    """
    scores = np.asarray(scores, dtype=np.float64)
    genuine = np.asarray(genuine, dtype=bool)
    folds = np.asarray(folds)
    if not (scores.shape == genuine.shape == folds.shape) or scores.ndim != 1:
        raise ValueError(f"scores, genuine and folds must be 1-D of one length, got {scores.shape}, "
                         f"{genuine.shape} and {folds.shape}")
    names = np.unique(folds)
    if len(names) < 2:
        raise ValueError(f"k-fold accuracy needs at least two folds, got {len(names)}")
    accuracies, thresholds = [], []
    for k in names:
        test = folds == k
        t = best_threshold_accuracy(scores[~test], genuine[~test]).threshold
        accuracies.append(float(np.mean((scores[test] >= t) == genuine[test])))
        thresholds.append(t)
    acc = np.array(accuracies)
    return KFoldAccuracy(float(acc.mean()), float(acc.std()), float(acc.std(ddof=1) / np.sqrt(len(acc))), acc,
                         np.array(thresholds))
