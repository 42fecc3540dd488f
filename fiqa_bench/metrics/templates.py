"""Set-based (template) verification with quality weighting, SDD-FIQA Table 2.

SDD-FIQA (Ou et al., CVPR 2021, Sec. 4.4 and Table 2), following PCNet
(Xie, Byrne and Zisserman, BMVC 2020), compares *templates* (sets of images of
one person) rather than images.  A template ``x = {x_1, ..., x_n}`` gets the
descriptor

    f(x) = 1/n sum_i phi(x_i) f(x_i),

with ``f(x_i)`` the L2-normalised embedding of image ``x_i`` and
``phi(x_i) >= 0`` a weight derived from its quality; here ``f(x)`` is then
L2-normalised, so the ``1/n`` factor and any common scale of the weights do not
matter, only their ratios within a template.  Two templates are compared by
the cosine of their descriptors, and the result is TAR at FMR = 1e-2, 1e-3,
1e-4 with the exact thresholds of :mod:`~fiqa_bench.metrics.thresholds`
(accept if the score exceeds the highest rejected impostor score).

Weights (:func:`quality_weights`).  Raw qualities are on each method's own
scale: some are negative (e.g. negated uncertainties), some live in a narrow
band, some are unbounded.  A weighted mean needs weights ``>= 0`` (a negative
weight would pull the descriptor *away* from that image), and it should keep
the order the method asserts (a better image never weighs less), so the raw
quality goes through a monotone non-negative map: ``"minmax"`` (affine to
[0, 1] over the data set), ``"rank"`` (normalised ranks in (0, 1], invariant
to any strictly increasing transform of the quality) or ``"none"`` (the
unweighted baseline).  An image without a quality (NaN) gets weight 0.

Templates (:func:`split_identity_templates`).  For data without a template
protocol (LFW), each identity with enough images is split at random, seeded,
into two templates: one genuine pair per identity, and every pair of templates
of different identities an impostor pair.

Uncertainty (:func:`bootstrap_set_tar`).  Template pairs share templates and
people, so pairs are not independent; the bootstrap resamples *subjects*
(the subsets bootstrap of Bolle, Ratha and Pankanti, CVIU 2004, as in
:mod:`~fiqa_bench.metrics.bootstrap`), see that function.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fiqa_bench.metrics._common import allowed_count, check_fmrs, check_min_false_matches, nan_to_none
from fiqa_bench.metrics.thresholds import TARAtFMR, tar_at_fmr

__all__ = [
    "WEIGHT_SCHEMES",
    "TABLE2_FMRS",
    "TemplateDescriptors",
    "TemplatePairs",
    "SetVerification",
    "SetTARBootstrap",
    "IdentityTemplates",
    "quality_weights",
    "template_descriptors",
    "pair_scores",
    "set_verification",
    "bootstrap_set_tar",
    "split_identity_templates",
]

WEIGHT_SCHEMES = ("minmax", "rank", "none")
TABLE2_FMRS = (1e-2, 1e-3, 1e-4)


# --------------------------------------------------------------------------- validation helpers


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _as_index_array(name: str, values: object) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _as_matrix(name: str, values: object) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        raise ValueError(f"{name} holds {int(bad.sum())} non-finite values (first in row {row})")
    return arr


def _l2_rows(name: str, x: np.ndarray, what: str) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1)
    zero = norms == 0
    if zero.any():
        i = int(np.flatnonzero(zero)[0])
        raise ValueError(f"{name}: {what} {i} has zero norm and no direction ({int(zero.sum())} such rows)")
    return x / norms[:, None]


# --------------------------------------------------------------------------- weights


def quality_weights(qualities: np.ndarray, scheme: str = "minmax") -> np.ndarray:
    """Non-negative per-image weights ``phi`` from qualities (higher = better).

    Schemes (all monotone non-decreasing in the quality, see the module docstring):

    * ``"minmax"``: ``(q - min) / (max - min)`` with min and max over the finite
      qualities, in [0, 1]; ``-inf`` -> 0 and ``+inf`` -> 1.  The worst image of
      the data set gets weight 0.  If every finite quality is equal, all weights are 1.
    * ``"rank"``: ``r / m`` with ``r`` the rank (1 = lowest, ties get their average
      rank) among the ``m`` non-NaN qualities, in (0, 1]: the worst image keeps a
      small positive weight, and any strictly increasing transform of the
      qualities gives the same weights.
    * ``"none"``: all ones (the unweighted baseline; NaN qualities are irrelevant).

    A NaN quality (the method gave none) gets weight 0 under ``"minmax"`` and
    ``"rank"``, i.e. that image does not contribute to its template unless all
    of the template's weights are 0 (then :func:`template_descriptors` falls back
    to the unweighted mean).

    Args:
        qualities: ``(N,)`` per-image qualities, NaN allowed.
        scheme: one of :data:`WEIGHT_SCHEMES`.

    Returns:
        ``(N,)`` float64 weights ``>= 0``.

    Example:
        >>> quality_weights(np.array([-2.0, 0.0, 2.0, np.nan])).tolist()
        [0.0, 0.5, 1.0, 0.0]
        >>> quality_weights(np.array([5.0, 1.0, 5.0, np.nan]), "rank").round(4).tolist()  # ranks 2.5, 1, 2.5 of m = 3
        [0.8333, 0.3333, 0.8333, 0.0]
    """
    if scheme not in WEIGHT_SCHEMES:
        raise ValueError(f"scheme must be one of {list(WEIGHT_SCHEMES)}, got {scheme!r}")
    q = np.asarray(qualities)
    if q.ndim != 1:
        raise ValueError(f"qualities must be 1-D, got shape {q.shape}")
    if q.dtype.kind not in "biuf":
        raise TypeError(f"qualities must be numeric, got dtype {q.dtype}")
    q = q.astype(np.float64)
    if scheme == "none":
        return np.ones(len(q))
    w = np.zeros(len(q))
    known = ~np.isnan(q)
    if scheme == "minmax":
        finite = np.isfinite(q)
        if not finite.any():
            w[known] = np.where(q[known] > 0, 1.0, 0.0)  # only +-inf: +inf best, -inf worst
            return w
        lo, hi = q[finite].min(), q[finite].max()
        if hi == lo:
            w[known] = np.where(q[known] == -np.inf, 0.0, 1.0)
            return w
        w[known] = np.clip((q[known] - lo) / (hi - lo), 0.0, 1.0)
        return w
    values, inverse, counts = np.unique(q[known], return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)  # rank of the last member of each tie group
    average_rank = upper - (counts - 1) / 2.0
    w[known] = average_rank[inverse.ravel()] / known.sum()
    return w


# --------------------------------------------------------------------------- descriptors


@dataclass(frozen=True)
class TemplateDescriptors:
    """Quality-weighted template descriptors.

    Attributes:
        descriptors: ``(T, d)`` float64, unit L2 norm.
        n_images: ``(T,)`` images in each template.
        fallback_unweighted: ``(T,)`` True where the template's weights summed to 0
            and the unweighted mean was used instead.
        n_fallback_unweighted: number of such templates.
    """

    descriptors: np.ndarray
    n_images: np.ndarray
    fallback_unweighted: np.ndarray
    n_fallback_unweighted: int

    @property
    def n_templates(self) -> int:
        return len(self.descriptors)

    def to_dict(self) -> dict:
        """Summary (not the descriptors themselves)."""
        return {
            "n_templates": self.n_templates,
            "dim": int(self.descriptors.shape[1]),
            "n_images_total": int(self.n_images.sum()),
            "n_images_min": int(self.n_images.min()),
            "n_images_max": int(self.n_images.max()),
            "n_fallback_unweighted": self.n_fallback_unweighted,
        }


def template_descriptors(
    embeddings: np.ndarray,
    template_of_image: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    n_templates: int | None = None,
) -> TemplateDescriptors:
    """``f(x) = normalise(sum_i phi_i e_i / ||e_i||)`` for every template ``x``.

    Args:
        embeddings: ``(N, d)`` finite image embeddings (normalised here, in float64).
        template_of_image: ``(N,)`` template index ``0..T-1`` of each image, or
            ``-1`` for an image in no template (ignored).
        weights: ``(N,)`` finite weights ``>= 0`` (e.g. :func:`quality_weights`);
            None = all ones.  A template whose weights sum to 0 gets the
            unweighted mean of its images (counted in ``n_fallback_unweighted``).
        n_templates: ``T``; default ``max(template_of_image) + 1``.  Every template
            must have at least one image.

    Returns:
        :class:`TemplateDescriptors`.

    Raises:
        ValueError: shapes disagree, a weight is negative or non-finite, a template
            index is out of range, a template is empty, an embedding or a
            template's mean is the zero vector.
    """
    e = _as_matrix("embeddings", embeddings)
    t = _as_index_array("template_of_image", template_of_image)
    n, d = e.shape
    if len(t) != n:
        raise ValueError(f"template_of_image has {len(t)} entries for {n} embeddings")
    if weights is None:
        w = np.ones(n)
    else:
        w = np.asarray(weights)
        if w.ndim != 1 or len(w) != n:
            raise ValueError(f"weights must have shape ({n},), got {w.shape}")
        if w.dtype.kind not in "biuf":
            raise TypeError(f"weights must be numeric, got dtype {w.dtype}")
        w = w.astype(np.float64)
        bad = ~np.isfinite(w) | (w < 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"weights must be finite and >= 0; weight {i} is {float(w[i])!r} "
                             f"({int(bad.sum())} such; map qualities with quality_weights)")
    if (t < -1).any():
        i = int(np.flatnonzero(t < -1)[0])
        raise ValueError(f"template_of_image[{i}] is {t[i]}; use -1 for an image in no template")
    used = t >= 0
    if not used.any():
        raise ValueError("no image belongs to a template (template_of_image is all -1)")
    top = int(t.max()) + 1
    n_t = top if n_templates is None else _check_int("n_templates", n_templates, 1)
    if top > n_t:
        raise ValueError(f"template_of_image holds template {top - 1}, but n_templates is {n_t}")
    counts = np.bincount(t[used], minlength=n_t)
    if (counts == 0).any():
        empty = np.flatnonzero(counts == 0)
        raise ValueError(f"template {int(empty[0])} has no image ({len(empty)} empty templates of {n_t})")

    unit = _l2_rows("embeddings", e[used], "embedding of used image")
    tu, wu = t[used], w[used]
    order = np.argsort(tu, kind="stable")
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    weighted = np.add.reduceat(unit[order] * wu[order, None], starts, axis=0)
    plain = np.add.reduceat(unit[order], starts, axis=0)
    fallback = np.bincount(tu, weights=wu, minlength=n_t) == 0
    sums = np.where(fallback[:, None], plain, weighted)
    desc = _l2_rows("template_descriptors", sums, "template")
    return TemplateDescriptors(desc, counts.astype(np.int64), fallback, int(fallback.sum()))


# --------------------------------------------------------------------------- pairs and TAR


@dataclass(frozen=True)
class TemplatePairs:
    """Template comparisons: indices into a template list, and whether each is genuine.

    Attributes:
        first, second: ``(P,)`` int64 template indices, ``first != second``.
        genuine: ``(P,)`` bool, True when both templates show the same person.
    """

    first: np.ndarray
    second: np.ndarray
    genuine: np.ndarray

    def __post_init__(self) -> None:
        first = _as_index_array("first", self.first)
        second = _as_index_array("second", self.second)
        genuine = np.asarray(self.genuine)
        if genuine.ndim != 1 or genuine.dtype.kind not in "biu" or (genuine.size and
                                                                      not np.isin(genuine, (0, 1)).all()):
            raise ValueError(f"genuine must be a 1-D bool (or 0/1) array, got dtype {genuine.dtype}, "
                             f"shape {genuine.shape}")
        if not (len(first) == len(second) == len(genuine)):
            raise ValueError(f"first, second and genuine must have one length, got "
                             f"{len(first)}, {len(second)}, {len(genuine)}")
        object.__setattr__(self, "first", first)
        object.__setattr__(self, "second", second)
        object.__setattr__(self, "genuine", genuine.astype(bool))

    def __len__(self) -> int:
        return len(self.first)

    @property
    def n_genuine(self) -> int:
        return int(self.genuine.sum())

    @property
    def n_impostor(self) -> int:
        return len(self) - self.n_genuine

    def to_dict(self) -> dict:
        return {"n_pairs": len(self), "n_genuine": self.n_genuine, "n_impostor": self.n_impostor}


def _check_pairs(n_templates: int, first: object, second: object, genuine: object) -> TemplatePairs:
    pairs = TemplatePairs(first, second, genuine)  # type: ignore[arg-type]
    for name in ("first", "second"):
        idx = getattr(pairs, name)
        bad = (idx < 0) | (idx >= n_templates)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"pairs_{name}[{i}] is {idx[i]}, outside the {n_templates} templates")
    same = pairs.first == pairs.second
    if same.any():
        i = int(np.flatnonzero(same)[0])
        raise ValueError(f"pair {i} compares template {pairs.first[i]} with itself")
    if pairs.n_genuine == 0 or pairs.n_impostor == 0:
        raise ValueError(f"need genuine and impostor pairs, got {pairs.n_genuine} genuine and "
                         f"{pairs.n_impostor} impostor")
    return pairs


def pair_scores(descriptors: np.ndarray, pairs_first: np.ndarray, pairs_second: np.ndarray) -> np.ndarray:
    """Cosine similarity of each template pair, ``(P,)`` float64 (rows are normalised here)."""
    desc = _l2_rows("descriptors", _as_matrix("descriptors", descriptors), "descriptor")
    first = _as_index_array("pairs_first", pairs_first)
    second = _as_index_array("pairs_second", pairs_second)
    if len(first) != len(second):
        raise ValueError(f"pairs_first has {len(first)} entries, pairs_second {len(second)}")
    out = np.empty(len(first))
    for start in range(0, len(first), 1 << 16):  # bounded memory for millions of pairs
        a, b = first[start:start + (1 << 16)], second[start:start + (1 << 16)]
        out[start:start + len(a)] = np.einsum("ij,ij->i", desc[a], desc[b])
    return np.clip(out, -1.0, 1.0)


@dataclass(frozen=True)
class SetVerification:
    """TAR at each target FMR of a set-based verification.

    Attributes:
        fmrs: the target FMRs.
        results: one :class:`~fiqa_bench.metrics.thresholds.TARAtFMR` per FMR.
        n_genuine, n_impostor: template pairs used.
    """

    fmrs: tuple[float, ...]
    results: tuple[TARAtFMR, ...]
    n_genuine: int
    n_impostor: int

    @property
    def tar(self) -> np.ndarray:
        """``(F,)`` TAR per FMR (NaN where insufficient)."""
        return np.array([r.tar for r in self.results])

    def to_dict(self) -> dict:
        return {"fmrs": list(self.fmrs), "tar": nan_to_none(self.tar), "n_genuine": self.n_genuine,
                "n_impostor": self.n_impostor, "results": [r.to_dict() for r in self.results]}

    def to_markdown(self) -> str:
        head = "| " + " | ".join(f"FMR={f:g}" for f in self.fmrs) + " | genuine | impostor |"
        cells = ["insufficient" if r.insufficient else f"{r.tar:.4f}" for r in self.results]
        return (head + "\n|" + "---|" * (len(self.fmrs) + 2) + "\n| " + " | ".join(cells)
                + f" | {self.n_genuine} | {self.n_impostor} |")


def set_verification(
    descriptors: np.ndarray,
    pairs_first: np.ndarray,
    pairs_second: np.ndarray,
    genuine: np.ndarray,
    fmrs: float | Sequence[float] = TABLE2_FMRS,
    *,
    min_false_matches: int = 10,
) -> SetVerification:
    """TAR at each FMR of the template pairs, scored by the cosine of their descriptors.

    Args:
        descriptors: ``(T, d)`` template descriptors (:func:`template_descriptors`).
        pairs_first, pairs_second: ``(P,)`` template indices of each pair.
        genuine: ``(P,)`` bool, True for a genuine (same person) pair.
        fmrs: target FMR(s), default 1e-2, 1e-3, 1e-4 (Table 2).
        min_false_matches: sufficiency requirement of
            :func:`~fiqa_bench.metrics.thresholds.threshold_at_fmr`.

    Returns:
        :class:`SetVerification`; each TAR is exactly
        ``tar_at_fmr(genuine scores, impostor scores, fmr)``.
    """
    targets = check_fmrs(fmrs)
    mfm = check_min_false_matches(min_false_matches)
    desc = _as_matrix("descriptors", descriptors)
    pairs = _check_pairs(len(desc), pairs_first, pairs_second, genuine)
    scores = pair_scores(desc, pairs.first, pairs.second)
    g, i = scores[pairs.genuine], scores[~pairs.genuine]
    results = tuple(tar_at_fmr(g, i, f, min_false_matches=mfm) for f in targets)
    return SetVerification(targets, results, len(g), len(i))


# --------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class SetTARBootstrap:
    """Percentile bootstrap intervals of TAR at each FMR, resampling subjects.

    Attributes:
        fmrs: target FMRs.
        estimates: ``(F,)`` TAR on the full data.
        low, high: ``(F,)`` interval bounds (NaN where every replicate was undefined).
        confidence: e.g. 0.95.
        n_boot: replicates drawn.
        n_undefined: ``(F,)`` replicates without a TAR (too few impostor
            comparisons drawn for the FMR, or no genuine pair drawn).
        seed: ``numpy.random.default_rng`` seed.
        n_units: subjects (resampling units) drawn from.
        resampling: ``"subjects"`` or ``"templates"`` (no subject labels given).
        replicates: ``(n_boot, F)`` replicate TARs (NaN where undefined).
    """

    fmrs: tuple[float, ...]
    estimates: np.ndarray
    low: np.ndarray
    high: np.ndarray
    confidence: float
    n_boot: int
    n_undefined: np.ndarray
    seed: int
    n_units: int
    resampling: str
    replicates: np.ndarray

    def to_dict(self) -> dict:
        return {
            "fmrs": list(self.fmrs), "estimates": nan_to_none(self.estimates), "low": nan_to_none(self.low),
            "high": nan_to_none(self.high), "confidence": self.confidence, "n_boot": self.n_boot,
            "n_undefined": self.n_undefined.tolist(), "seed": self.seed, "n_units": self.n_units,
            "resampling": self.resampling, "replicates": [nan_to_none(r) for r in self.replicates],
        }


class _WeightedTAR:
    """TAR at several FMRs with integer comparison weights (a replicate's multiplicities).

    Exactly :func:`tar_at_fmr` on the materialised multiset (each score repeated
    by its weight): ``k = allowed_count(fmr, W_imp)``, ``s*`` the ``(k+1)``-th
    highest of the repeated impostor scores, TAR = weight of genuine scores
    ``> s*`` over the genuine weight.  Scores are sorted once; a replicate
    costs one cumulative sum over the weights.
    """

    def __init__(self, genuine: np.ndarray, impostor: np.ndarray) -> None:
        self.g_order = np.argsort(genuine, kind="stable")
        self.g_sorted = genuine[self.g_order]
        self.i_order = np.argsort(-impostor, kind="stable")  # descending
        self.i_sorted = impostor[self.i_order]

    def __call__(self, w_gen: np.ndarray, w_imp: np.ndarray, fmrs: tuple[float, ...], mfm: int) -> np.ndarray:
        """``w_gen``/``w_imp`` in the sorted orders; returns ``(F,)`` TAR, NaN where undefined."""
        out = np.full(len(fmrs), np.nan)
        cum_imp = np.cumsum(w_imp)  # weight of the j+1 highest impostor scores
        cum_gen = np.cumsum(w_gen)  # weight of the j+1 lowest genuine scores
        total_imp = int(cum_imp[-1]) if len(cum_imp) else 0
        total_gen = int(cum_gen[-1]) if len(cum_gen) else 0
        if total_imp == 0 or total_gen == 0:
            return out
        for f_idx, f in enumerate(fmrs):
            k = int(allowed_count(f, total_imp))
            if k < mfm:
                continue
            rejected = self.i_sorted[int(np.searchsorted(cum_imp, k + 1, side="left"))]
            below = int(np.searchsorted(self.g_sorted, rejected, side="right"))  # genuine <= s*
            rejected_gen = int(cum_gen[below - 1]) if below else 0
            out[f_idx] = (total_gen - rejected_gen) / total_gen
        return out


def bootstrap_set_tar(
    descriptors: np.ndarray,
    pairs_first: np.ndarray,
    pairs_second: np.ndarray,
    genuine: np.ndarray,
    template_subjects: np.ndarray | Sequence | None = None,
    fmrs: float | Sequence[float] = TABLE2_FMRS,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    min_false_matches: int = 10,
) -> SetTARBootstrap:
    """Percentile bootstrap interval of TAR at each FMR, resampling subjects.

    Unit: the *subject* of a template (``template_subjects``).  Each replicate
    draws the ``S`` subjects that appear in some pair, with replacement; a
    subject drawn ``c`` times is present ``c`` times.  A pair of templates of
    subjects ``a != b`` (every impostor pair) then appears ``c_a * c_b`` times,
    the product of the counts, as if the copies were materialised; a pair of
    two templates of one subject ``a`` (a genuine pair) appears ``c_a`` times:
    each copy of a person brings its own genuine pair, and two copies of the
    same person are not compared with each other (as in
    :mod:`~fiqa_bench.metrics.bootstrap`).  Pairs of undrawn subjects drop out.
    An impostor pair therefore counts for both its subjects, which is what
    makes its uncertainty honest: one poorly-enrolled person affects all of
    their impostor pairs together.

    Without ``template_subjects`` (IJB-C's 1:1 metadata does not say whose a
    template is) each template is its own unit: genuine pairs then weigh
    ``c_a * c_b`` like impostor pairs, and the dependence between templates of
    one person is ignored, so the interval is somewhat too narrow.

    No pair is duplicated in memory: the multiplicities are integer weights
    and TAR is computed from weighted cumulative counts over scores sorted once,
    exactly equal to :func:`~fiqa_bench.metrics.thresholds.tar_at_fmr` on the
    materialised replicate (the private ``_WeightedTAR``).  The draws depend only on
    ``seed`` and ``S``, so two calls with the same seed and subjects (e.g. two
    weighting schemes) use the same replicates and ``replicates_a -
    replicates_b`` is a paired bootstrap of the difference.

    Args:
        descriptors, pairs_first, pairs_second, genuine: as :func:`set_verification`.
        template_subjects: ``(T,)`` subject label of each template (any sortable
            labels), or None for template-level resampling.
        fmrs: target FMR(s).
        n_boot: replicates.
        confidence: interval coverage in (0, 1).
        seed: ``numpy.random.default_rng`` seed.
        min_false_matches: a replicate whose impostor weight allows fewer false
            matches is undefined for that FMR (NaN, counted in ``n_undefined``).

    Returns:
        :class:`SetTARBootstrap`.
    """
    targets = check_fmrs(fmrs)
    mfm = check_min_false_matches(min_false_matches)
    n_boot = _check_int("n_boot", n_boot, 1)
    try:
        conf = float(confidence)
    except (TypeError, ValueError):
        raise ValueError(f"confidence must be a number in (0, 1), got {confidence!r}") from None
    if not (0.0 < conf < 1.0):
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    desc = _as_matrix("descriptors", descriptors)
    n_t = len(desc)
    pairs = _check_pairs(n_t, pairs_first, pairs_second, genuine)
    if template_subjects is None:
        codes_t = np.arange(n_t)
        resampling = "templates"
    else:
        subjects = np.asarray(template_subjects)
        if subjects.ndim != 1 or len(subjects) != n_t:
            raise ValueError(f"template_subjects must have shape ({n_t},), got {subjects.shape}")
        codes_t = np.unique(subjects, return_inverse=True)[1].ravel()
        resampling = "subjects"
        ua, ub = codes_t[pairs.first], codes_t[pairs.second]
        wrong = (ua == ub) != pairs.genuine
        if wrong.any():
            i = int(np.flatnonzero(wrong)[0])
            raise ValueError(f"pair {i} (templates {pairs.first[i]}, {pairs.second[i]}) is labelled "
                             f"genuine={bool(pairs.genuine[i])} but its subjects are "
                             f"{subjects[pairs.first[i]].item()!r} and {subjects[pairs.second[i]].item()!r}")
    # resampling units: the subjects that take part in some pair, numbered 0..S-1
    used_units, unit_codes = np.unique(np.concatenate([codes_t[pairs.first], codes_t[pairs.second]]),
                                       return_inverse=True)
    n_units = len(used_units)
    ua_all = unit_codes.ravel()[:len(pairs)]
    ub_all = unit_codes.ravel()[len(pairs):]

    scores = pair_scores(desc, pairs.first, pairs.second)
    g_mask = pairs.genuine
    evaluator = _WeightedTAR(scores[g_mask], scores[~g_mask])
    estimates = np.array([np.nan if r.insufficient else r.tar for r in
                          (tar_at_fmr(scores[g_mask], scores[~g_mask], f, min_false_matches=mfm) for f in targets)])
    # unit codes of each comparison, in the evaluator's sorted orders
    ga, gb = ua_all[g_mask][evaluator.g_order], ub_all[g_mask][evaluator.g_order]
    ia, ib = ua_all[~g_mask][evaluator.i_order], ub_all[~g_mask][evaluator.i_order]
    # with subject units a genuine pair has one unit (weight c_a), an impostor pair two (c_a * c_b);
    # with template units every pair has two distinct units (no template is paired with itself)
    one_unit_genuine = resampling == "subjects"

    rng = np.random.default_rng(seed)
    reps = np.empty((n_boot, len(targets)))
    for b in range(n_boot):
        c = np.bincount(rng.integers(0, n_units, n_units), minlength=n_units).astype(np.int64)
        w_gen = c[ga] if one_unit_genuine else c[ga] * c[gb]
        w_imp = c[ia] * c[ib]
        reps[b] = evaluator(w_gen, w_imp, targets, mfm)
    ok = ~np.isnan(reps)
    low, high = np.full(len(targets), np.nan), np.full(len(targets), np.nan)
    for f_idx in range(len(targets)):
        if ok[:, f_idx].any():
            low[f_idx], high[f_idx] = np.quantile(reps[ok[:, f_idx], f_idx], [(1 - conf) / 2, (1 + conf) / 2])
    return SetTARBootstrap(targets, estimates, low, high, conf, n_boot, (~ok).sum(axis=0), int(seed), n_units,
                           resampling, reps)


# --------------------------------------------------------------------------- LFW-style templates


@dataclass(frozen=True)
class IdentityTemplates:
    """Two random templates per identity and all their pairs.

    Attributes:
        template_of_image: ``(N,)`` int64 template index of each image, -1 if unused.
        template_subjects: ``(T,)`` identity label of each template (templates
            ``2k`` and ``2k + 1`` belong to the ``k``-th qualifying identity in sorted order).
        pairs: :class:`TemplatePairs`, every unordered pair ``i < j`` in
            lexicographic order; genuine exactly for ``(2k, 2k + 1)``.
        min_images: the qualification threshold used.
        seed: the seed of the splits.
    """

    template_of_image: np.ndarray
    template_subjects: np.ndarray
    pairs: TemplatePairs
    min_images: int
    seed: int

    @property
    def n_templates(self) -> int:
        return len(self.template_subjects)

    def to_dict(self) -> dict:
        return {"n_templates": self.n_templates, "n_identities": self.n_templates // 2,
                "n_images_used": int((self.template_of_image >= 0).sum()), "min_images": self.min_images,
                "seed": self.seed, **self.pairs.to_dict()}


def _identity_rng(seed: int, identity: object) -> np.random.Generator:
    """A generator that depends only on ``seed`` and the identity's label (stable across machines/runs)."""
    digest = hashlib.sha256(repr(identity).encode("utf-8")).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def split_identity_templates(
    identities: np.ndarray | Sequence, min_images: int = 4, seed: int = 0
) -> IdentityTemplates:
    """Split each identity's images into two templates (LFW-style real sets).

    Every identity with ``n >= min_images`` images has its images (in the
    given order) shuffled and split into templates of ``floor(n / 2)`` and
    ``ceil(n / 2)`` images.  The shuffle of an identity depends only on
    ``seed`` and the identity's label (a SHA-256 of its ``repr`` seeds
    ``numpy.random.default_rng``), so it is the same on every machine and does
    not change when other identities are added or removed.  Identities with
    fewer images are unused (``template_of_image == -1``).

    Args:
        identities: ``(N,)`` identity label of each image (str or int).
        min_images: at least 2, so both templates are non-empty.
        seed: a non-negative integer.

    Returns:
        :class:`IdentityTemplates`: ``K`` qualifying identities give ``T = 2K``
        templates, ``K`` genuine and ``T (T - 1) / 2 - K`` impostor pairs.

    Raises:
        ValueError: ``min_images < 2``, a negative seed, or fewer than two
            identities qualify (no impostor pair).
    """
    min_images = _check_int("min_images", min_images, 2)
    seed = _check_int("seed", seed, 0)
    labels = np.asarray(identities)
    if labels.ndim != 1:
        raise ValueError(f"identities must be 1-D, got shape {labels.shape}")
    names, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    qualifying = np.flatnonzero(counts >= min_images)
    if len(qualifying) < 2:
        raise ValueError(f"need at least 2 identities with >= {min_images} images, got {len(qualifying)} "
                         f"(of {len(names)} identities)")
    template_of_image = np.full(len(labels), -1, dtype=np.int64)
    order = np.argsort(inverse, kind="stable")  # images grouped by identity, in given order
    starts = np.concatenate(([0], np.cumsum(counts)))
    for k, u in enumerate(qualifying):
        members = order[starts[u]:starts[u + 1]]
        shuffled = members[_identity_rng(seed, names[u].item()).permutation(len(members))]
        half = len(members) // 2
        template_of_image[shuffled[:half]] = 2 * k
        template_of_image[shuffled[half:]] = 2 * k + 1
    template_subjects = np.repeat(names[qualifying], 2)
    n_t = len(template_subjects)
    first, second = np.triu_indices(n_t, 1)
    genuine = (first // 2) == (second // 2)
    pairs = TemplatePairs(first.astype(np.int64), second.astype(np.int64), genuine)
    return IdentityTemplates(template_of_image, template_subjects, pairs, min_images, seed)
