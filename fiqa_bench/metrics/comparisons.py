"""Genuine and impostor comparisons of a sample set: all-vs-all or a pair list.

A comparison of samples ``a`` and ``b`` with embeddings ``e_a``, ``e_b`` has
the cosine similarity score

    s(a, b) = <e_a, e_b> / (||e_a|| ||e_b||)        (SDD-FIQA, Sec. 3)

and is *genuine* (mated) when the two samples share an identity, *impostor*
(non-mated) otherwise; these are the sets S^P and S^N of the paper's Eq. 1-2.

:func:`all_vs_all` makes every unordered pair ``{a, b}``, ``a != b``, once.
The rows are processed in blocks (``chunk_rows`` rows of the Gram matrix at a
time, only its upper triangle is kept), so LFW (13,233 images, 87,549,528
comparisons) needs about 0.7 GB for the result (float32 scores, uint16
indices) plus one block.  Optional uniform impostor subsampling without
replacement (``max_impostors``, ``seed``) is recorded in
:class:`ImpostorSampling`.  Float32 scores come from a BLAS matrix product:
they are reproducible for a given ``chunk_rows`` and BLAS build, and another
chunk size may change the last bit (|diff| <= ~1e-7); use ``dtype=np.float64``
where that matters.  :func:`comparisons_from_pairs` scores a given pair
list such as LFW's ``pairs.txt``; :func:`comparisons_from_scores` wraps
scores computed elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from fiqa_bench.metrics._common import as_scores

__all__ = [
    "Comparisons",
    "ImpostorSampling",
    "all_vs_all",
    "comparisons_from_pairs",
    "comparisons_from_scores",
]


@dataclass(frozen=True)
class ImpostorSampling:
    """What impostor comparisons were used.

    Attributes:
        method: ``"all"`` (every impostor pair of an all-vs-all set),
            ``"uniform"`` (a uniform random subset without replacement),
            ``"pair-list"`` (those of a given pair list) or ``"given"``
            (scores passed in).
        n_available: impostor comparisons before subsampling.
        n_kept: impostor comparisons kept.
        seed: the ``numpy.random.default_rng`` seed of the subsample, if any.
    """

    method: str
    n_available: int
    n_kept: int
    seed: int | None = None

    def to_dict(self) -> dict:
        return {"method": self.method, "n_available": self.n_available, "n_kept": self.n_kept, "seed": self.seed}


@dataclass(frozen=True)
class Comparisons:
    """Scored genuine and impostor comparisons of ``n_samples`` samples.

    Attributes:
        genuine_scores: ``(G,)`` float32/float64 similarity, higher = more alike.
        genuine_pairs: ``(G, 2)`` integer sample indices of each genuine comparison.
        impostor_scores: ``(I,)`` float32/float64.
        impostor_pairs: ``(I, 2)`` integer sample indices.
        n_samples: number of samples the indices refer to (qualities are given per sample).
        identities: ``(n_samples,)`` identity labels, or None when unknown
            (then identity bootstrap is unavailable).
        source: ``"all-vs-all"``, ``"pair-list"`` or ``"scores"``.
        sampling: the impostor sampling record.
    """

    genuine_scores: np.ndarray
    genuine_pairs: np.ndarray
    impostor_scores: np.ndarray
    impostor_pairs: np.ndarray
    n_samples: int
    identities: np.ndarray | None = None
    source: str = "scores"
    sampling: ImpostorSampling = field(default_factory=lambda: ImpostorSampling("given", 0, 0))

    def __post_init__(self) -> None:
        for kind in ("genuine", "impostor"):
            s = getattr(self, f"{kind}_scores")
            p = getattr(self, f"{kind}_pairs")
            if s.ndim != 1 or p.shape != (len(s), 2):
                raise ValueError(f"{kind}_scores {s.shape} and {kind}_pairs {p.shape} must be (N,) and (N, 2)")
        if self.identities is not None and len(self.identities) != self.n_samples:
            raise ValueError(f"identities has {len(self.identities)} labels for n_samples={self.n_samples}")

    @property
    def n_genuine(self) -> int:
        return len(self.genuine_scores)

    @property
    def n_impostor(self) -> int:
        return len(self.impostor_scores)

    def subsample_impostors(self, max_impostors: int, seed: int = 0) -> Comparisons:
        """The same comparisons with a seeded uniform subset of ``max_impostors`` impostors.

        On a complete all-vs-all set this equals ``all_vs_all(..., max_impostors=max_impostors,
        seed=seed)`` exactly (same draw, same order), without computing the scores again.
        """
        if self.sampling.method != "all":
            raise ValueError(f"can subsample only a complete all-vs-all set, not impostor sampling "
                             f"{self.sampling.method!r}")
        chosen = _choose_impostors(self.n_impostor, max_impostors, seed)
        if chosen is None:
            return self
        scores, pairs = self.impostor_scores[chosen], self.impostor_pairs[chosen]
        _readonly(scores, pairs)
        return replace(self, impostor_scores=scores, impostor_pairs=pairs,
                       sampling=ImpostorSampling("uniform", self.n_impostor, len(chosen), int(seed)))

    def to_dict(self) -> dict:
        """Counts and provenance (not the arrays)."""
        return {
            "source": self.source,
            "n_samples": self.n_samples,
            "n_genuine": self.n_genuine,
            "n_impostor": self.n_impostor,
            "score_dtype": str(self.impostor_scores.dtype),
            "impostor_sampling": self.sampling.to_dict(),
        }


def _index_dtype(n: int) -> type:
    return np.uint16 if n <= 1 << 16 else (np.uint32 if n <= 1 << 32 else np.int64)


def _unit_rows(embeddings: object, dtype: type) -> np.ndarray:
    e = np.asarray(embeddings)
    if e.ndim != 2 or e.shape[0] < 2 or e.shape[1] < 1:
        raise ValueError(f"embeddings must be (N, D) with N >= 2, got shape {e.shape}")
    if e.dtype.kind not in "iuf":
        raise TypeError(f"embeddings must be numeric, got dtype {e.dtype}")
    e = e.astype(np.float64)
    finite = np.isfinite(e).all(axis=1)
    if not finite.all():
        raise ValueError(f"embedding rows {np.flatnonzero(~finite)[:5].tolist()} hold NaN or inf")
    norms = np.linalg.norm(e, axis=1)
    if (norms == 0).any():
        raise ValueError(f"embedding rows {np.flatnonzero(norms == 0)[:5].tolist()} are zero; cosine is undefined")
    return (e / norms[:, None]).astype(dtype)


#: Memory for the two gathered blocks of rows when scoring a pair list.
PAIR_BLOCK_BYTES = 64 << 20


def _rows_and_norms(embeddings: object) -> tuple[np.ndarray, np.ndarray]:
    """The embeddings as given (no copy) and their float64 L2 norms, checked as :func:`_unit_rows` checks."""
    e = np.asarray(embeddings)
    if e.ndim != 2 or e.shape[0] < 2 or e.shape[1] < 1:
        raise ValueError(f"embeddings must be (N, D) with N >= 2, got shape {e.shape}")
    if e.dtype.kind not in "iuf":
        raise TypeError(f"embeddings must be numeric, got dtype {e.dtype}")
    norms = np.empty(e.shape[0])
    step = max(1, PAIR_BLOCK_BYTES // (8 * e.shape[1]))
    for s in range(0, e.shape[0], step):
        part = e[s : s + step].astype(np.float64)
        finite = np.isfinite(part).all(axis=1)
        if not finite.all():
            raise ValueError(f"embedding rows {(s + np.flatnonzero(~finite)[:5]).tolist()} hold NaN or inf")
        norms[s : s + step] = np.linalg.norm(part, axis=1)
    if (norms == 0).any():
        raise ValueError(f"embedding rows {np.flatnonzero(norms == 0)[:5].tolist()} are zero; cosine is undefined")
    return e, norms


def _identity_codes(identities: object, n: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(identities)
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"identities must be 1-D with one label per sample ({n}), got shape {labels.shape}")
    codes = np.unique(labels, return_inverse=True)[1].ravel().astype(np.int64)
    return labels, codes


def _choose_impostors(n_available: int, max_impostors: int | None, seed: int) -> np.ndarray | None:
    """Sorted indices of a seeded uniform subset of ``max_impostors`` of ``n_available``; None = keep all."""
    if max_impostors is None:
        return None
    if isinstance(max_impostors, bool) or not isinstance(max_impostors, (int, np.integer)) or max_impostors < 1:
        raise ValueError(f"max_impostors must be a positive integer or None, got {max_impostors!r}")
    if max_impostors >= n_available:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_available, size=int(max_impostors), replace=False))


def _readonly(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.flags.writeable = False


def all_vs_all(
    embeddings: np.ndarray,
    identities: np.ndarray,
    *,
    max_impostors: int | None = None,
    seed: int = 0,
    chunk_rows: int = 1024,
    dtype: type = np.float32,
) -> Comparisons:
    """Every genuine and every (or a seeded uniform subset of) impostor comparison.

    The samples are processed grouped by identity (a stable sort of the
    labels), so the genuine pairs of each row are one contiguous slice of the
    Gram matrix and no masks are needed.  The Gram matrix is computed
    ``chunk_rows`` rows at a time, upper triangle only.

    Args:
        embeddings: ``(N, D)`` feature vectors (any scale; rows are L2-normalised).
        identities: ``(N,)`` identity labels (any hashable dtype numpy can sort).
        max_impostors: keep a uniform random subset of this many impostor
            comparisons (without replacement); None keeps all.
        seed: seed of ``numpy.random.default_rng`` for that subset.
        chunk_rows: Gram-matrix rows per block (memory ~ ``chunk_rows * N * 4`` bytes).
        dtype: score dtype, ``np.float32`` (default, half the memory) or ``np.float64``.

    Returns:
        :class:`Comparisons` with ``source="all-vs-all"``; pairs hold original indices.

    Shape:
        ``G = sum_id n_id (n_id - 1) / 2`` genuine and ``N (N - 1) / 2 - G`` impostor comparisons.

    Example:
        >>> c = all_vs_all(np.eye(3), ["a", "a", "b"])
        >>> c.n_genuine, c.n_impostor, float(c.genuine_scores[0])
        (1, 2, 0.0)
    """
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    e = _unit_rows(embeddings, dtype)
    n = e.shape[0]
    labels, codes = _identity_codes(identities, n)
    perm = np.argsort(codes, kind="stable")
    es, cs = e[perm], codes[perm]
    idx_dtype = _index_dtype(n)
    perm_i = perm.astype(idx_dtype)
    rows = np.arange(n)
    ends = np.searchsorted(cs, cs, side="right")  # first row of the next identity
    n_gen_row = ends - rows - 1
    n_imp_row = n - ends
    gen_off = np.concatenate(([0], np.cumsum(n_gen_row)))
    imp_off = np.concatenate(([0], np.cumsum(n_imp_row)))
    n_imp_all = int(imp_off[-1])

    chosen = _choose_impostors(n_imp_all, max_impostors, seed)
    if chosen is None:
        kept_off = imp_off
        sampling = ImpostorSampling("all", n_imp_all, n_imp_all, None)
    else:
        kept_off = np.searchsorted(chosen, imp_off)
        sampling = ImpostorSampling("uniform", n_imp_all, len(chosen), int(seed))

    g_s = np.empty(int(gen_off[-1]), dtype=dtype)
    g_p = np.empty((len(g_s), 2), dtype=idx_dtype)
    i_s = np.empty(int(kept_off[-1]), dtype=dtype)
    i_p = np.empty((len(i_s), 2), dtype=idx_dtype)
    for r0 in range(0, n, chunk_rows):
        r1 = min(n, r0 + chunk_rows)
        block = es[r0:r1] @ es[r0:].T  # (rows, n - r0), column c is sample r0 + c
        for i in range(r0, r1):
            row = block[i - r0]
            e_i = int(ends[i])
            g0, g1 = int(gen_off[i]), int(gen_off[i + 1])
            if g1 > g0:
                g_s[g0:g1] = row[i + 1 - r0 : e_i - r0]
                g_p[g0:g1, 0] = perm_i[i]
                g_p[g0:g1, 1] = perm_i[i + 1 : e_i]
            k0, k1 = int(kept_off[i]), int(kept_off[i + 1])
            if k1 == k0:
                continue
            if chosen is None:
                cols = slice(e_i, n)
                i_s[k0:k1] = row[e_i - r0 :]
            else:
                cols = chosen[k0:k1] - imp_off[i] + e_i
                i_s[k0:k1] = row[cols - r0]
            i_p[k0:k1, 0] = perm_i[i]
            i_p[k0:k1, 1] = perm_i[cols]
        del block
    _readonly(g_s, g_p, i_s, i_p)
    return Comparisons(g_s, g_p, i_s, i_p, n, labels, "all-vs-all", sampling)


def comparisons_from_pairs(
    embeddings: np.ndarray,
    pairs: np.ndarray,
    identities: np.ndarray,
    *,
    genuine: np.ndarray | None = None,
    dtype: type = np.float64,
    chunk_size: int = 1 << 20,
) -> Comparisons:
    """Score a given pair list (e.g. LFW ``pairs.txt``); genuine = same identity, or as the list says.

    Args:
        embeddings: ``(N, D)`` feature vectors.
        pairs: ``(P, 2)`` sample indices, ``a != b``; duplicates are kept as given.
        identities: ``(N,)`` identity labels (the bootstrap's units); they decide genuine vs impostor
            unless ``genuine`` is given.
        genuine: ``(P,)`` bool, whether each pair is genuine, as the pair list says (an insightface
            ``.bin`` file, whose images have no identity labels); None: same identity label.
        dtype: score dtype.
        chunk_size: at most this many pairs scored per block (also capped so that the two gathered
            blocks of rows take about :data:`PAIR_BLOCK_BYTES`).

    Returns:
        :class:`Comparisons` with ``source="pair-list"``.
    """
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
    e, norms = _rows_and_norms(embeddings)
    n = e.shape[0]
    labels, codes = _identity_codes(identities, n)
    p = _check_pairs("pairs", pairs, n)
    scores = np.empty(len(p), dtype=dtype)
    # Rows are gathered and normalised per block (float64, the same operations as normalising all rows
    # first, so the same scores), so memory stays ~2 x block x D x 8 bytes however many pairs there are.
    block = max(1, min(chunk_size, PAIR_BLOCK_BYTES // (16 * max(1, e.shape[1]))))
    for s in range(0, len(p), block):
        a, b = p[s : s + block, 0], p[s : s + block, 1]
        ua = e[a].astype(np.float64) / norms[a, None]
        ub = e[b].astype(np.float64) / norms[b, None]
        scores[s : s + block] = np.einsum("ij,ij->i", ua, ub)
    if genuine is None:
        genuine = codes[p[:, 0]] == codes[p[:, 1]]
    else:
        genuine = np.asarray(genuine)
        if genuine.dtype != np.bool_ or genuine.shape != (len(p),):
            raise ValueError(f"genuine must be ({len(p)},) bool, got {genuine.dtype} {genuine.shape}")
    idx_dtype = _index_dtype(n)
    g_s, i_s = scores[genuine], scores[~genuine]
    g_p, i_p = p[genuine].astype(idx_dtype), p[~genuine].astype(idx_dtype)
    _readonly(g_s, g_p, i_s, i_p)
    return Comparisons(g_s, g_p, i_s, i_p, n, labels, "pair-list", ImpostorSampling("pair-list", len(i_s), len(i_s)))


def _check_pairs(name: str, pairs: object, n: int) -> np.ndarray:
    p = np.asarray(pairs)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"{name} must have shape (P, 2), got {p.shape}")
    if p.size and p.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer sample indices, got dtype {p.dtype}")
    p = p.astype(np.int64)
    if p.size and (p.min() < 0 or p.max() >= n):
        bad = int(np.flatnonzero((p < 0).any(axis=1) | (p >= n).any(axis=1))[0])
        raise ValueError(f"{name}[{bad}] = {p[bad].tolist()} is outside the {n} samples")
    same = p[:, 0] == p[:, 1]
    if same.any():
        bad = int(np.flatnonzero(same)[0])
        raise ValueError(f"{name}[{bad}] = {p[bad].tolist()} compares a sample with itself")
    return p


def comparisons_from_scores(
    genuine_scores: np.ndarray,
    genuine_pairs: np.ndarray,
    impostor_scores: np.ndarray,
    impostor_pairs: np.ndarray,
    *,
    n_samples: int | None = None,
    identities: np.ndarray | None = None,
) -> Comparisons:
    """Wrap comparison scores computed elsewhere (copies the arrays).

    Args:
        genuine_scores, impostor_scores: ``(G,)``, ``(I,)`` finite similarity scores.
        genuine_pairs, impostor_pairs: ``(G, 2)``, ``(I, 2)`` sample indices.
        n_samples: number of samples; defaults to ``len(identities)``.
        identities: optional labels; when given, genuine pairs must share an
            identity and impostor pairs must not.
    """
    if identities is not None:
        labels = np.asarray(identities)
        if n_samples is None:
            n_samples = len(labels)
        labels, codes = _identity_codes(labels, int(n_samples))
    elif n_samples is None:
        raise ValueError("give n_samples or identities")
    else:
        labels = codes = None
    n = int(n_samples)
    # one score dtype for both sets, so a threshold means the same for both
    dtype = np.result_type(as_scores("genuine_scores", genuine_scores, allow_empty=True),
                           as_scores("impostor_scores", impostor_scores, allow_empty=True))
    out = {}
    for kind, s, p in (("genuine", genuine_scores, genuine_pairs), ("impostor", impostor_scores, impostor_pairs)):
        s = as_scores(f"{kind}_scores", s, allow_empty=True).astype(dtype)  # a copy
        p = _check_pairs(f"{kind}_pairs", p, n)
        if len(p) != len(s):
            raise ValueError(f"{kind}_scores has {len(s)} values but {kind}_pairs has {len(p)} rows")
        if codes is not None:
            same = codes[p[:, 0]] == codes[p[:, 1]]
            wrong = ~same if kind == "genuine" else same
            if wrong.any():
                bad = int(np.flatnonzero(wrong)[0])
                raise ValueError(f"{kind}_pairs[{bad}] = {p[bad].tolist()} has {'different' if kind == 'genuine' else 'the same'} identities")
        p = p.astype(_index_dtype(n))
        _readonly(s, p)
        out[kind] = (s, p)
    n_imp = len(out["impostor"][0])
    return Comparisons(*out["genuine"], *out["impostor"], n, labels, "scores", ImpostorSampling("given", n_imp, n_imp))
