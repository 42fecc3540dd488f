"""A classical, weight-free face recogniser: grids of LBP histograms (Ahonen et al.).

A second "deployed" recognition system, independent of any neural network,
for cross-model tests (does a quality score learnt on one recogniser still
rank images for a very different one?).

Pipeline on a 112x112 ArcFace-aligned chip (template ``"arcface112"``):

1. Grey level ``g = round(0.299 R + 0.587 G + 0.114 B)`` (ITU-R BT.601 luma,
   the weights OpenCV's ``RGB2GRAY`` uses), kept as uint8.
2. Local binary pattern at every pixel, ``P = 8`` neighbours on a circle of
   radius ``R = 1`` (diagonals bilinearly interpolated)::

       LBP_{P,R}(c) = sum_{p=0}^{P-1} s(g_p - g_c) 2^p,   s(x) = 1 if x >= 0 else 0

   mapped to the *non-rotation-invariant uniform* code set ``u2``: each of
   the ``P (P - 1) + 2 = 58`` patterns with at most two 0/1 transitions
   around the circle keeps its own label, all others share one label, so
   ``P (P - 1) + 3 = 59`` bins (scikit-image ``method="nri_uniform"``).
   The image is edge-padded by ``R`` pixels first so border pixels see
   replicated neighbours instead of a black frame.
3. The chip is divided into a ``grid x grid`` array of cells (default 7x7,
   16x16 pixels each); every cell gets a 59-bin histogram normalised to sum 1,
   ``h_c(b) = #{pixels of cell c with code b} / #{pixels of cell c}``.
4. Embedding (Hellinger map): ``e = concat_c sqrt(h_c) / sqrt(C)`` with
   ``C = grid**2``; it has unit norm, and for two chips

       cos(e, e') = (1/C) sum_c sum_b sqrt(h_c(b) h'_c(b)) = BC(p, p'),

   the Bhattacharyya coefficient of the concatenated histograms rescaled to
   one distribution, ``p = concat_c h_c / C`` (the mean per-cell BC).

Why non-rotation-invariant uniform patterns: the chips are aligned (eyes
level, fixed positions), so the orientation of an edge is information (an
eyebrow is a horizontal edge, the side of the nose a vertical one); the
rotation-invariant ``riu2`` codes (10 bins) would discard it.  Uniform
patterns cover about 90% of face pixels (Ahonen et al.), so the 59 ``u2``
bins lose little against 256 raw codes while making histograms of small
cells far less sparse.  Ahonen et al. used ``LBP^{u2}_{8,2}`` on larger
(130x150) crops; at 112 pixels ``R = 1`` is the usual choice.

Relation to the chi-square distance of Ahonen et al.: for distributions
``p, q`` let ``chi2(p, q) = sum_i (p_i - q_i)^2 / (p_i + q_i)`` and
``BC = sum_i sqrt(p_i q_i)``.  Since ``(sqrt p - sqrt q)^2 = (p - q)^2 /
(sqrt p + sqrt q)^2`` and ``p + q <= (sqrt p + sqrt q)^2 <= 2 (p + q)``,

    chi2 / 2 <= sum_i (sqrt p_i - sqrt q_i)^2 = 2 (1 - BC) <= chi2,

so with ``s_chi = 1 - chi2 / 2`` (:func:`chi_square_similarity`, in [0, 1]):
``s_chi <= cos(e, e') <= (1 + s_chi) / 2``.  Cosine of the Hellinger
embeddings is therefore a chi-square-like similarity that, unlike chi2
itself, works with the suite's cosine-similarity machinery.  (Ahonen et al.
also weight the cells, eyes highest; this implementation weights all
cells equally.)

References:
    T. Ahonen, A. Hadid, M. Pietikainen. "Face Description with Local Binary
    Patterns: Application to Face Recognition." IEEE TPAMI 28(12), 2006.
    T. Ojala, M. Pietikainen, T. Maenpaa. "Multiresolution Gray-Scale and
    Rotation Invariant Texture Classification with Local Binary Patterns."
    IEEE TPAMI 24(7), 2002.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from skimage.feature import local_binary_pattern

from fiqa_bench.pipeline.threads import in_threads
from fiqa_bench.recognition.base import ModelCard, RecognitionModel, check_chips, l2_normalise
from fiqa_bench.recognition.registry import register_model

CODE_VERSION = "1"
"""Bump whenever a change could alter the embeddings (part of the fingerprint)."""
CHIP_SIZE = 112
"""Side of the ArcFace-aligned chip the model takes."""
POINTS = 8
"""Neighbours on the LBP circle."""
N_BINS = POINTS * (POINTS - 1) + 3
"""Labels of the non-rotation-invariant uniform code set: 59 for P = 8."""
DEFAULT_RADIUS = 1
"""Radius of the LBP circle, pixels."""
DEFAULT_GRID = 7
"""Cells per side of the histogram grid."""
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])
"""ITU-R BT.601 luma weights for R, G, B."""


def to_grey(chips: np.ndarray) -> np.ndarray:
    """uint8 ``(N, H, W, 3)`` RGB -> uint8 ``(N, H, W)`` BT.601 luma, rounded."""
    if chips.ndim != 4 or chips.shape[-1] != 3:
        raise ValueError(f"chips must have shape (N, H, W, 3), got {chips.shape}")
    grey = np.rint(chips.astype(np.float64) @ LUMA_WEIGHTS)
    return np.clip(grey, 0, 255).astype(np.uint8)


def lbp_codes(grey: np.ndarray, radius: int = DEFAULT_RADIUS) -> np.ndarray:
    """``nri_uniform`` LBP labels (0..58) of uint8 ``(N, H, W)`` images, edge-padded.

    scikit-image's LBP is per-image, so this loops over the batch, in threads (:func:`in_threads`:
    scikit-image releases the GIL).
    """
    if grey.ndim != 3 or grey.dtype != np.uint8:
        raise ValueError(f"grey must be uint8 (N, H, W), got {grey.dtype} {grey.shape}")
    padded = np.pad(grey, ((0, 0), (radius, radius), (radius, radius)), mode="edge")
    codes = np.empty(grey.shape, np.int64)

    def fill(rows: slice) -> None:
        for i in range(*rows.indices(len(codes))):
            full = local_binary_pattern(padded[i], POINTS, radius, method="nri_uniform")
            codes[i] = full[radius:-radius, radius:-radius]

    in_threads(fill, len(codes))
    return codes


def cell_index(size: int, grid: int) -> np.ndarray:
    """``(size, size)`` map of each pixel's cell, row-major over a ``grid x grid`` array.

    Cell borders are ``round(k * size / grid)``, so cells differ by at most one
    pixel per side when ``grid`` does not divide ``size``.
    """
    if not 1 <= grid <= size:
        raise ValueError(f"grid must be in [1, {size}], got {grid}")
    bounds = np.rint(np.linspace(0, size, grid + 1)).astype(np.int64)
    band = np.searchsorted(bounds, np.arange(size), side="right") - 1
    return band[:, None] * grid + band[None, :]


def cell_histograms(codes: np.ndarray, grid: int) -> np.ndarray:
    """Per-cell LBP histograms ``(N, grid**2, 59)``, each summing to 1.

    One ``bincount`` over the whole batch: pixel ``(n, y, x)`` with label ``b``
    in cell ``c`` lands in flat bin ``(n * C + c) * 59 + b``.
    """
    n, height, width = codes.shape
    if height != width:
        raise ValueError(f"codes must be square images, got {codes.shape}")
    cells = cell_index(height, grid)
    n_cells = grid * grid
    per_image = (cells * N_BINS + codes).reshape(n, -1)
    offsets = (np.arange(n) * n_cells * N_BINS)[:, None]
    counts = np.bincount((per_image + offsets).ravel(), minlength=n * n_cells * N_BINS)
    hist = counts.reshape(n, n_cells, N_BINS).astype(np.float64)
    pixels = np.bincount(cells.ravel(), minlength=n_cells).astype(np.float64)
    return hist / pixels[None, :, None]


def hellinger_embedding(histograms: np.ndarray) -> np.ndarray:
    """``(N, C, B)`` normalised histograms -> ``(N, C*B)`` unit-norm ``sqrt`` embeddings."""
    roots = np.sqrt(histograms.reshape(len(histograms), -1))
    return l2_normalise(roots).astype(np.float32)


def chi_square_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    """``1 - chi2(p, q) / 2`` in [0, 1], ``p, q`` = ``a, b`` rescaled to unit mass.

    ``chi2(p, q) = sum_i (p_i - q_i)^2 / (p_i + q_i)`` over the last axis
    (terms with ``p_i + q_i = 0`` count 0).  ``a`` and ``b`` are raw,
    non-negative histograms (e.g. the concatenated per-cell histograms of
    :meth:`LBPModel.histograms`, flattened), broadcast against each other.
    Relation to the model's embeddings ``e``: ``s <= cos(e_a, e_b) <= (1 + s) / 2``
    (see the module docstring).

    Returns:
        A float for 1-d inputs, else an array of the broadcast leading shape.
    """
    p, q = _unit_mass(a, "a"), _unit_mass(b, "b")
    total = p + q
    diff2 = (p - q) ** 2
    chi2 = np.sum(np.divide(diff2, total, out=np.zeros_like(total), where=total > 0), axis=-1)
    sim = 1.0 - chi2 / 2.0
    return float(sim) if np.ndim(sim) == 0 else sim


def _unit_mass(h: np.ndarray, name: str) -> np.ndarray:
    """``h`` as float64 divided by its sum over the last axis; rejects negatives and zeros."""
    arr = np.asarray(h, dtype=np.float64)
    if arr.ndim == 0:
        raise ValueError(f"{name} must be a histogram (at least 1-d), got a scalar {arr!r}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be finite and non-negative; min is {np.nanmin(arr)}")
    mass = arr.sum(axis=-1, keepdims=True)
    if np.any(mass <= 0):
        raise ValueError(f"{name} has a histogram with zero total mass")
    return arr / mass


class LBPModel(RecognitionModel):
    """Grid-of-LBP-histograms recogniser with Hellinger (sqrt) embeddings.

    Args:
        grid: cells per side (``grid**2`` cells of about ``112 / grid`` pixels).
        radius: LBP circle radius in pixels.
    """

    def __init__(self, grid: int = DEFAULT_GRID, radius: int = DEFAULT_RADIUS) -> None:
        if not isinstance(grid, int) or not 1 <= grid <= CHIP_SIZE // 2:
            raise ValueError(f"grid must be an int in [1, {CHIP_SIZE // 2}], got {grid!r}")
        if not isinstance(radius, int) or not 1 <= radius <= 4:
            raise ValueError(f"radius must be an int in [1, 4], got {radius!r}")
        self.grid = grid
        self.radius = radius
        self.card = _card(grid, radius)

    @property
    def chip_size(self) -> int:
        return CHIP_SIZE

    @property
    def embedding_dim(self) -> int:
        return self.grid * self.grid * N_BINS

    def histograms(self, chips: np.ndarray) -> np.ndarray:
        """Per-cell normalised LBP histograms, ``(N, grid**2, 59)`` float64."""
        check_chips(chips, CHIP_SIZE)
        if len(chips) == 0:
            return np.zeros((0, self.grid * self.grid, N_BINS))
        return cell_histograms(lbp_codes(to_grey(chips), self.radius), self.grid)

    def embed(self, chips: np.ndarray) -> np.ndarray:
        if len(chips) == 0:
            check_chips(chips, CHIP_SIZE)
            return np.zeros((0, self.embedding_dim), np.float32)
        return hellinger_embedding(self.histograms(chips))

    def fingerprint(self) -> str:
        spec = (
            f"lbp|code={CODE_VERSION}|P={POINTS}|R={self.radius}|method=nri_uniform|"
            f"grid={self.grid}|chip={CHIP_SIZE}|grey=bt601-round|pad=edge|map=hellinger"
        )
        return hashlib.sha256(spec.encode()).hexdigest()


def _card(grid: int, radius: int) -> ModelCard:
    return ModelCard(
        name="lbp",
        description=f"classical LBP^u2_(8,{radius}) histograms on a {grid}x{grid} grid "
        "(Ahonen et al. 2006), no weights",
        template="arcface112",
        embedding_dim=grid * grid * N_BINS,
        weights="none",
    )


def make_lbp(weights: Path | None, device: str) -> LBPModel:
    """Registry builder: the default 7x7, R=1 model; ``device`` is ignored."""
    if weights is not None:
        raise ValueError(f"the lbp model has no weights; do not pass --weights (got {weights})")
    return LBPModel()


register_model(_card(DEFAULT_GRID, DEFAULT_RADIUS), make_lbp)
