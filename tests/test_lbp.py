"""Tests of the weight-free LBP recogniser."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter

from fiqa_bench.recognition import lbp
from fiqa_bench.recognition.registry import MODELS

DIM = 7 * 7 * 59


def _texture(seed: int, sigma: float = 2.0) -> np.ndarray:
    """A smooth random RGB texture, 112x112 uint8, values in [40, 210]."""
    noise = np.random.default_rng(seed).normal(size=(112, 112, 3))
    smooth = gaussian_filter(noise, (sigma, sigma, 0))
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (40 + 170 * smooth).astype(np.uint8)


@pytest.fixture(scope="module")
def model() -> lbp.LBPModel:
    return MODELS.get("lbp").build(None, "cpu")


def test_registry_entry_and_card(model: lbp.LBPModel) -> None:
    assert isinstance(model, lbp.LBPModel)
    assert model.card.template == "arcface112" and model.card.weights == "none"
    assert model.card.embedding_dim == DIM == model.embedding_dim
    assert model.chip_size == 112
    assert isinstance(MODELS.get("lbp").build(None, "cuda:3"), lbp.LBPModel)  # device is ignored
    with pytest.raises(ValueError, match="no weights"):
        MODELS.get("lbp").build(Path("w.pth"), "cpu")


def test_shapes_and_unit_norm(model: lbp.LBPModel) -> None:
    chips = np.stack([_texture(s) for s in range(3)])
    emb = model.embed(chips)
    assert emb.shape == (3, DIM) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb.astype(np.float64), axis=1), 1.0, atol=1e-6)
    assert model.embed(chips[:0]).shape == (0, DIM)


def test_identical_chips_have_cosine_one(model: lbp.LBPModel) -> None:
    chip = _texture(5)
    emb = model.embed(np.stack([chip, chip.copy()]))
    np.testing.assert_array_equal(emb[0], emb[1])
    assert float(emb[0].astype(np.float64) @ emb[1]) == pytest.approx(1.0, abs=1e-6)


def test_shifted_brighter_copy_beats_a_different_texture(model: lbp.LBPModel) -> None:
    chip = _texture(0)
    moved = np.clip(np.roll(chip, 2, axis=1).astype(np.int16) + 15, 0, 255).astype(np.uint8)
    other = _texture(1)  # same statistics, different texture
    emb = model.embed(np.stack([chip, moved, other])).astype(np.float64)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.05


def test_brightness_offset_barely_changes_the_embedding(model: lbp.LBPModel) -> None:
    chip = _texture(2)
    emb = model.embed(np.stack([chip, chip + np.uint8(30)])).astype(np.float64)  # no overflow: max 210
    assert emb[0] @ emb[1] > 0.999


def test_uniform_grey_chip_is_finite(model: lbp.LBPModel) -> None:
    chips = np.full((2, 112, 112, 3), 128, np.uint8)
    chips[1] = 0
    emb = model.embed(chips)
    assert np.isfinite(emb).all()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    hist = model.histograms(chips)
    # Every pixel sees equal neighbours -> the all-ones uniform pattern, in every cell
    # (edge padding: no artificial black frame at the border).
    assert np.all(hist.max(axis=2) == 1.0)


@pytest.mark.parametrize("grid", [7, 8, 5])
def test_every_cell_histogram_sums_to_one(grid: int) -> None:
    chips = np.stack([_texture(7), _texture(8, sigma=1.0)])
    hist = lbp.LBPModel(grid=grid).histograms(chips)
    assert hist.shape == (2, grid * grid, 59)
    np.testing.assert_allclose(hist.sum(axis=2), 1.0, atol=1e-12)
    assert hist.min() >= 0.0


def test_batch_equals_one_by_one(model: lbp.LBPModel) -> None:
    chips = np.stack([_texture(s) for s in (3, 4, 5)])
    whole = model.embed(chips)
    singles = np.concatenate([model.embed(chips[i : i + 1]) for i in range(3)])
    np.testing.assert_array_equal(whole, singles)


def test_deterministic_and_fingerprinted(model: lbp.LBPModel) -> None:
    chips = np.stack([_texture(9)])
    np.testing.assert_array_equal(model.embed(chips), lbp.LBPModel().embed(chips))
    assert model.fingerprint() == lbp.LBPModel().fingerprint()
    assert model.fingerprint() != lbp.LBPModel(grid=8).fingerprint()
    assert model.fingerprint() != lbp.LBPModel(radius=2).fingerprint()


def test_input_validation(model: lbp.LBPModel) -> None:
    with pytest.raises(TypeError):
        model.embed(np.zeros((1, 112, 112, 3), np.float32))
    with pytest.raises(ValueError, match="112"):
        model.embed(np.zeros((1, 100, 100, 3), np.uint8))
    with pytest.raises(ValueError, match="grid"):
        lbp.LBPModel(grid=0)
    with pytest.raises(ValueError, match="radius"):
        lbp.LBPModel(radius=0)


def test_chi_square_similarity_basics() -> None:
    a = np.array([1.0, 2.0, 0.0, 1.0])
    assert lbp.chi_square_similarity(a, 3 * a) == pytest.approx(1.0)
    assert lbp.chi_square_similarity([1.0, 0.0], [0.0, 1.0]) == pytest.approx(0.0)
    batch = lbp.chi_square_similarity(np.stack([a, a]), a)
    assert isinstance(batch, np.ndarray) and batch.shape == (2,)
    with pytest.raises(ValueError, match="non-negative"):
        lbp.chi_square_similarity([1.0, -1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="zero total mass"):
        lbp.chi_square_similarity([0.0, 0.0], [1.0, 1.0])


def test_cosine_is_bounded_by_chi_square_similarity_on_chips(model: lbp.LBPModel) -> None:
    chips = np.stack([_texture(0), _texture(1), _texture(2, sigma=1.0)])
    hist = model.histograms(chips).reshape(3, -1)
    emb = model.embed(chips).astype(np.float64)
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        s = lbp.chi_square_similarity(hist[i], hist[j])
        cos = emb[i] @ emb[j]
        assert s - 1e-6 <= cos <= (1 + s) / 2 + 1e-6


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.0, 10.0), min_size=2, max_size=12).flatmap(
        lambda xs: st.tuples(st.just(xs), st.lists(st.floats(0.0, 10.0), min_size=len(xs), max_size=len(xs)))
    )
)
def test_bhattacharyya_chi_square_bounds(pair: tuple[list[float], list[float]]) -> None:
    a, b = (np.asarray(x) for x in pair)
    if a.sum() <= 1e-6 or b.sum() <= 1e-6:
        return
    p, q = a / a.sum(), b / b.sum()
    bc = float(np.sum(np.sqrt(p * q)))
    s = lbp.chi_square_similarity(a, b)
    assert 0.0 - 1e-12 <= s <= 1.0 + 1e-12
    assert s - 1e-9 <= bc <= (1 + s) / 2 + 1e-9
