"""SDD-FIQA quality pseudo-labels from embeddings and identity labels.

Reference: F.-Z. Ou et al., "SDD-FIQA: Unsupervised Face Image Quality
Assessment with Similarity Distribution Distance", CVPR 2021, Sec. 3.1-3.2.

For a sample ``x_i`` with unit embedding ``f_i`` and identity ``y_i``:

* Pos-Sim  ``S^P_i = {<f_i, f_j> : y_j = y_i, j != i}``  (cosine similarities),
* Neg-Sim  ``S^N_i = {<f_i, f_j> : y_j != y_i}``,
* Eq. 7:   ``l_i = WD(S^P_i || S^N_i)``, the 1-D Wasserstein-1 distance between
  the two empirical distributions,

      WD(U || V) = integral_0^1 |F_U^-1(q) - F_V^-1(q)| dq

  (quantile functions of the empirical distributions; for equal sizes this
  is the mean absolute difference of the sorted samples),
* Eq. 9:   ``delta[l_i] = 100 (l_i - min L) / (max L - min L)`` over the whole set,
* Eq. 10:  ``Q_i = (1/K) sum_k delta[WD(S^{P_m}_{i,k} || S^{N_m}_{i,k})]``: each of
  ``K`` repetitions draws ``m`` positive and ``m`` negative similarities, is
  min-max scaled to [0, 100] on its own, and the K scaled values are averaged.

Sampling, as in the official code (Tencent/TFace,
``quality/generate_pseudo_labels/gen_pseudo_labels.py``, read at commit
171ec14; nothing of it is copied here):

* positives: the other images of the identity (the sample itself excluded by
  index; duplicated images still count); all of them when there are at most
  ``m``, otherwise ``m`` of them drawn uniformly *without* replacement, anew in
  every repetition;
* negatives: exactly ``m`` distinct images of other identities, drawn
  uniformly without replacement from all images of other identities, anew
  in every repetition.  The official code loops forever when fewer than
  ``m`` such images exist; here that is a ValueError.
* identities with a single image have no positives: the official code stops
  at an ``assert``; here they get NaN, are counted in ``n_singletons`` and
  mentioned in ``notes`` (in every variant, so all variants label the same
  samples).

Negative sampling, ``negatives="pooled"`` (default).  Drawing ``m`` random
rows per sample (``negatives="independent"``) is memory-bound: each
similarity needs its own random 2 KB row read, ~4 s for 20k x 512 at K=12
on 2 cores, ~3.5 minutes per million samples.  Instead each chunk
of up to 4096 samples draws, per repetition, a pool of ``P`` distinct images
uniformly from the whole set in random order (``P`` = the smallest prime
``>= 4 m``, 97 for m=24), computes the chunk-by-pool similarities with one
matrix product, and sample ``r`` takes the pool entries at positions
``(o_r + s_r j) mod P``, ``j = 0..m-1`` (``o_r`` uniform, ``s_r`` uniform in
``1..P-1``; P prime makes them distinct).  The pool is exchangeable, so any
choice of positions made without looking at its contents yields ``m``
distinct images uniform among all images; a sample whose chosen entries hit
its own identity is redrawn directly (uniformly from the other identities,
as ``negatives="independent"`` does for every sample), and conditioning on
"no hit" keeps the draw uniform over the other identities.  So each
sample's negative set has exactly the official distribution (uniform
``m``-subset of the other identities); what differs is only the *joint*
distribution: two samples of the same chunk share ``m^2 / P`` (about 6 of
24) negatives on average in a repetition, where the official code draws
them independently.  This makes part of the negative-sampling noise common
to a chunk (it cancels when comparing samples of one chunk) without
changing any sample's own label distribution; the cost of the product is
proportional to ``P``, hence the choice.  ``negatives="independent"`` draws
every sample's negatives on its own, like the official code; sets smaller
than ``4 P`` always use it.

Variants (the paper's ablation, Sec. 4.2.5, and one extension):

* ``"sdd"``: Eq. 7 as above (unsigned, as published and as the official code).
* ``"signed"``: ``sign(mean S^P - mean S^N) * WD(S^P || S^N)``, negative when
  the positives lie below the negatives (the unsigned WD scores such a
  sample as if it were good).  Not in the official code.
* ``"pos-only"``: the paper sets ``S^N`` "to 1" in Eq. 8.  Read literally,
  ``WD(S^P || {1}) = 1 - mean S^P``, which ranks samples with *lower*
  positive similarity higher (after Eq. 9 it is exactly ``100 -`` the label
  below) and contradicts the paper's own finding that Pos-Only reduces
  FNMR.  Implemented instead: ``S^N`` replaced by the point mass at the
  lowest possible similarity -1, ``l_i = WD(S^P_i || {-1}) = mean|s + 1|``
  ``= 1 + mean S^P``.
* ``"neg-only"``: likewise, ``S^P`` replaced by the point mass at +1,
  ``l_i = WD({+1} || S^N_i) = mean|1 - s| = 1 - mean S^N`` (the literal "-1"
  of the paper would again reverse the ranking).

A repetition whose raw values are all equal up to rounding (spread below
64 machine epsilons of the similarities' dtype; Eq. 9 would divide by zero
or blow rounding noise up to [0, 100], the official code yields NaN or
noise) is scaled to 0 and mentioned in ``notes``.

Random draws, ``draws="sequential"`` (default) or ``"per-chunk"``.  The
work is cut into chunks (runs of identities of one size, about 4096
samples each; identities of more than 2048 images in pieces of 4096 rows),
processed in a fixed order that depends only on the partition of the samples
into identities.  ``"sequential"`` draws every chunk from one
``numpy.random.default_rng(seed)`` in that order: the labels of the shipped
SDD-FIQA checkpoints, unchanged.  ``"per-chunk"`` gives chunk ``c`` a
generator of its own, ``default_rng(SeedSequence(seed, spawn_key=(c,)))``
(the ``c``-th child of ``SeedSequence(seed).spawn``), so any process can
label any chunk without drawing the ones before it: under
``torch.distributed`` (world size > 1) each process labels a contiguous run
of chunks, the raw distances are gathered (float64, bit for bit) and every
process scales them with the same code, so the labels are *exactly* those
of ``draws="per-chunk"`` in one process, on every process.  Each sample's
draws have the same distribution under both schemes; only the random numbers
differ, so the two schemes give different (equally valid) labels.

Cost: the within-identity Gram matrices are computed once (identities of up
to 2048 images; larger ones are sampled pair by pair) and reused by all K
repetitions; negatives cost one ``(4096, D) x (D, P)`` product per chunk and
repetition.  Memory beyond the input: O(K N) for the raw distances plus a
few chunk-sized buffers (no normalised copy of the embeddings is made).
Results are deterministic for a given seed, input order and BLAS build.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import gcd

import numpy as np

__all__ = [
    "DRAWS",
    "NEGATIVE_SAMPLING",
    "VARIANTS",
    "PseudoLabels",
    "sdd_pseudo_labels",
    "synthetic_identity_embeddings",
    "wasserstein_1d",
]

VARIANTS = ("sdd", "pos-only", "neg-only", "signed")
NEGATIVE_SAMPLING = ("pooled", "independent")
DRAWS = ("sequential", "per-chunk")

_CHUNK_ROWS = 4096  # samples per chunk (Gram and pooled-negative path)
_GATHER_BYTES = 32 << 20  # budget of one gathered (rows, m, D) block
_GRAM_MAX = 2048  # identities up to this size use a precomputed Gram matrix
_POOL_FACTOR = 4  # pool size P = smallest prime >= 4 m
_NORM_CHUNK = 8192  # rows per block when checking the embeddings


@dataclass(frozen=True)
class PseudoLabels:
    """SDD-FIQA quality pseudo-labels of a sample set (Eq. 10).

    Attributes:
        labels: ``(N,)`` float64 in [0, 100], higher = better; NaN where
            ``labelled`` is False.  Read-only.
        labelled: ``(N,)`` bool, False for samples of single-image identities.
            Read-only.
        n_singletons: samples whose identity has one image (NaN labels).
        m: similarities drawn per sample and repetition (positives: at most m).
        repetitions: K, the number of averaged repetitions.
        seed: seed of ``numpy.random.default_rng``.
        variant: one of :data:`VARIANTS`.
        negatives: the negative sampling actually used: ``"pooled"``,
            ``"independent"`` (requested, or a pool's fallback on small sets) or
            ``"none"`` (variant ``"pos-only"``).
        pool_size: P of the pooled sampling, 0 when independent or unused.
        notes: human-readable account of what was done and what was left out.
        draws: the random-draw scheme used, one of :data:`DRAWS`.
    """

    labels: np.ndarray
    labelled: np.ndarray
    n_singletons: int
    m: int
    repetitions: int
    seed: int
    variant: str
    negatives: str
    pool_size: int
    notes: str
    draws: str = "sequential"


# --------------------------------------------------------------------------
# Wasserstein-1 distance between 1-D empirical distributions
# --------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _quantile_grid(n_u: int, n_v: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merged quantile grid of two empirical distributions of sizes n_u, n_v.

    The quantile function of n sorted samples is ``F^-1(q) = x[ceil(q n) - 1]``,
    constant on ``((i-1)/n, i/n]``.  On the merged breakpoints ``{i/n_u} U {j/n_v}``
    (integers over ``L = lcm(n_u, n_v)``) both are constant, so

        WD = sum_t w_t |u[iu_t] - v[iv_t]|

    with ``w_t`` the interval widths and ``iu_t = floor(a_t n_u / L)`` for the
    interval's left end ``a_t`` (exact integer arithmetic).
    """
    lcm = n_u * n_v // gcd(n_u, n_v)
    points = np.union1d(np.arange(n_u + 1, dtype=np.int64) * (lcm // n_u),
                        np.arange(n_v + 1, dtype=np.int64) * (lcm // n_v))
    left = points[:-1]
    iu = (left * n_u) // lcm
    iv = (left * n_v) // lcm
    w = np.diff(points).astype(np.float64) / lcm
    for a in (iu, iv, w):
        a.setflags(write=False)
    return iu, iv, w


def _wd_sorted(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Row-wise WD of sorted rows ``u (R, n_u)``, ``v (R, n_v)`` of one float dtype (no checks)."""
    iu, iv, w = _quantile_grid(u.shape[-1], v.shape[-1])
    if iu.size == u.shape[-1] and iv.size == v.shape[-1]:  # equal sizes: identity grid
        return np.abs(u - v) @ w.astype(u.dtype)
    return np.abs(u[..., iu] - v[..., iv]) @ w.astype(u.dtype)


def wasserstein_1d(u: object, v: object, *, presorted: bool = False) -> float | np.ndarray:
    """Wasserstein-1 distance between 1-D empirical distributions, row by row.

    ``WD(U || V) = integral_0^1 |F_U^-1(q) - F_V^-1(q)| dq`` (SDD-FIQA Eq. 7),
    equal to ``scipy.stats.wasserstein_distance(u, v)`` (which integrates
    ``|F_U(x) - F_V(x)| dx``); sizes may differ and ties are allowed.  For
    equal sizes it is ``mean |sort(u) - sort(v)|``.

    Args:
        u: ``(n_u,)`` or ``(R, n_u)`` finite samples.
        v: ``(n_v,)`` or ``(R, n_v)`` finite samples (same number of rows as u).
        presorted: the rows are already sorted ascending (skips the sort).

    Returns:
        A float for 1-D inputs, else ``(R,)`` float64.

    Example:
        >>> wasserstein_1d([0.0, 1.0], [0.5])
        0.5
    """
    a = np.asarray(u, dtype=np.float64)
    b = np.asarray(v, dtype=np.float64)
    if a.ndim != b.ndim or a.ndim not in (1, 2):
        raise ValueError(f"u and v must both be 1-D or both 2-D, got shapes {a.shape} and {b.shape}")
    if a.ndim == 2 and a.shape[0] != b.shape[0]:
        raise ValueError(f"u and v must have the same number of rows, got {a.shape[0]} and {b.shape[0]}")
    if a.shape[-1] == 0 or b.shape[-1] == 0:
        raise ValueError(f"u and v need at least one sample each, got shapes {a.shape} and {b.shape}")
    for name, x in (("u", a), ("v", b)):
        if not np.isfinite(x).all():
            bad = np.argwhere(~np.isfinite(x))[0]
            raise ValueError(f"{name} holds non-finite values (first at index {tuple(int(i) for i in bad)}: "
                             f"{float(x[tuple(bad)])!r})")
    if not presorted:
        a = np.sort(a, axis=-1)
        b = np.sort(b, axis=-1)
    out = _wd_sorted(a, b)
    return float(out) if out.ndim == 0 else out


# --------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_embeddings(embeddings: object) -> np.ndarray:
    emb = np.asarray(embeddings)
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D (N, D) array, got shape {emb.shape}")
    if emb.shape[0] == 0 or emb.shape[1] == 0:
        raise ValueError(f"embeddings must be non-empty, got shape {emb.shape}")
    if emb.dtype.kind not in "iuf":
        raise TypeError(f"embeddings must be a real numeric array, got dtype {emb.dtype}")
    if emb.dtype == np.float16:
        return emb.astype(np.float32)
    if emb.dtype not in (np.float32, np.float64):
        return emb.astype(np.float64)
    return emb


def _inverse_norms(emb: np.ndarray) -> np.ndarray:
    """``1 / ||e_i||`` (float64), checking block by block that every row is finite and non-zero."""
    n = emb.shape[0]
    inv = np.empty(n, dtype=np.float64)
    for a in range(0, n, _NORM_CHUNK):
        block = emb[a:a + _NORM_CHUNK].astype(np.float64)
        sq = np.einsum("ij,ij->i", block, block)
        bad = ~np.isfinite(sq)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            c = int(np.flatnonzero(~np.isfinite(block[r]))[0])
            raise ValueError(f"embeddings hold non-finite values (first at [{a + r}, {c}]: {float(block[r, c])!r})")
        zero = sq == 0.0
        if zero.any():
            r = int(np.flatnonzero(zero)[0])
            raise ValueError(f"embeddings[{a + r}] is all zeros: its cosine similarity is undefined")
        inv[a:a + len(sq)] = 1.0 / np.sqrt(sq)
    return inv


def _next_prime(k: int) -> int:
    p = max(k, 2)
    while any(p % d == 0 for d in range(2, int(p ** 0.5) + 1)):
        p += 1
    return p


# --------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------


def _floyd_sample(rng: np.random.Generator, ranges: np.ndarray, k: int) -> np.ndarray:
    """Per row ``r``, ``k`` distinct integers uniform in ``[0, ranges[r])`` (every row needs ``ranges >= k``).

    Floyd's algorithm, vectorised over rows: for ``j = R-k .. R-1`` draw
    ``t`` uniform in ``[0, j]`` and keep ``t`` unless already kept, else ``j``;
    every ``k``-subset is equally likely.  O(k^2) comparisons per row.
    """
    ranges = np.asarray(ranges, dtype=np.int64)
    out = np.empty((ranges.shape[0], k), dtype=np.int64)
    for it in range(k):
        top = ranges - k + it
        t = rng.integers(0, top + 1)
        if it:
            dup = (out[:, :it] == t[:, None]).any(axis=1)
            t = np.where(dup, top, t)
        out[:, it] = t
    return out


def _distinct_sample(rng: np.random.Generator, ranges: np.ndarray, k: int) -> np.ndarray:
    """Like :func:`_floyd_sample` (uniform ``k``-subsets of ``[0, ranges[r])``), faster for large ranges.

    When every range is at least ``8 k^2`` a row is drawn with replacement and
    redrawn whole until its ``k`` values are distinct (rejection keeps the
    uniform distribution over ``k``-subsets; a row is accepted with
    probability > 0.93); otherwise Floyd's algorithm is used.
    """
    ranges = np.asarray(ranges, dtype=np.int64)
    if ranges.size == 0 or k == 1 or ranges.min() < 8 * k * k:
        return _floyd_sample(rng, ranges, k) if k > 1 else rng.integers(0, ranges)[:, None]
    out = rng.integers(0, ranges[:, None], (ranges.size, k))
    todo = np.arange(ranges.size)
    while todo.size:
        srt = np.sort(out[todo], axis=1)
        todo = todo[(srt[:, 1:] == srt[:, :-1]).any(axis=1)]
        if todo.size:
            out[todo] = rng.integers(0, ranges[todo, None], (todo.size, k))
    return out


class _Layout:
    """Samples sorted by identity; identities ordered by (size, first occurrence).

    ``order[p]`` is the input index at sorted position ``p``; identity ``g``
    (in processing order) occupies positions ``starts[g] .. starts[g] + sizes[g]``.
    The order depends only on the partition of the samples, never on the
    label values, so renaming identities changes nothing.
    """

    def __init__(self, identities: np.ndarray) -> None:
        try:
            uniq, first, inverse, counts = np.unique(identities, return_index=True,
                                                     return_inverse=True, return_counts=True)
        except TypeError as err:
            raise TypeError(f"identities must be mutually comparable labels (one type): {err}") from None
        proc = np.lexsort((first, counts))
        rank = np.empty_like(proc)
        rank[proc] = np.arange(proc.size)
        self.labels = uniq[proc]
        self.sizes = counts[proc].astype(np.int64)
        self.starts = np.concatenate(([0], np.cumsum(self.sizes)[:-1])).astype(np.int64)
        self.order = np.argsort(rank[inverse.reshape(-1)], kind="stable")
        self.group_of_pos = np.repeat(np.arange(proc.size, dtype=np.int64), self.sizes)
        self.n = int(self.sizes.sum())


class _Rows:
    """Gathers unit-norm embedding rows by sorted position (no full normalised copy)."""

    def __init__(self, emb: np.ndarray, inv_norm: np.ndarray, layout: _Layout) -> None:
        self.emb = emb
        self.inv = inv_norm
        self.order = layout.order

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        idx = self.order[positions]
        rows = self.emb[idx]
        rows *= self.inv[idx][..., None].astype(rows.dtype)
        return rows


def _gathered_sims(rows: _Rows, x: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``<x_r, f(positions[r, j])>`` for ``x (B, D)``, ``positions (B, c)``, in bounded blocks."""
    b, c = positions.shape
    out = np.empty((b, c), dtype=x.dtype)
    step = max(1, _GATHER_BYTES // max(1, c * x.shape[1] * x.itemsize))
    for a in range(0, b, step):
        y = rows(positions[a:a + step])
        out[a:a + step] = np.einsum("bd,bcd->bc", x[a:a + step], y)
    return out


def _independent_negative_positions(rng: np.random.Generator, layout: _Layout,
                                    groups: np.ndarray, m: int) -> np.ndarray:
    """``m`` distinct sorted positions per row, uniform over the other identities."""
    size = layout.sizes[groups]
    start = layout.starts[groups]
    u = _distinct_sample(rng, layout.n - size, m)
    return u + np.where(u >= start[:, None], size[:, None], 0)


@lru_cache(maxsize=16)
def _stride_table(pool_size: int, m: int) -> np.ndarray:
    """``(s * j) mod P`` for ``s < P``, ``j < m``: ``(P, m)`` int64, read-only."""
    table = (np.arange(pool_size, dtype=np.int64)[:, None] * np.arange(m, dtype=np.int64)) % pool_size
    table.setflags(write=False)
    return table


def _draw_pooled(rng: np.random.Generator, layout: _Layout, groups: np.ndarray, m: int,
                 pool_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pool positions ``(P,)``, per-row pool columns ``(B, m)``, redraw rows (indices), redrawn positions.

    See the module docstring: pool = uniform random ordered sample of all
    positions; row r takes columns ``(o_r + s_r j) mod P``; rows whose
    columns hit their own identity are redrawn independently.
    """
    pool = rng.choice(layout.n, size=pool_size, replace=False)
    b = groups.shape[0]
    o = rng.integers(0, pool_size, b)
    s = rng.integers(1, pool_size, b)
    cols = _stride_table(pool_size, m)[s]  # (s j) mod P, without integer division per element
    cols += o[:, None]
    cols -= pool_size * (cols >= pool_size)
    pool_groups = layout.group_of_pos[pool]
    maybe = np.flatnonzero(np.isin(groups, pool_groups))  # only these rows can meet their own identity
    hit = maybe[(pool_groups[cols[maybe]] == groups[maybe, None]).any(axis=1)]
    redrawn = _independent_negative_positions(rng, layout, groups[hit], m)
    return pool, cols, hit, redrawn


def _negative_sims(rng: np.random.Generator, rows: _Rows, layout: _Layout, x: np.ndarray,
                   groups: np.ndarray, m: int, pool_size: int) -> np.ndarray:
    """``(B, m)`` negative similarities of the rows ``x`` (identities ``groups``)."""
    if pool_size == 0:
        return _gathered_sims(rows, x, _independent_negative_positions(rng, layout, groups, m))
    pool, cols, hit, redrawn = _draw_pooled(rng, layout, groups, m, pool_size)
    neg = _take_rows(x @ rows(pool).T, cols)
    if hit.size:
        neg[hit] = _gathered_sims(rows, x[hit], redrawn)
    return neg


# --------------------------------------------------------------------------
# Per-sample statistic of one repetition
# --------------------------------------------------------------------------


def _statistic(variant: str, pos: np.ndarray | None, neg: np.ndarray | None) -> np.ndarray:
    """Raw ``l_i`` of one repetition; ``pos``/``neg`` sorted float64 rows (or None if unused)."""
    if variant == "pos-only":
        return np.abs(pos + 1.0).mean(axis=1)
    if variant == "neg-only":
        return np.abs(1.0 - neg).mean(axis=1)
    wd = _wd_sorted(pos, neg)
    if variant == "signed":
        wd = np.sign(pos.mean(axis=1) - neg.mean(axis=1)) * wd
    return wd


def _prep(sims: np.ndarray, needs_sort: bool) -> np.ndarray:
    """Sorts a fresh similarity block in place when the statistic needs order (WD)."""
    if needs_sort:
        sims.sort(axis=1)
    return sims


# --------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------


def sdd_pseudo_labels(embeddings: object, identities: object, m: int = 24, repetitions: int = 12,
                      seed: int = 0, variant: str = "sdd", negatives: str = "pooled",
                      draws: str | None = None) -> PseudoLabels:
    """SDD-FIQA quality pseudo-labels (Eqs. 7-10 of Ou et al., CVPR 2021).

    ``Q_i = (1/K) sum_k 100 (l_ik - min_j l_jk) / (max_j l_jk - min_j l_jk)`` with
    ``l_ik = WD(S^P_ik || S^N_ik)`` from up to ``m`` positive and exactly ``m``
    negative cosine similarities drawn in repetition ``k`` (see the module
    docstring for the sampling, the variants and how they relate to the
    official code).  Higher = better.

    Args:
        embeddings: ``(N, D)`` float array (any scale: cosine similarity is used).
            float32 is computed in float32, anything else in float64.
        identities: ``(N,)`` identity labels (ints, strings, ...).
        m: similarities per sample and repetition (paper: 24).
        repetitions: K (paper: 12).
        seed: seed of ``numpy.random.default_rng``; same seed, same input
            (order included) -> same labels.
        variant: ``"sdd"``, ``"signed"``, ``"pos-only"`` or ``"neg-only"``.
        negatives: ``"pooled"`` (fast; each sample's negatives distributed exactly
            as in the official code, shared within a chunk) or ``"independent"``.
        draws: ``"sequential"`` (one generator for all chunks; the shipped
            checkpoints' labels) or ``"per-chunk"`` (a generator per chunk, so
            the work can be shared by processes; see the module docstring).
            None: ``"per-chunk"`` when a ``torch.distributed`` process group of
            more than one process is initialised, else ``"sequential"``.
            Under a process group, ``"per-chunk"`` splits the chunks over the
            processes (every one returns the same labels, exactly those of one
            process); ``"sequential"`` cannot be split and is computed whole by
            every process.  Every process must call with the same arguments.

    Returns:
        :class:`PseudoLabels`; samples of single-image identities are NaN.

    Raises:
        ValueError: bad shapes, lengths, NaN/inf or all-zero embedding rows,
            ``m`` or ``repetitions`` < 1, unknown variant or sampling, or fewer
            than ``m`` images of other identities for some labelled sample.
        TypeError: non-numeric embeddings or incomparable identity labels.

    Shape:
        embeddings ``(N, D)``, identities ``(N,)`` -> labels ``(N,)``.
    """
    m = _check_int("m", m, 1)
    repetitions = _check_int("repetitions", repetitions, 1)
    seed = _check_int("seed", seed, 0)
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {list(VARIANTS)}, got {variant!r}")
    if negatives not in NEGATIVE_SAMPLING:
        raise ValueError(f"negatives must be one of {list(NEGATIVE_SAMPLING)}, got {negatives!r}")
    from fiqa_bench.method.distributed import current

    rank, world = current()
    if draws is None:
        draws = "per-chunk" if world > 1 else "sequential"
    if draws not in DRAWS:
        raise ValueError(f"draws must be one of {list(DRAWS)} or None, got {draws!r}")
    emb = _check_embeddings(embeddings)
    ids = np.asarray(identities)
    if ids.ndim != 1 or ids.shape[0] != emb.shape[0]:
        raise ValueError(f"identities must have shape ({emb.shape[0]},) to match embeddings {emb.shape}, "
                         f"got {ids.shape}")
    if ids.dtype.kind == "f" and np.isnan(ids).any():
        raise ValueError(f"identities hold NaN (first at index {int(np.flatnonzero(np.isnan(ids))[0])})")

    layout = _Layout(ids)
    inv_norm = _inverse_norms(emb)
    rows = _Rows(emb, inv_norm, layout)
    n = layout.n
    need_pos = variant != "neg-only"
    need_neg = variant != "pos-only"
    sort_needed = variant in ("sdd", "signed")
    notes: list[str] = []

    single = layout.sizes == 1
    n_singletons = int(single.sum())
    labelled_groups = np.flatnonzero(~single)
    if need_neg and labelled_groups.size:
        g = int(labelled_groups[np.argmax(layout.sizes[labelled_groups])])
        if n - layout.sizes[g] < m:
            raise ValueError(f"identity {layout.labels[g]!r} has only {n - int(layout.sizes[g])} images of other "
                             f"identities, fewer than m={m} negatives (the official code loops forever here); "
                             f"lower m or add identities")

    pool_size = 0
    used_negatives = "independent" if need_neg else "none"
    if need_neg and negatives == "pooled":
        p = _next_prime(int(np.ceil(_POOL_FACTOR * m)))
        if n >= 4 * p:
            pool_size, used_negatives = p, "pooled"
        else:
            notes.append(f"set of {n} samples is smaller than 4 x pool size {p}: negatives drawn independently "
                         f"per sample instead of pooled")

    raw = np.full((repetitions, n), np.nan, dtype=np.float64)
    units = _units(layout, labelled_groups)
    fill = dict(rows=rows, layout=layout, raw=raw, m=m, pool_size=pool_size, variant=variant,
                need_pos=need_pos, need_neg=need_neg, sort_needed=sort_needed)
    if draws == "sequential":  # one generator through every chunk, in order: the original scheme
        rng = np.random.default_rng(seed)
        for unit in units:
            _fill_unit(rng, unit, **fill)
    else:
        share = _unit_shares(units, world) if world > 1 else np.zeros(len(units), dtype=np.int64)
        for c, unit in enumerate(units):
            if share[c] == rank:
                _fill_unit(np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(c,))), unit, **fill)
        if world > 1:
            from fiqa_bench.method.distributed import gather_rows

            cuts = _position_cuts(units, share, world, n)
            # the raw distances of every process's chunks, float64 bit for bit, in sorted-position order
            raw[...] = gather_rows(np.ascontiguousarray(raw[:, cuts[rank]:cuts[rank + 1]].T), n).T

    labelled_sorted = ~single[layout.group_of_pos]
    labels_sorted = np.full(n, np.nan, dtype=np.float64)
    if labelled_sorted.any():
        # Eq. 9 per repetition, in place (raw is ours): no K x N temporaries
        vals = raw if n_singletons == 0 else raw[:, labelled_sorted]
        lo = vals.min(axis=1, keepdims=True)
        span = vals.max(axis=1, keepdims=True) - lo
        # equal up to the rounding of the similarities' dtype counts as equal
        tol = 64 * np.finfo(emb.dtype).eps * np.maximum(1.0, np.abs(lo[:, 0]) + span[:, 0])
        flat = span[:, 0] <= tol
        vals -= lo
        vals *= np.where(flat, 0.0, 100.0 / np.where(flat, 1.0, span[:, 0]))[:, None]
        labels_sorted[labelled_sorted] = np.clip(vals.mean(axis=0), 0.0, 100.0)
        if flat.any():
            notes.append(f"{int(flat.sum())} of {repetitions} repetitions had all raw values equal up to "
                         f"rounding (Eq. 9 undefined) and were scaled to 0")
    labels = np.empty(n, dtype=np.float64)
    labels[layout.order] = labels_sorted
    labelled = np.empty(n, dtype=bool)
    labelled[layout.order] = labelled_sorted

    n_ids = layout.sizes.size
    head = (f"{n} samples, {n_ids} identities, variant {variant!r}, m={m}, K={repetitions}, seed={seed}, "
            f"draws {draws}" + (f" ({len(units)} chunks over {world} processes)" if draws == "per-chunk"
                                and world > 1 else "") + "; "
            f"positives: all other images of the identity when it has <= {m} others, else {m} drawn "
            f"without replacement per repetition")
    if need_neg:
        head += (f"; negatives: {m} distinct images of other identities per sample and repetition, "
                 + (f"pooled (pool of {pool_size} per chunk)" if pool_size else "drawn independently"))
    notes.insert(0, head)
    if n_singletons:
        notes.append(f"{n_singletons} samples belong to identities with a single image: no positive pairs, "
                     f"label NaN (the official code stops at an assert on them)")
    for arr in (labels, labelled):
        arr.setflags(write=False)
    return PseudoLabels(labels=labels, labelled=labelled, n_singletons=n_singletons, m=m,
                        repetitions=repetitions, seed=seed, variant=variant, negatives=used_negatives,
                        pool_size=pool_size, notes="; ".join(notes) + ".", draws=draws)


@dataclass(frozen=True)
class _Unit:
    """One chunk of the work: sorted positions ``[a, b)`` of identities of size ``n_g``.

    ``gram``: the identities' Gram matrices are computed (``n_g <= _GRAM_MAX``; the
    chunk holds ``gc`` whole identities); otherwise the rows are a piece of one
    large identity and positives are gathered pair by pair.
    """

    a: int
    b: int
    n_g: int
    gc: int
    gram: bool


def _units(layout: _Layout, labelled_groups: np.ndarray) -> list[_Unit]:
    """The chunks in processing order (identity size ascending; positions ascending).

    Depends only on the partition of the samples into identities (and the
    module's chunk constants), never on the embeddings, the seed or the number
    of processes, so a chunk's index names the same rows everywhere.
    """
    units: list[_Unit] = []
    for n_g in np.unique(layout.sizes[labelled_groups]):
        n_g = int(n_g)
        groups_of_size = labelled_groups[layout.sizes[labelled_groups] == n_g]
        if n_g <= _GRAM_MAX:
            per_chunk = max(1, _CHUNK_ROWS // n_g)
            for i in range(0, groups_of_size.size, per_chunk):  # a run of consecutive identities of size n_g
                g0, g1 = groups_of_size[i], groups_of_size[min(i + per_chunk, groups_of_size.size) - 1]
                a, b = int(layout.starts[g0]), int(layout.starts[g1] + n_g)
                units.append(_Unit(a, b, n_g, int(g1 - g0 + 1), True))
        else:
            for g in groups_of_size:
                a, b = int(layout.starts[g]), int(layout.starts[g] + n_g)
                units += [_Unit(a2, min(b, a2 + _CHUNK_ROWS), n_g, 1, False) for a2 in range(a, b, _CHUNK_ROWS)]
    return units


def _fill_unit(rng: np.random.Generator, unit: _Unit, *, rows: _Rows, layout: _Layout, raw: np.ndarray, m: int,
               pool_size: int, variant: str, need_pos: bool, need_neg: bool, sort_needed: bool) -> None:
    """``raw[:, unit.a:unit.b]``: the K repetitions of one chunk, drawn from ``rng``."""
    a, b, n_g = unit.a, unit.b, unit.n_g
    c = min(m, n_g - 1)  # positives per sample
    groups = layout.group_of_pos[a:b]
    if unit.gram:
        rank = np.arange(b - a, dtype=np.int64) % n_g
        _fill_gram_chunk(rng, rows, layout, raw, a, b, unit.gc, n_g, c, m, groups, rank, pool_size,
                         variant, need_pos, need_neg, sort_needed)
    else:
        rank = np.arange(a, b, dtype=np.int64) - layout.starts[groups]  # position within the identity
        _fill_gather_chunk(rng, rows, layout, raw, a, b, c, m, groups, rank, pool_size,
                           variant, need_pos, need_neg, sort_needed)


def _unit_shares(units: list[_Unit], world: int) -> np.ndarray:
    """The process of each chunk: contiguous runs of chunks with about equal numbers of rows."""
    sizes = np.array([u.b - u.a for u in units], dtype=np.int64)
    if sizes.size == 0:
        return sizes
    middle = np.cumsum(sizes) - sizes / 2.0
    return np.minimum(world - 1, (middle * world / sizes.sum()).astype(np.int64))


def _position_cuts(units: list[_Unit], share: np.ndarray, world: int, n: int) -> list[int]:
    """``cuts[r]:cuts[r + 1]``: the sorted positions process ``r`` sends (its chunks; the
    unlabelled singletons before the first chunk go with process 0).  Contiguous, covering ``[0, n)``."""
    cuts = [0]
    for r in range(1, world):
        mine = [u.a for u, s in zip(units, share) if s >= r]
        cuts.append(min(mine) if mine else n)
    return cuts + [n]


def _positive_cols(rng: np.random.Generator, rank: np.ndarray, n_g: int, c: int) -> np.ndarray:
    """Within-identity columns of ``c`` positives per row: drawn without replacement, self excluded."""
    if c == n_g - 1:
        k = np.broadcast_to(np.arange(c, dtype=np.int64), (rank.size, c))
    else:
        k = _floyd_sample(rng, np.full(rank.size, n_g - 1, dtype=np.int64), c)
    return k + (k >= rank[:, None])


def _take_rows(a: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``a[r, cols[r, j]]`` for a C-contiguous 2-D ``a`` (flat indexing, no broadcast copies)."""
    flat = cols + (np.arange(a.shape[0], dtype=np.int64) * a.shape[1])[:, None]
    return a.reshape(-1)[flat]


def _fill_gram_chunk(rng, rows, layout, raw, a, b, gc, n_g, c, m, groups, rank, pool_size,
                     variant, need_pos, need_neg, sort_needed) -> None:
    """Identities ``[g0, g1]`` (all of size n_g) at sorted positions [a, b): Gram once, K repetitions."""
    x = rows(np.arange(a, b))
    pos_fixed = None
    gram = None
    if need_pos:
        xg = x.reshape(gc, n_g, -1)
        gram = np.matmul(xg, xg.transpose(0, 2, 1)).reshape(b - a, n_g)  # row r: <x_r, group members>
        if c == n_g - 1:
            pos_fixed = _prep(_take_rows(gram, _positive_cols(rng, rank, n_g, c)), sort_needed)
    for k in range(raw.shape[0]):
        pos = pos_fixed
        if need_pos and pos is None:
            pos = _prep(_take_rows(gram, _positive_cols(rng, rank, n_g, c)), sort_needed)
        neg = _prep(_negative_sims(rng, rows, layout, x, groups, m, pool_size), sort_needed) if need_neg else None
        raw[k, a:b] = _statistic(variant, pos, neg)


def _fill_gather_chunk(rng, rows, layout, raw, a, b, c, m, groups, rank, pool_size,
                       variant, need_pos, need_neg, sort_needed) -> None:
    """Rows [a, b) of identities too large for a Gram matrix: positives gathered pair by pair."""
    x = rows(np.arange(a, b))
    n_g = layout.sizes[groups]
    starts = layout.starts[groups]
    for k in range(raw.shape[0]):
        pos = neg = None
        if need_pos:
            cols = _positive_cols(rng, rank, int(n_g[0]), c)
            pos = _prep(_gathered_sims(rows, x, starts[:, None] + cols), sort_needed)
        if need_neg:
            neg = _prep(_negative_sims(rng, rows, layout, x, groups, m, pool_size), sort_needed)
        raw[k, a:b] = _statistic(variant, pos, neg)


# --------------------------------------------------------------------------
# Synthetic data with known per-sample quality
# --------------------------------------------------------------------------


def synthetic_identity_embeddings(n_ids: int, per_id: int, dim: int = 512, seed: int = 0,
                                  sigma_range: tuple[float, float] = (0.2, 2.0),
                                  dtype: type = np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit embeddings with a known per-sample noise level, for testing label generators.

    Identity centres ``c_k`` are uniform on the unit sphere of R^dim; sample
    ``i`` of identity ``k`` is ``normalise(c_k + sigma_i z_i / sqrt(dim))`` with
    ``z_i ~ N(0, I)`` and ``sigma_i ~ U(sigma_range)``: the larger ``sigma_i``,
    the further the sample from its identity (lower true quality).
    Identities are ``0..n_ids-1``, ``per_id`` consecutive samples each.

    Returns:
        ``(embeddings (N, dim) dtype, identities (N,) int64, sigma (N,) float64)``.
    """
    n_ids = _check_int("n_ids", n_ids, 1)
    per_id = _check_int("per_id", per_id, 1)
    dim = _check_int("dim", dim, 1)
    lo, hi = (float(s) for s in sigma_range)
    if not (0.0 <= lo <= hi):
        raise ValueError(f"sigma_range must satisfy 0 <= low <= high, got {sigma_range!r}")
    rng = np.random.default_rng(seed)
    n = n_ids * per_id
    centres = rng.standard_normal((n_ids, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    sigma = rng.uniform(lo, hi, n)
    ids = np.repeat(np.arange(n_ids, dtype=np.int64), per_id)
    out = np.empty((n, dim), dtype=dtype)
    step = 1 << 16
    for a in range(0, n, step):
        b = min(n, a + step)
        z = rng.standard_normal((b - a, dim), dtype=np.float32)
        z *= (sigma[a:b, None] / np.sqrt(dim)).astype(np.float32)
        z += centres[ids[a:b]]
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        out[a:b] = z
    return out, ids, sigma
