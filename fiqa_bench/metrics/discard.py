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
impostors with ``s >= s_cut``) is sorted, and each point scans the pool for
its remaining members.  The answer is exact whenever more than ``k`` pool
members remain (every impostor outside the pool scores below every member),
which is checked; otherwise the pool grows (x4, up to all impostors).

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
    pool_cache: dict = field(default_factory=dict)  # pool selection -> (its pairs, their ranks)

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


_TOP_CACHE: dict[str, tuple] = {}


def _top_impostors(scores: np.ndarray, target: int) -> tuple[np.ndarray, bool]:
    """Indices of the impostors with ``score >= s_cut``, about ``1.25 * target`` of them, sorted by score
    descending (stable), and whether they are all of them.

    Which impostors score highest depends on the scores alone, not on qualities or weights, so the last
    selection is kept (for the same score array, by identity) and reused for any target up to its size:
    a study's random band and bootstrap replicates select once.
    """
    cached = _TOP_CACHE.get("last")
    if cached is not None and cached[0]() is scores and (len(cached[1]) >= target or cached[2]):
        return cached[1], cached[2]
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
    idx.flags.writeable = False
    _TOP_CACHE["last"] = (weakref.ref(scores), idx, complete)
    return idx, complete


class _Pool:
    """The impostors with ``score >= s_cut``, sorted by score descending, indexed for every cut at once.

    Member ``j`` (pool position ``j``) is remaining at the ``i``-th cut when its
    level ``L_j`` (the number of cuts at or below its pair-quality rank, minus
    one) is ``>= i``.  Positions are split into cells of ``size`` members;
    ``S[i, t]`` holds the weight of the members in cells before ``t`` that are
    remaining at cut ``i``.  Any prefix weight is then one look-up in ``S``
    plus a sum within one cell, so each cut costs O(cells + size) instead of a
    pass over the pool.
    """

    CELLS = 1024

    def __init__(self, prep: _Prepared, sample_weights: np.ndarray | None, cuts: np.ndarray, target: int) -> None:
        scores = prep.comparisons.impostor_scores
        idx, self.complete = _top_impostors(scores, target)
        cached = prep.pool_cache.get("pool")
        if cached is None or cached[0] is not idx:  # the same selection for the same quality: reuse
            p = prep.comparisons.impostor_pairs[idx]
            cached = (idx, p, prep.ranks(p)[0], -scores[idx])
            prep.pool_cache["pool"] = cached
        _, p, ranks, self.neg_scores = cached  # neg_scores ascending
        self.weights = (np.ones(len(idx)) if sample_weights is None
                        else sample_weights[p[:, 0]] * sample_weights[p[:, 1]])
        level_of_rank = np.searchsorted(cuts, np.arange(prep.n_ranks), side="right") - 1
        self.level = level_of_rank[ranks]  # -1: remaining at no cut
        n_cuts, n = len(cuts), len(idx)
        self.size = max(1, -(-n // self.CELLS))
        n_cells = -(-n // self.size) if n else 0
        cell = np.arange(n) // self.size
        live = self.level >= 0
        per_cell = np.bincount(self.level[live] * n_cells + cell[live], weights=self.weights[live],
                               minlength=n_cuts * n_cells).reshape(n_cuts, n_cells)
        remaining = np.cumsum(per_cell[::-1], axis=0)[::-1]  # members with level >= i
        self.before = np.concatenate((np.zeros((n_cuts, 1)), np.cumsum(remaining, axis=1)), axis=1)

    def total(self, i: int) -> float:
        """Weight of the members remaining at cut ``i``."""
        return float(self.before[i, -1])

    def weight_before(self, i: int, position: int) -> float:
        """Weight of the members remaining at cut ``i`` among the first ``position`` (highest scores)."""
        t = position // self.size
        start = t * self.size
        within = self.weights[start:position][self.level[start:position] >= i].sum() if position > start else 0.0
        return float(self.before[i, t] + within)

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
            t = int(np.searchsorted(self.before[i], kk, side="right")) - 1  # the cell where the weight passes k
            start = t * self.size
            stop = min(start + self.size, len(self.neg_scores))
            w = np.where(self.level[start:stop] >= i, self.weights[start:stop], 0.0)
            pos = start + int(np.searchsorted(self.before[i, t] + np.cumsum(w), kk, side="right"))
            s_star[m] = -self.neg_scores[pos]
            false_matches[m] = self.count_above(i, s_star[m])
        return s_star, false_matches, True

    def count_above(self, i: int, s: float) -> float:
        """Weight remaining at cut ``i`` with score strictly above ``s``."""
        position = int(np.searchsorted(self.neg_scores, -np.asarray(s, dtype=self.neg_scores.dtype), side="left"))
        return self.weight_before(i, position)


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

    # genuine scores sorted once; per cut, cumulative (weighted) counts of remaining ones
    g_order = np.argsort(comp.genuine_scores, kind="stable")
    g_sorted = comp.genuine_scores[g_order]
    g_rank_sorted = prep.gen_ranks[g_order]
    g_w_sorted = None if gw is None else gw[g_order]

    def genuine_cumulative(c: int) -> np.ndarray:
        """Cumulative (weighted) count of the remaining genuine comparisons, by ascending score."""
        keep = g_rank_sorted >= c
        return np.cumsum(keep if g_w_sorted is None else g_w_sorted * keep)

    def at_or_below(cum: np.ndarray, s_star: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(g_sorted, np.asarray(s_star, dtype=g_sorted.dtype), side="right")
        return np.where(pos > 0, cum[np.maximum(pos - 1, 0)], 0).astype(np.float64)

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
        target = int(2 * (float(k_fix.max()) / mean_w + 1)) + _POOL_PAD
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
                break
            if pool.complete:  # cannot happen: k < remaining impostor weight by construction
                raise RuntimeError("internal error: threshold order statistic not found among all impostors")
            target *= 4

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
    for u, c in enumerate(unique_cuts):  # each cut's cumulative genuine counts serve every curve
        rows = np.flatnonzero(inverse == u)
        if insuffs[rows].all():
            continue
        cum = genuine_cumulative(int(c))
        for j in range(len(columns)):
            defined = rows[~insuffs[rows, j]]
            if defined.size:
                false_non_matches[defined, j] = at_or_below(cum, stars[defined, j])
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
