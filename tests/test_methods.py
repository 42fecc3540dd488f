"""Every registered method against the one score contract (the README's example method: tests/test_recipes.py).

The conformance test runs on a handful of real LFW faces, each also as a
heavily degraded copy made here (nothing is committed): Gaussian blur
(sigma 4 px on the 250x250 image), additive Gaussian noise (sd 80 grey
levels) and a horizontal squeeze to 60% of the width (what a turned head does
to a face's proportions, to first order).  A quality that is oriented right
scores a degraded copy lower than its original; each method must do so for
at least three quarters of the faces under at least one degradation, since
no single degradation is visible to every kind of method: blur lowers
sharpness and BRISQUE, noise does not (it adds high frequencies, and pushes
the LIVE-trained BRISQUE outside its training range); the landmark-based
pose score sees only the squeeze.  A method that fails all three is wrong,
or its sign is.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.data import load_dataset
from fiqa_bench.method import METHODS, create_method
from fiqa_bench.pipeline.scoring import method_inputs, score_dataset

METHOD_NAMES = METHODS.names()
PEOPLE = ["Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder", "Ariel_Sharon", "Hugo_Chavez"]
DEGRADATIONS = ("blurred", "noised", "squeezed")
MIN_SHARE_LOWER = 0.75


def degrade(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A heavily degraded copy of an RGB uint8 image (see the module docstring)."""
    if kind == "blurred":
        return cv2.GaussianBlur(image, (0, 0), 4.0)
    if kind == "noised":
        return np.clip(image + rng.normal(0.0, 80.0, image.shape), 0, 255).astype(np.uint8)
    if kind == "squeezed":
        h, w = image.shape[:2]
        narrow = cv2.resize(image, (int(w * 0.6), h), interpolation=cv2.INTER_AREA)
        left = (w - narrow.shape[1]) // 2
        return cv2.copyMakeBorder(narrow, 0, 0, left, w - narrow.shape[1] - left, cv2.BORDER_REPLICATE)
    raise ValueError(kind)


@pytest.fixture(scope="module")
def faces(lfw_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 people x 2 LFW images, each original and degraded three ways, and one truncated JPEG."""
    root = tmp_path_factory.mktemp("conformance") / "faces"
    rng = np.random.default_rng(0)
    for person in PEOPLE:
        (root / person).mkdir(parents=True)
        for k in (1, 2):
            image = np.asarray(Image.open(lfw_root / "lfw" / "images_deepfunneled" / person /
                                          f"{person}_{k:04d}.jpg").convert("RGB"))
            Image.fromarray(image).save(root / person / f"original_{k}.png")
            for kind in DEGRADATIONS:
                Image.fromarray(degrade(image, kind, rng)).save(root / person / f"{kind}_{k}.png")
    data = (lfw_root / "lfw" / "images_deepfunneled" / PEOPLE[0] / f"{PEOPLE[0]}_0003.jpg").read_bytes()
    (root / PEOPLE[0] / "truncated.jpg").write_bytes(data[: len(data) // 3])
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("conformance-cache")


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_method_conforms(name: str, faces: Path, cache: Path):
    method = create_method(name)
    assert method.card.name == name and isinstance(method.card.higher_is_better, bool)
    dataset = load_dataset(f"folder:{faces}", faces)
    table = score_dataset(method, dataset, RunContext(cache, workers=1, progress=False))
    n = len(dataset)
    assert table.quality.shape == (n,) and table.quality.dtype == np.float64
    assert table.native.shape == (n,) and table.native.dtype == np.float64
    broken = np.array([p.endswith("truncated.jpg") for p in table.paths])
    assert np.isnan(table.quality[broken]).all() and "upstream failure" in table.reasons[broken][0]
    assert np.isfinite(table.quality[~broken]).all(), table.reasons[~np.isfinite(table.quality)]
    np.testing.assert_array_equal(table.quality, method.card.quality_from_native(table.native))

    inputs, failed, _ = method_inputs(method.card.needs, dataset, RunContext(cache, workers=1, progress=False))
    again = create_method(name).score(inputs[~failed])  # a new instance, same default seed
    np.testing.assert_array_equal(again, table.quality[~failed])

    if name == "random":
        return
    quality = {Path(p).relative_to(faces).as_posix(): q for p, q in zip(table.paths, table.quality)}
    share_lower = {kind: np.mean([quality[f"{p}/{kind}_{k}.png"] < quality[f"{p}/original_{k}.png"]
                                  for p in PEOPLE for k in (1, 2)]) for kind in DEGRADATIONS}
    assert max(share_lower.values()) >= MIN_SHARE_LOWER, f"{name}: share of degraded copies scored lower {share_lower}"


def test_random_seeds_differ_and_ignore_order(faces: Path, cache: Path):
    dataset = load_dataset(f"folder:{faces}", faces)
    chips, failed, _ = method_inputs("chips:dlib150", dataset, RunContext(cache, workers=1, progress=False))
    chips = chips[~failed]
    a = create_method("random", settings={"seed": "1"}).score(chips)
    assert not np.array_equal(a, create_method("random").score(chips))
    np.testing.assert_array_equal(create_method("random", settings={"seed": 1}).score(chips[::-1]), a[::-1])
    assert ((a >= 0) & (a < 1)).all()


def test_settings_are_converted_and_checked():
    assert create_method("serfiq", settings={"passes": "10", "dropout": "0.25"}).masks.shape[0] == 10
    with pytest.raises(ValueError, match="has no setting colour"):
        create_method("sharpness", settings={"colour": "red"})
    with pytest.raises(ValueError, match="must be an int"):
        create_method("random", settings={"seed": "three"})
    with pytest.raises(ValueError, match="not trained and takes no weights"):
        create_method("sharpness", weights="model.pt")
