"""Each method's formula against an independent computation or a known value."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import random_texture
from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.data import identity_subset, load_dataset
from fiqa_bench.faces.templates import DLIB_5_POINTS
from fiqa_bench.method import create_method
from fiqa_bench.pipeline.embedding import dataset_chips

from fiqa_bench.methods.brisque import brisque_files  # noqa: E402
from fiqa_bench.methods.pose import frontal_residual  # noqa: E402
from fiqa_bench.methods.serfiq import stochastic_robustness  # noqa: E402
from fiqa_bench.methods.sharpness import laplacian_variance  # noqa: E402


def _chip(seed: int) -> np.ndarray:
    """A 150x150 RGB chip of random texture."""
    return np.ascontiguousarray(random_texture(seed, 152)[:150, :150])


def test_brisque_agrees_with_opencv_contrib_on_lfw_chips(lfw_root: Path, tmp_path: Path):
    """The method's path (RGB chip -> BGR -> OpenCV's BRISQUE with the LIVE files) against OpenCV contrib
    called as its documentation shows, on chips written to PNG and read back with cv2.imread."""
    try:
        model_file, range_file = brisque_files()
    except FileNotFoundError as err:
        pytest.skip(str(err))
    dataset = identity_subset(load_dataset("lfw", lfw_root, "devtest"), every=25, max_per_identity=1)
    chips, failed, _ = dataset_chips(dataset, "dlib150", RunContext(tmp_path / "cache", workers=1, progress=False))
    chips = chips[~failed]
    assert len(chips) >= 50
    ours = create_method("brisque").native_score(chips)
    reference = []
    for i, chip in enumerate(chips):
        path = tmp_path / f"chip{i}.png"
        cv2.imwrite(str(path), cv2.cvtColor(chip, cv2.COLOR_RGB2BGR))
        reference.append(cv2.quality.QualityBRISQUE_compute(cv2.imread(str(path)), str(model_file),
                                                            str(range_file))[0])
    reference = np.array(reference)
    relative = np.abs(ours - reference) / np.abs(reference)
    assert relative.max() <= 0.02, f"largest relative difference {relative.max():.4f} at chip {relative.argmax()}"


def test_brisque_names_missing_model_files(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        create_method("brisque", settings={"model_dir": str(tmp_path)})


def test_serfiq_robustness_matches_the_official_formula():
    """2 / (1 + exp(mean of the upper-triangle Euclidean distances)), as the official code computes it."""
    from sklearn.metrics.pairwise import euclidean_distances

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(20, 3, 8))
    emb /= np.linalg.norm(emb, axis=2, keepdims=True)
    ours = stochastic_robustness(torch.from_numpy(emb)).numpy()
    for n in range(3):
        x = emb[:, n]
        mean = euclidean_distances(x, x)[np.triu_indices(len(x), k=1)].mean()
        assert ours[n] == pytest.approx(2 / (1 + np.exp(mean)), rel=1e-12)


def test_serfiq_passes_are_the_embedding_layer_on_masked_features():
    """Pass t is W (m_t * b) / (1 - p): what the network gives with that dropout before its projection."""
    method = create_method("serfiq", settings={"passes": 4, "seed": 2})
    chips = np.stack([_chip(s) for s in range(3)])
    model = method.model
    features = model.backbone_features(chips)
    with torch.inference_mode():
        b = torch.from_numpy(features)
        passes = torch.stack([torch.nn.functional.normalize(model.network.embedding(m * b), dim=1)
                              for m in method.masks])
    expected = stochastic_robustness(passes).numpy()
    np.testing.assert_allclose(method.native_score(features), expected, rtol=1e-6)
    keep = (method.masks > 0).float().mean().item()
    assert 0.3 < keep < 0.7
    tiny = create_method("serfiq", settings={"passes": 4, "dropout": "1e-9"}).native_score(features)
    np.testing.assert_allclose(tiny, 1.0, atol=1e-6)  # no dropout: identical passes, distance 0, 2 sigmoid(0)


def test_feature_norm_is_the_norm_of_the_raw_network_output():
    method = create_method("feature-norm")
    model = method.model
    chips = np.stack([_chip(s) for s in range(4)])
    raw = model._run(chips, model.network, model.card.embedding_dim).astype(np.float64)
    np.testing.assert_allclose(method.native_score(model.backbone_features(chips)), np.linalg.norm(raw, axis=1),
                               rtol=1e-5)


def test_pose_residual_is_zero_for_the_template_and_ignores_similarity_transforms():
    angle = 0.4
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = DLIB_5_POINTS @ rotation.T * 173.0 + [40.0, -7.0]
    squeezed = DLIB_5_POINTS * [0.6, 1.0]
    nose_aside = DLIB_5_POINTS.copy()
    nose_aside[4, 0] += 0.15
    r = frontal_residual(np.stack([DLIB_5_POINTS, moved, squeezed, nose_aside]))
    assert r[0] == pytest.approx(0, abs=1e-12) and r[1] == pytest.approx(0, abs=1e-9)
    assert r[2] > 0.05 and r[3] > 0.05
    assert np.isnan(frontal_residual(np.full((1, 5, 2), np.nan)))[0]
    with pytest.raises(ValueError, match="shape"):
        frontal_residual(np.zeros((2, 4, 2)))


def test_sharpness_falls_with_blur_and_is_zero_on_a_flat_chip():
    chip = _chip(3)
    blurred = cv2.GaussianBlur(chip, (0, 0), 2.0)
    flat = np.full_like(chip, 117)
    values = laplacian_variance(np.stack([chip, blurred, flat]))
    # the flat chip's grey values come from a BLAS product, whose kernel may round one row's last bit apart
    # from another's on some CPUs: zero up to that, against ~1e2 for the blurred chip
    assert values[0] > values[1] > 1.0 > 1e-20 > values[2] >= 0.0
