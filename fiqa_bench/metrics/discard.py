"""EVRC / EDC: FNMR and FMR versus the fraction of data discarded by quality.

Definitions (SDD-FIQA Sec. 3.1 and 4.1; ISO/IEC 29794-1 EDC).  Samples with
quality ``q`` are discarded lowest quality first.  A comparison of samples
``a, b`` has *pair quality* ``q_ab = min(q_a, q_b)`` (pluggable); it is
*remaining* at quality cutoff ``c`` when ``q_ab >= c``.  At discard fraction
``phi`` the error rates are measured on the remaining comparisons:

    FNMR(phi) = |{genuine remaining : s <  t(phi)}| / |genuine remaining|
    FMR(phi)  = |{impostor remaining : s >= t(phi)}| / |impostor remaining|

with the decision rule *accept if s >= t* (see :mod:`.thresholds`).

Threshold policy (named in every result):

* ``"recomputed"``: ``t(phi)`` is the exact threshold at the target FMR over
  the *remaining* impostor comparisons (SDD-FIQA: "the threshold has to keep
  changing"; the SER-FIQ, MagFace and CR-FIQA evaluation scripts).
* ``"fixed"``: ``t`` is set once at the target FMR over *all* impostor
  comparisons (ISO/IEC 29794-1 EDC; dasec/quality-assessment-evaluation
  ``edc.py``).

Discard axis (named in every result):

* ``"images"``: ``phi`` is the fraction of *samples* discarded (the paper's
  "ratio of unconsidered images"); a comparison leaves when either of its
  samples does, which is exactly the ``min`` pair-quality rule.
* ``"comparisons"``: ``phi`` is the fraction of *genuine comparisons*
  discarded by pair quality (the FNM-EDC of ``edc.py``, whose discard
  fraction counts the mated comparisons the FNMR is measured on).  The same
  pair-quality cutoff is applied to the impostor comparisons.

Ties and determinism: samples (or comparisons) of equal quality are always
discarded together.  At a requested ``phi`` the discarded set is the largest
set of whole quality-tie groups whose fraction does not exceed ``phi``
(``discard_achieved <= discard_requested``, compared in float64), i.e. the
step curve of ``edc.py`` read at ``phi``.  Every result depends only on the
multisets of (score, quality) values, so it is invariant to the input order
and to any strictly increasing transform of the qualities.

NaN qualities (samples that could not be assessed) rank below every other
value, including ``-inf``: they are discarded first, and counted
(``n_nan_images``, ``n_nan_genuine``, ``n_nan_impostor``).

Insufficient comparisons: at a point where the remaining impostors allow
fewer than ``min_false_matches`` (default 10) false matches at the target
FMR (fewer than ~10/FMR impostors) the threshold is undetermined; that point
is flagged ``insufficient`` and its FNMR, FMR and threshold are NaN.  For the
``fixed`` policy this concerns the single threshold on all impostors.

Algorithm.  Qualities are replaced by dense integer ranks.  Per-rank counts of
images, genuine and impostor comparisons (one chunked pass) give every
remaining count by suffix sums.  For ``recomputed``, the threshold at each
point is the ``(k+1)``-th highest remaining impostor score; it lies among the
highest-scoring impostors, so only a *pool* of the top impostor scores (all
impostors with ``s >= s_cut``) is sorted, and each point reads the pool's
remaining members through per-cell prefix sums (:class:`_LevelPrefix`).  The
answer is exact whenever more than ``k`` pool members remain (every impostor
outside the pool scores below every member), which is checked; otherwise the
pool grows (x2, up to all impostors), and the quality measure starts at that
size next time.  The genuine side uses the same prefix sums: one weighted
count per evaluation instead of a cumulative sum per discard point.

Reuse across evaluations (a study evaluates 10-20 quality measures on 20
random seeds and 100 bootstrap replicates of the *same* comparisons): the
sorted selection of top impostors and their pairs depend on the scores alone
and are kept per score array, each measure's ranks of them per measure, each
replicate's pair weights per replicate; pools are prefixes of the selection.
Every count is an integer (or a sum of integer weights, exact in float64), so
reuse and cell sizes never change a result.

The exact step curve of the ``fixed`` policy (one point per quality-tie
group, as ``edc.py`` reports it) is :func:`edc_steps` /
:func:`edc_steps_from_samples`; :func:`evrc` samples curves at requested
discard fractions (default ``0, 0.01, ..., 0.95``: 96 points).  The curve
types are those of :mod:`fiqa_bench.metrics.curves`.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from fiqa_bench.metrics._common import (
    AXES,
    POLICIES,
    allowed_count,
    as_qualities,
    as_scores,
    check_choice,
    check_discard_fractions,
    check_fmrs,
    check_min_false_matches,
    quality_ranks,
    threshold_from_rejected,
)
from fiqa_bench.metrics.comparisons import Comparisons, _check_pairs
from fiqa_bench.metrics.curves import DiscardCurve, EDCSteps
from fiqa_bench.metrics.summaries import aoc_or_nan, edc_pauc

__all__ = [
    "DEFAULT_DISCARD_FRACTIONS",
    "EVRCResult",
    "evrc",
    "edc_steps",
    "edc_steps_from_samples",
]

#: 0.00, 0.01, ..., 0.95: the 96 points of the paper's AOC interval [0, 0.95].
DEFAULT_DISCARD_FRACTIONS = np.arange(96) / 100.0

PairQuality = str | Callable[[np.ndarray, np.ndarray], np.ndarray]

_CHUNK = 1 << 22  # impostor comparisons per counting chunk
_POOL_PAD = 4096  # extra pool members beyond twice the largest allowed false-match count


@dataclass(frozen=True)
class EVRCResult:
    """The curves of one :func:`evrc` call, ordered policy-major then FMR."""

    curves: tuple[DiscardCurve, ...]

    def get(self, policy: str, fmr: float) -> DiscardCurve:
        for c in self.curves:
            if c.policy == policy and c.fmr_target == float(fmr):
                return c
        have = [(c.policy, c.fmr_target) for c in self.curves]
        raise ValueError(f"no curve for policy={policy!r}, fmr={fmr!r}; have {have}")

    def to_dict(self) -> dict:
        return {"curves": [c.to_dict() for c in self.curves]}

    def to_markdown(self, pauc_limit: float = 0.20) -> str:
        """One row per curve: FNMR at 0 discard, AOC (paper-compatible and raw), pAUC."""
        lines = [
            f"| policy | axis | FMR | FNMR@0 | AOC (relative) | AOC (raw Eq. 13) | pAUC@{pauc_limit:g} | insufficient points |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for c in self.curves:
            rel, raw = aoc_or_nan(c, normalised=True), aoc_or_nan(c, normalised=False)
            try:
                pauc = f"{edc_pauc(c, pauc_limit):.4f}"
            except ValueError:
                pauc = "n/a"
            fnmr0 = "insufficient" if c.insufficient[0] else f"{c.fnmr[0]:.4f}"
            lines.append(
                f"| {c.policy} | {c.axis} | {c.fmr_target:g} | {fnmr0} | "
                f"{'n/a' if np.isnan(rel) else f'{rel:.4f}'} | {'n/a' if np.isnan(raw) else f'{raw:.4f}'} | "
                f"{pauc} | {int(c.insufficient.sum())} |"
            )
        return "\n".join(lines)


# --------------------------------------------------------------------------- preparation


@dataclass
class _Prepared:
    comparisons: Comparisons
    axis: str
    pair_quality_name: str
    n_ranks: int
    gen_ranks: np.ndarray  # (G,) int32
    image_ranks: np.ndarray | None  # (N,) int32 for "min"
    n_nan_images: int
    func: Callable | None = None
    q: np.ndarray | None = None
    levels: np.ndarray | None = None
    pool_cache: dict = field(default_factory=dict)  # impostor selection / genuine order -> this quality's ranks

    def ranks(self, pairs: np.ndarray) -> tuple[np.ndarray, int]:
        """Pair-quality ranks of ``pairs`` (k, 2) and how many are NaN."""
        a, b = pairs[:, 0], pairs[:, 1]
        if self.image_ranks is not None:
            r = np.minimum(self.image_ranks[a], self.image_ranks[b])
            return r, -1
        pq = _call_pair_quality(self.func, self.q[a], self.q[b])
        nan = np.isnan(pq)
        r = np.searchsorted(self.levels, pq, side="right").astype(np.int32)
        r[nan] = 0
        return r, int(nan.sum())


def _call_pair_quality(func: Callable, qa: np.ndarray, qb: np.ndarray) -> np.ndarray:
    out = np.asarray(func(qa, qb), dtype=np.float64)
    if out.shape != qa.shape:
        raise ValueError(f"pair_quality function returned shape {out.shape} for inputs of shape {qa.shape}")
    return out


def _prepare(comparisons: Comparisons, qualities: object, axis: str, pair_quality: PairQuality) -> _Prepared:
    if not isinstance(comparisons, Comparisons):
        raise TypeError(f"comparisons must be a Comparisons object, got {type(comparisons).__name__}")
    axis = check_choice("axis", axis, AXES)
    if comparisons.n_genuine == 0:
        raise ValueError("the genuine comparison set is empty: FNMR is undefined")
    if comparisons.n_impostor == 0:
        raise ValueError("the impostor comparison set is empty: no threshold can be set at any FMR")
    q = as_qualities(qualities, comparisons.n_samples)
    if isinstance(pair_quality, str):
        check_choice("pair_quality", pair_quality, ("min",))
        ranks, n_ranks, n_nan = quality_ranks(q)
        gp = comparisons.genuine_pairs
        gr = np.minimum(ranks[gp[:, 0]], ranks[gp[:, 1]])
        return _Prepared(comparisons, axis, "min", n_ranks, gr, ranks, n_nan)
    if not callable(pair_quality):
        raise TypeError(f"pair_quality must be 'min' or a callable, got {pair_quality!r}")
    if axis == "images":
        raise ValueError(
            "axis='images' discards a comparison when either sample is discarded, which is pair quality = min; "
            f"a custom pair_quality ({getattr(pair_quality, '__name__', pair_quality)!r}) needs axis='comparisons'"
        )
    gp = comparisons.genuine_pairs
    gq = _call_pair_quality(pair_quality, q[gp[:, 0]], q[gp[:, 1]])
    gnan = np.isnan(gq)
    levels = np.unique(gq[~gnan])
    gr = np.searchsorted(levels, gq, side="right").astype(np.int32)
    gr[gnan] = 0
    name = getattr(pair_quality, "__name__", repr(pair_quality))
    return _Prepared(comparisons, axis, name, len(levels) + 1, gr, None, int(np.isnan(q).sum()), pair_quality, q, levels)


def _suffix(h: np.ndarray) -> np.ndarray:
    """``out[r] = sum(h[r:])``, length ``len(h) + 1``."""
    return np.concatenate((np.cumsum(h[::-1])[::-1], [0.0 if h.dtype.kind == "f" else 0]))


def _cutoffs(h_axis: np.ndarray, d: np.ndarray, n_ranks: int) -> tuple[np.ndarray, np.ndarray]:
    """Rank cutoffs (remaining iff rank >= cut) and achieved discard fractions."""
    present = np.flatnonzero(h_axis > 0)
    c = np.cumsum(h_axis[present])
    total = c[-1]
    n_levels = np.searchsorted(c / total, d, side="right")  # whole tie groups with fraction <= phi
    cut = np.where(n_levels < len(present), present[np.minimum(n_levels, len(present) - 1)], n_ranks)
    cut = np.where(n_levels == 0, 0, cut)
    achieved = np.where(n_levels == 0, 0.0, c[np.maximum(n_levels - 1, 0)] / total)
    return cut.astype(np.int64), achieved


# --------------------------------------------------------------------------- evaluation


def _complete_impostor_rank_counts(prep: _Prepared, sample_weights: np.ndarray | None) -> np.ndarray | None:
    """Per-rank impostor counts of a *complete* all-vs-all set from the samples alone, or None.

    With pair quality ``min``, an impostor pair is remaining at cut ``r`` when
    both samples have rank ``>= r``.  Over the samples with rank ``>= r``, with
    weights ``w`` (1 without), identity groups ``g`` and ``A = sum w``,
    ``D = sum_g (sum_{i in g} w_i)^2``, the (weighted) number of pairs of
    different identities is

        C(r) = (A(r)^2 - D(r)) / 2

    and the count at rank ``r`` is ``C(r) - C(r + 1)``.  ``D`` grows by
    ``2 S_g w_i + w_i^2`` as sample ``i`` joins its group ``g`` (``S_g``: the
    weight already there), so one sort gives every ``C(r)`` in O(N log N)
    instead of a pass over all N(N-1)/2 pairs; exact for integer weights
    (all sums stay below 2^53).
    """
    comp = prep.comparisons
    if prep.image_ranks is None or comp.sampling.method != "all" or comp.identities is None:
        return None
    ranks = prep.image_ranks.astype(np.int64)
    n = len(ranks)
    w = np.ones(n) if sample_weights is None else np.asarray(sample_weights, dtype=np.float64)
    codes = np.unique(comp.identities, return_inverse=True)[1].ravel()
    order = np.lexsort((np.arange(n), -ranks))  # by rank, highest first; the order within a rank is immaterial
    by_group = order[np.argsort(codes[order], kind="stable")]  # grouped by identity, join order kept
    w_group = w[by_group]
    cumulative = np.cumsum(w_group)
    starts = np.flatnonzero(np.r_[True, codes[by_group][1:] != codes[by_group][:-1]])
    before_group = np.repeat(np.r_[0.0, cumulative[starts[1:] - 1]], np.diff(np.r_[starts, n]))
    prior = cumulative - w_group - before_group  # S_g when the sample joins
    growth = np.zeros(n)
    growth[by_group] = 2.0 * prior * w_group + w_group**2
    a = _suffix(np.bincount(ranks, weights=w, minlength=prep.n_ranks))
    d = _suffix(np.bincount(ranks, weights=growth, minlength=prep.n_ranks))
    c = (a * a - d) / 2.0
    h = c[:-1] - c[1:]
    return np.rint(h).astype(np.int64) if sample_weights is None else h


def _impostor_rank_counts(prep: _Prepared, sample_weights: np.ndarray | None) -> tuple[np.ndarray, float]:
    complete = _complete_impostor_rank_counts(prep, sample_weights)
    if complete is not None:
        return complete, float(complete[0])
    pairs = prep.comparisons.impostor_pairs
    h = np.zeros(prep.n_ranks, dtype=np.float64 if sample_weights is not None else np.int64)
    n_nan = 0.0
    for s in range(0, len(pairs), _CHUNK):
        p = pairs[s : s + _CHUNK]
        r, nan = prep.ranks(p)
        if sample_weights is None:
            h += np.bincount(r, minlength=prep.n_ranks)
            n_nan += nan
        else:
            w = sample_weights[p[:, 0]] * sample_weights[p[:, 1]]
            h += np.bincount(r, weights=w, minlength=prep.n_ranks)
            if nan > 0:
                n_nan += float(w[np.isnan(_call_pair_quality(prep.func, prep.q[p[:, 0]], prep.q[p[:, 1]]))].sum())
    if prep.image_ranks is not None:
        n_nan = float(h[0])
    return h, n_nan


class _LevelPrefix:
    """Weights of members ``0 .. n-1`` (in a fixed order, e.g. by score) summed over any prefix, counting only
    the members at or above a level.

    Member ``j`` has level ``L_j`` (``-1``: counted at no level) and weight ``w_j``.
    :meth:`weight_before` is ``sum(w_j : j < position, L_j >= i)``.  Positions are
    split into cells of ``size`` members; ``before[i, t]`` holds the weight of the
    members in cells before ``t`` with level ``>= i`` (one weighted count over the
    members, then cumulative sums over levels and cells), so any prefix is one
    look-up plus a sum within one cell: O(cells + size) per level instead of a
    cumulative sum over all members per level.  Sums of integer weights are exact
    in float64, so every answer equals the one a full cumulative sum would give.
    """

    CELLS = 1024

    def __init__(self, level_of_rank: np.ndarray, ranks: np.ndarray, weights: np.ndarray, n_levels: int) -> None:
        """Member ``j``'s level is ``level_of_rank[ranks[j]]``."""
        n = len(ranks)
        self.weights = weights
        self.size = max(1, -(-n // self.CELLS))
        n_cells = -(-n // self.size) if n else 0
        level_of_rank = np.asarray(level_of_rank, dtype=np.int64)
        key = ((level_of_rank + 1) * n_cells)[ranks]  # one pass over the members: (level + 1) * cells + cell
        key += _cell_of_position(n, self.size)
        self.ranks, self.level_of_rank = ranks, level_of_rank  # levels of a cell's members when a query needs them
        counts = np.bincount(key, weights=weights, minlength=(n_levels + 1) * n_cells)
        per_cell = counts.reshape(n_levels + 1, n_cells)[1:]  # row 0 held the members of level -1
        remaining = np.cumsum(per_cell[::-1], axis=0)[::-1]  # members with level >= i
        self.before = np.concatenate((np.zeros((n_levels, 1)), np.cumsum(remaining, axis=1)), axis=1)

    def total(self, i: int) -> float:
        """Weight of the members with level ``>= i``."""
        return float(self.before[i, -1])

    def weight_before(self, i: int, position: int) -> float:
        """Weight of the members with level ``>= i`` among the first ``position``."""
        t = position // self.size
        start = t * self.size
        within = (self.weights[start:position][self.level_of_rank[self.ranks[start:position]] >= i].sum()
                  if position > start else 0.0)
        return float(self.before[i, t] + within)

    def position_passing(self, i: int, k: float) -> int:
        """The first position whose members up to and including it, at level ``>= i``, weigh more than ``k``
        (``k < total(i)``)."""
        t = int(np.searchsorted(self.before[i], k, side="right")) - 1  # the cell where the weight passes k
        start = t * self.size
        stop = min(start + self.size, len(self.ranks))
        w = np.where(self.level_of_rank[self.ranks[start:stop]] >= i, self.weights[start:stop], 0.0)
        return start + int(np.searchsorted(self.before[i, t] + np.cumsum(w), k, side="right"))


_CELL_CACHE: dict[tuple[int, int], np.ndarray] = {}


def _cell_of_position(n: int, size: int) -> np.ndarray:
    """``arange(n) // size`` (the cell of each position), kept for the last few shapes: every replicate asks again."""
    cells = _CELL_CACHE.get((n, size))
    if cells is None:
        cells = (np.arange(n, dtype=np.int64) // size)
        cells.flags.writeable = False
        if len(_CELL_CACHE) >= 8:
            _CELL_CACHE.pop(next(iter(_CELL_CACHE)))
        _CELL_CACHE[(n, size)] = cells
    return cells


@dataclass
class _Selection:
    """The highest-scoring impostors of one score array (all with ``score >= s_cut``), sorted by score descending
    (stable), with their sample pairs; every pool is a prefix of it.

    Which impostors score highest depends on the scores alone, not on qualities or weights, so a selection
    serves every quality measure, random seed and bootstrap replicate of a study (:func:`_selection`).
    """

    pairs: np.ndarray  # (n, 2) sample indices
    neg_scores: np.ndarray  # (n,) ascending
    complete: bool  # all impostors are in it
    weights_of: tuple = (None, None)  # (weak reference to sample weights, their pair products over the selection)

    def prefix(self, target: int) -> tuple[int, bool]:
        """The pool for ``target``: about ``1.25 * target`` leading members, extended over ties with the last one
        (so every impostor outside it scores strictly below every member), and whether it holds all impostors."""
        n = len(self.neg_scores)
        take = min(n, int(np.ceil(1.25 * target)))
        if take < n and take > 0:
            take = int(np.searchsorted(self.neg_scores, self.neg_scores[take - 1], side="right"))
        return take, self.complete and take == n

    def pair_weights(self, sample_weights: np.ndarray) -> np.ndarray:
        """``w_a * w_b`` of every member, kept for the last sample weights (the quality measures of one replicate)."""
        ref, products = self.weights_of
        if ref is None or ref() is not sample_weights:
            products = sample_weights[self.pairs[:, 0]] * sample_weights[self.pairs[:, 1]]
            self.weights_of = (weakref.ref(sample_weights), products)
        return products


class _PerArray:
    """Values computed from an array, kept for the last few arrays (by identity, while they live): a study
    evaluates many quality measures, seeds and replicates on the same comparisons (a cross-model study on
    two sets of them)."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._items: dict[int, tuple[weakref.ref, object]] = {}

    def get(self, array: np.ndarray) -> object | None:
        kept = self._items.get(id(array))
        return kept[1] if kept is not None and kept[0]() is array else None

    def put(self, array: np.ndarray, value: object) -> None:
        for key in [k for k, (ref, _) in self._items.items() if ref() is None]:
            del self._items[key]
        if len(self._items) >= self.size:
            self._items.pop(next(iter(self._items)))
        self._items[id(array)] = (weakref.ref(array), value)


_SELECTIONS = _PerArray()


def _selection(scores: np.ndarray, pairs: np.ndarray, target: int) -> _Selection:
    """A selection of at least ``target`` highest impostors of ``scores`` (or all of them), reused while it
    suffices."""
    kept = _SELECTIONS.get(scores)
    if isinstance(kept, _Selection) and (len(kept.neg_scores) >= target or kept.complete):
        return kept
    n = len(scores)
    if target >= n:
        idx, complete = np.arange(n), True
    else:
        stride = max(1, n // 1_000_000)
        sub = scores[::stride]
        take = int(np.ceil(len(sub) * min(1.0, 1.25 * target / n)))
        pos = len(sub) - take
        s_cut = np.partition(sub, pos)[pos] if pos > 0 else -np.inf
        idx = np.flatnonzero(scores >= s_cut)
        complete = len(idx) == n
    idx = idx[np.argsort(-scores[idx], kind="stable")]
    selection = _Selection(pairs[idx], -scores[idx], complete)
    for array in (selection.pairs, selection.neg_scores):
        array.flags.writeable = False
    _SELECTIONS.put(scores, selection)
    return selection


class _Pool:
    """The impostors with ``score >= s_cut`` (a prefix of the :class:`_Selection`), sorted by score descending,
    indexed for every cut at once.

    Member ``j`` (pool position ``j``) is remaining at the ``i``-th cut when its
    level ``L_j`` (the number of cuts at or below its pair-quality rank, minus
    one) is ``>= i``; :class:`_LevelPrefix` gives the remaining weight of any
    prefix at any cut.  The selection's pairs, each quality measure's ranks of
    them and each replicate's pair weights are made once and sliced here.
    """

    def __init__(self, prep: _Prepared, sample_weights: np.ndarray | None, cuts: np.ndarray, target: int) -> None:
        comp = prep.comparisons
        selection = _selection(comp.impostor_scores, comp.impostor_pairs, target)
        n, self.complete = selection.prefix(target)
        cached = prep.pool_cache.get("ranks")
        if cached is None or cached[0] is not selection:  # the same selection for the same quality: reuse
            cached = (selection, prep.ranks(selection.pairs)[0])
            prep.pool_cache["ranks"] = cached
        ranks = cached[1][:n]
        self.neg_scores = selection.neg_scores[:n]
        weights = np.ones(n) if sample_weights is None else selection.pair_weights(sample_weights)[:n]
        level_of_rank = np.searchsorted(cuts, np.arange(prep.n_ranks), side="right") - 1  # -1: at no cut
        self.index = _LevelPrefix(level_of_rank, ranks, weights, len(cuts))

    def total(self, i: int) -> float:
        """Weight of the members remaining at cut ``i``."""
        return self.index.total(i)

    def order_statistic(self, i: int, k: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """For each allowed count ``k``: (s*, false-match weight, ok) among the members remaining at cut ``i``.

        ``s*`` is the highest score with more than ``k`` remaining weight at or above it;
        false matches are the remaining weight strictly above ``s*``.  ``ok`` is False when
        the remaining members hold too little weight (the pool is too small).
        """
        k = np.asarray(k, dtype=np.float64)
        if not np.all(k < self.total(i)):
            return np.full(len(k), np.nan), np.zeros(len(k)), False
        s_star, false_matches = np.empty(len(k)), np.empty(len(k))
        for m, kk in enumerate(k):
            s_star[m] = -self.neg_scores[self.index.position_passing(i, kk)]
            false_matches[m] = self.count_above(i, s_star[m])
        return s_star, false_matches, True

    def count_above(self, i: int, s: float) -> float:
        """Weight remaining at cut ``i`` with score strictly above ``s``."""
        position = int(np.searchsorted(self.neg_scores, -np.asarray(s, dtype=self.neg_scores.dtype), side="left"))
        return self.index.weight_before(i, position)


_GENUINE_ORDERS = _PerArray()


def _genuine_order(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``argsort(scores, stable)`` and the sorted scores (the same for every quality measure and replicate)."""
    kept = _GENUINE_ORDERS.get(scores)
    if kept is not None:
        return kept  # type: ignore[return-value]
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    for array in (order, ordered):
        array.flags.writeable = False
    _GENUINE_ORDERS.put(scores, (order, ordered))
    return order, ordered


def _evaluate(
    prep: _Prepared,
    fmrs: tuple[float, ...],
    policies: tuple[str, ...],
    d: np.ndarray,
    mfm: int,
    sample_weights: np.ndarray | None = None,
) -> EVRCResult:
    comp = prep.comparisons
    R = prep.n_ranks
    gp = comp.genuine_pairs
    gw = None if sample_weights is None else sample_weights[gp[:, 0]]
    h_gen = np.bincount(prep.gen_ranks, weights=gw, minlength=R)
    h_imp, n_nan_imp = _impostor_rank_counts(prep, sample_weights)
    h_img = None
    if prep.image_ranks is not None:
        h_img = np.bincount(prep.image_ranks, weights=sample_weights, minlength=R)
    h_axis = h_img if prep.axis == "images" else h_gen
    if h_gen.sum() == 0:
        raise ValueError("the genuine comparison set is empty (zero total weight): FNMR is undefined")
    if h_imp.sum() == 0:
        raise ValueError("the impostor comparison set is empty (zero total weight)")
    cut, achieved = _cutoffs(h_axis, d, R)
    S_gen, S_imp = _suffix(h_gen.astype(np.float64)), _suffix(h_imp.astype(np.float64))
    n_gen, n_imp = S_gen[cut], S_imp[cut]
    n_img = None if h_img is None else _suffix(h_img.astype(np.float64))[cut]
    f = np.asarray(fmrs)
    k_rec = allowed_count(f[None, :], n_imp[:, None])  # (P, F)
    insufficient_rec = (k_rec < mfm) | (n_imp[:, None] == 0)  # no impostor left: no threshold at all
    k_fix = allowed_count(f, S_imp[0])  # (F,)
    insufficient_fix = k_fix < mfm

    # genuine scores sorted once per comparison set, each quality measure's ranks of them once
    g_order, g_sorted = _genuine_order(comp.genuine_scores)
    cached = prep.pool_cache.get("genuine")
    if cached is None or cached[0] is not g_order:
        cached = (g_order, prep.gen_ranks[g_order])
        prep.pool_cache["genuine"] = cached
    g_rank_sorted = cached[1]
    g_w_sorted = np.ones(len(g_order)) if gw is None else gw[g_order]

    need_rec = "recomputed" in policies and not insufficient_rec.all()
    need_fix = "fixed" in policies and not insufficient_fix.all()
    unique_cuts, inverse = np.unique(cut, return_inverse=True)
    n_pts, n_f = len(d), len(f)
    rec_star = np.full((n_pts, n_f), np.nan)
    rec_fa = np.full((n_pts, n_f), np.nan)
    fix_fa = np.full((n_pts, n_f), np.nan)
    fix_star = np.full(n_f, np.nan)
    if need_rec or need_fix:
        mean_w = float(S_imp[0]) / comp.n_impostor
        # a quality measure that needed a larger pool last time (its low-quality samples hold the top impostor
        # scores) starts there: the next replicate or seed of it almost always needs it again
        growth = prep.pool_cache.get("growth", 1)
        target = (int(2 * (float(k_fix.max()) / mean_w + 1)) + _POOL_PAD) * growth
        pool_cuts = np.union1d([0], unique_cuts)  # cut 0 (all impostors) sets the fixed threshold
        at = np.searchsorted(pool_cuts, unique_cuts)
        while True:
            pool = _Pool(prep, sample_weights, pool_cuts, target)
            ok = True
            if need_fix:  # the fixed threshold: all impostors (cut 0)
                s, _, ok = pool.order_statistic(0, np.where(insufficient_fix, 0, k_fix))
                fix_star = np.where(insufficient_fix, np.nan, s)
            if ok:
                for u in range(len(unique_cuts)):
                    rows = np.flatnonzero(inverse == u)
                    if need_fix:
                        fa = np.array([pool.count_above(int(at[u]), x) for x in np.nan_to_num(fix_star)])
                        fix_fa[rows] = np.where(insufficient_fix, np.nan, fa)
                    suff = ~insufficient_rec[rows[0]]
                    if need_rec and suff.any():
                        s, fa, ok = pool.order_statistic(int(at[u]), np.where(suff, k_rec[rows[0]], 0))
                        if not ok:
                            break
                        rec_star[rows] = np.where(suff, s, np.nan)
                        rec_fa[rows] = np.where(suff, fa, np.nan)
            if ok:
                prep.pool_cache["growth"] = growth
                break
            if pool.complete:  # cannot happen: k < remaining impostor weight by construction
                raise RuntimeError("internal error: threshold order statistic not found among all impostors")
            target, growth = target * 2, growth * 2

    curves = []
    sampling = comp.sampling.to_dict()
    common = dict(
        axis=prep.axis,
        pair_quality=prep.pair_quality_name,
        discard_requested=d,
        discard_achieved=achieved,
        n_genuine=n_gen.astype(np.int64),
        n_impostor=n_imp.astype(np.int64),
        n_images=None if n_img is None else n_img.astype(np.int64),
        n_genuine_total=int(S_gen[0]),
        n_impostor_total=int(S_imp[0]),
        n_images_total=comp.n_samples if sample_weights is None else int(sample_weights.sum()),
        n_nan_images=prep.n_nan_images,
        n_nan_genuine=int(h_gen[0]) if prep.image_ranks is not None else int(np.count_nonzero(prep.gen_ranks == 0)),
        n_nan_impostor=int(n_nan_imp),
        min_false_matches=mfm,
        impostor_sampling=sampling,
    )
    # one column per curve (policy x FMR): its threshold and whether it is undefined, per point
    columns = [(policy, fi) for policy in policies for fi in range(n_f)]
    stars = np.column_stack([rec_star[:, fi] if policy == "recomputed" else np.full(n_pts, fix_star[fi])
                             for policy, fi in columns])
    insuffs = np.column_stack([insufficient_rec[:, fi] if policy == "recomputed"
                               else np.full(n_pts, bool(insufficient_fix[fi])) for policy, fi in columns])
    false_non_matches = np.full((n_pts, len(columns)), np.nan)
    # the remaining genuine weight at or below any score, at any cut: genuine level u = remaining at unique cut u
    level_of_rank = np.searchsorted(unique_cuts, np.arange(R), side="right") - 1
    genuine = _LevelPrefix(level_of_rank, g_rank_sorted, g_w_sorted, len(unique_cuts))
    for u in range(len(unique_cuts)):
        rows = np.flatnonzero(inverse == u)
        for j in range(len(columns)):
            defined = rows[~insuffs[rows, j]]
            if defined.size:
                positions = np.searchsorted(g_sorted, np.asarray(stars[defined, j], dtype=g_sorted.dtype),
                                            side="right")
                false_non_matches[defined, j] = [genuine.weight_before(u, int(x)) for x in positions]
    for j, (policy, fi) in enumerate(columns):
        fmr = fmrs[fi]
        star, insuff, fnmr = stars[:, j], insuffs[:, j].copy(), false_non_matches[:, j]
        fa = rec_fa[:, fi] if policy == "recomputed" else fix_fa[:, fi]
        with np.errstate(divide="ignore", invalid="ignore"):
            fnmr = np.where(n_gen > 0, fnmr / n_gen, np.nan)
            fmr_ach = np.where(n_imp > 0, fa / n_imp, np.nan)
        dt = comp.impostor_scores.dtype
        thr = np.array([np.nan if np.isnan(x) else threshold_from_rejected(x, dt) for x in star])
        for arr in (fnmr, fmr_ach, thr):
            arr[insuff] = np.nan
        curves.append(
            DiscardCurve(
                policy=policy, fmr_target=float(fmr), fnmr=fnmr, fmr=fmr_ach, threshold=thr,
                insufficient=insuff, **common,  # type: ignore[arg-type]
            )
        )
    return EVRCResult(tuple(curves))


def evrc(
    comparisons: Comparisons,
    qualities: np.ndarray,
    *,
    fmrs: float | Sequence[float] = (1e-2, 1e-3, 1e-4),
    policies: str | Sequence[str] = POLICIES,
    axis: str = "images",
    discard_fractions: Sequence[float] | np.ndarray = DEFAULT_DISCARD_FRACTIONS,
    pair_quality: PairQuality = "min",
    min_false_matches: int = 10,
) -> EVRCResult:
    """Error-versus-reject curves (EVRC / EDC), exact, for several FMRs and both policies.

    Args:
        comparisons: scored genuine and impostor comparisons (:mod:`.comparisons`).
        qualities: ``(n_samples,)`` per-sample quality, higher = better; NaN = not assessed
            (discarded first, counted).
        fmrs: target FMR(s), each in (0, 1).  Paper: 1e-2, 1e-3, 1e-4.
        policies: ``"recomputed"`` and/or ``"fixed"`` (see module docstring).
        axis: ``"images"`` (fraction of samples; the paper) or ``"comparisons"``
            (fraction of genuine comparisons; ISO EDC / ``edc.py``).
        discard_fractions: strictly increasing points in [0, 1]; default 96 points 0..0.95.
        pair_quality: ``"min"`` or a vectorised ``f(q_a, q_b) -> q_ab`` (``axis="comparisons"`` only).
        min_false_matches: flag points where the target allows fewer false matches.

    Returns:
        :class:`EVRCResult` with one :class:`DiscardCurve` per (policy, FMR).

    Example:
        >>> from fiqa_bench.metrics.comparisons import all_vs_all
        >>> rng = np.random.default_rng(0)
        >>> c = all_vs_all(rng.normal(size=(40, 8)), np.repeat(np.arange(10), 4))
        >>> r = evrc(c, rng.random(40), fmrs=0.1, min_false_matches=1)
        >>> [curve.policy for curve in r.curves], len(r.curves[0].fnmr)
        (['recomputed', 'fixed'], 96)
    """
    fmr_t = check_fmrs(fmrs)
    pol = (policies,) if isinstance(policies, str) else tuple(policies)
    if not pol:
        raise ValueError("policies is empty; give 'recomputed' and/or 'fixed'")
    for p in pol:
        check_choice("policy", p, POLICIES)
    if len(set(pol)) != len(pol) or len(set(fmr_t)) != len(fmr_t):
        raise ValueError(f"policies {pol} and fmrs {fmr_t} must not repeat a value")
    d = check_discard_fractions(discard_fractions)
    mfm = check_min_false_matches(min_false_matches)
    prep = _prepare(comparisons, qualities, axis, pair_quality)
    return _evaluate(prep, fmr_t, pol, d, mfm)


# --------------------------------------------------------------------------- exact EDC step curves


def _steps_from_ranks(ranks: np.ndarray, n_ranks: int, errors: np.ndarray, error: str, threshold: float, n_nan: int) -> EDCSteps:
    n = len(ranks)
    h = np.bincount(ranks, minlength=n_ranks)
    e = np.bincount(ranks[errors], minlength=n_ranks)
    present = np.flatnonzero(h)
    discard_counts = np.concatenate(([0], np.cumsum(h[present])[:-1]))
    error_counts = _suffix(e)[present]
    return EDCSteps(
        error, float(threshold), discard_counts / n, error_counts / (n - discard_counts),
        discard_counts.astype(np.int64), error_counts.astype(np.int64), n, n_nan,
    )


def _errors(scores: np.ndarray, threshold: float, error: str) -> np.ndarray:
    check_choice("error", error, ("fnmr", "fmr"))
    t = float(threshold)
    if np.isnan(t):
        raise ValueError("threshold is NaN (an insufficient FMR threshold?); give a number")
    return scores < t if error == "fnmr" else scores >= t


def edc_steps(scores: np.ndarray, pair_quality: np.ndarray, threshold: float, *, error: str = "fnmr") -> EDCSteps:
    """Exact EDC at a fixed threshold from per-comparison (pair) qualities.

    Args:
        scores: ``(N,)`` scores of the comparisons the error is measured on
            (genuine for ``"fnmr"``, impostor for ``"fmr"``).
        pair_quality: ``(N,)`` pair qualities; NaN lowest.
        threshold: accept if ``score >= threshold``.
        error: ``"fnmr"`` or ``"fmr"``.

    Example:
        >>> s = edc_steps(np.array([0.1, 0.9, 0.2, 0.8]), np.array([1, 3, 2, 3.0]), 0.5)
        >>> s.discard_fractions.tolist(), s.error_fractions.tolist()
        ([0.0, 0.25, 0.5], [0.5, 0.3333333333333333, 0.0])
    """
    s = as_scores("scores", scores)
    q = np.asarray(pair_quality, dtype=np.float64)
    if q.shape != s.shape:
        raise ValueError(f"pair_quality has shape {q.shape} but scores has {s.shape}")
    errors = _errors(s, threshold, error)
    ranks, n_ranks, n_nan = quality_ranks(q)
    return _steps_from_ranks(ranks, n_ranks, errors, error, threshold, n_nan)


def edc_steps_from_samples(
    scores: np.ndarray,
    pairs: np.ndarray,
    qualities: np.ndarray,
    threshold: float,
    *,
    error: str = "fnmr",
) -> EDCSteps:
    """Exact EDC at a fixed threshold from per-sample qualities, pair quality = min.

    Linear time: sample qualities are ranked once (``O(n log n)`` for ``n``
    samples), pair ranks are ``min`` of two integers, and per-group counts are
    a ``bincount``, so no sort of the ``N`` comparisons is needed.

    Args:
        scores: ``(N,)`` comparison scores.
        pairs: ``(N, 2)`` sample indices of each comparison.
        qualities: ``(n,)`` per-sample qualities (NaN lowest).
        threshold: accept if ``score >= threshold``.
        error: ``"fnmr"`` or ``"fmr"``.
    """
    s = as_scores("scores", scores)
    q = np.asarray(qualities, dtype=np.float64)
    if q.ndim != 1:
        raise ValueError(f"qualities must be 1-D, got shape {q.shape}")
    p = np.asarray(pairs)
    if p.ndim != 2 or p.shape != (len(s), 2):
        raise ValueError(f"pairs must have shape ({len(s)}, 2), got {p.shape}")
    if p.dtype.kind not in "iu":
        p = _check_pairs("pairs", p, len(q))
    elif len(p) and (p.min() < 0 or p.max() >= len(q)):
        _check_pairs("pairs", p, len(q))
    errors = _errors(s, threshold, error)
    ranks, n_ranks, _ = quality_ranks(q)
    pr = np.minimum(ranks[p[:, 0]], ranks[p[:, 1]])
    return _steps_from_ranks(pr, n_ranks, errors, error, threshold, int(np.count_nonzero(pr == 0)))
