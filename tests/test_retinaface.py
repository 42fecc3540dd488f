"""The RetinaFace-MobileNet0.25 detector: priors, decoding, NMS, weights, and agreement with the reference code.

Fast tests use hand-computed priors, toy boxes and randomly initialised
networks written to a temporary checkpoint.  The detector with the official
weights is checked against the outputs of biubug6's own code
(``tests/data/retinaface_reference.npz``, made by
``benchmarks/retinaface_reference.py`` from a checkout of the reference
repository; the fixture holds the LFW paths and the recipe of the
composites, not their pixels): same detections, boxes and landmarks within
1 px, scores within 1e-4 (the port agrees to float32 rounding).  Those
tests skip when LFW or the weights are absent.

Nothing is compared bit for bit with what another machine computed: the
inputs are checked by their per-channel means (within 0.25 grey levels),
and a detection whose score lies within the score tolerance of the
reference code's 0.02 cut may be kept on one side and not on the other
(torch's convolutions give the last bits by CPU; one of the reference's
143 detections on Riquelme's image scores 0.02 + 4.8e-5).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from fiqa_bench.faces.retinaface import (
    BGR_MEAN,
    SHA256,
    DetectionSettings,
    Detections,
    RetinaFace,
    RetinaFaceNet,
    central_face,
    decode_boxes,
    decode_landmarks,
    nms,
    prior_boxes,
    weights_file,
)

REFERENCE = Path(__file__).parent / "data" / "retinaface_reference.npz"
PIXEL_TOLERANCE = 1.0
SCORE_TOLERANCE = 1e-4
#: The reference code's confidence cut (``detect.py``'s ``confidence_threshold``, which the port shares).
REFERENCE_CUT = DetectionSettings().confidence_threshold
#: A mean that moves by more than this is another image: a last-bit rounding of a few pixels moves it by far less.
MEAN_TOLERANCE = 0.25


@pytest.fixture()
def random_checkpoint(tmp_path: Path) -> Path:
    """A checkpoint of a randomly initialised network (seed 0), in torch's zip format."""
    torch.manual_seed(0)
    path = tmp_path / "random.pth"
    torch.save(RetinaFaceNet().state_dict(), path)
    return path


# ------------------------------------------------------------------------------------
# Priors, decoding, NMS.

def test_priors_of_a_250x250_image():
    priors = prior_boxes(250, 250)
    # strides 8, 16, 32 -> ceil(250 / s) = 32, 16, 8 cells a side, 2 sizes per cell
    assert priors.shape == ((32 * 32 + 16 * 16 + 8 * 8) * 2, 4) == (2688, 4)
    assert priors.dtype == torch.float32
    expected = {
        0: (4, 4, 10, 10), 1: (4, 4, 20, 20),  # first cell of stride 8: centre 0.5 * 8
        2: (12, 4, 10, 10),  # next cell to the right
        64: (4, 12, 10, 10),  # first cell of the second row
        2048: (8, 8, 32, 32), 2049: (8, 8, 64, 64),  # first cell of stride 16
        2560: (16, 16, 128, 128),  # first cell of stride 32
        2687: (240, 240, 256, 256),  # last cell of stride 32: (7 + 0.5) * 32
    }
    for index, (cx, cy, w, h) in expected.items():
        np.testing.assert_allclose(priors[index].numpy(), np.array([cx, cy, w, h]) / 250, rtol=1e-6, err_msg=index)


@pytest.mark.parametrize("height, width", [(250, 250), (131, 157), (64, 40)])
def test_network_outputs_one_row_per_prior(height: int, width: int):
    torch.manual_seed(0)
    with torch.inference_mode():
        loc, scores, landmarks = RetinaFaceNet().eval()(torch.zeros(2, 3, height, width))
    count = len(prior_boxes(height, width))
    assert loc.shape == (2, count, 4) and scores.shape == (2, count) and landmarks.shape == (2, count, 10)
    assert torch.all((scores >= 0) & (scores <= 1))


def test_zero_offsets_decode_to_the_priors():
    priors = prior_boxes(131, 157)
    boxes = decode_boxes(torch.zeros(len(priors), 4), priors)
    corners = torch.cat([priors[:, :2] - priors[:, 2:] / 2, priors[:, :2] + priors[:, 2:] / 2], dim=1)
    torch.testing.assert_close(boxes, corners)
    points = decode_landmarks(torch.zeros(len(priors), 10), priors)
    torch.testing.assert_close(points, priors[:, :2].repeat(1, 5))


def test_offsets_decode_with_the_variances():
    prior = torch.tensor([[0.5, 0.5, 0.2, 0.1]])
    box = decode_boxes(torch.tensor([[1.0, -2.0, 0.0, 5.0]]), prior)
    # centre (0.5 + 0.1 * 1 * 0.2, 0.5 - 0.1 * 2 * 0.1) = (0.52, 0.48); size (0.2, 0.1 e^(0.2 * 5))
    h = 0.1 * np.exp(1.0)
    np.testing.assert_allclose(box.numpy(), [[0.42, 0.48 - h / 2, 0.62, 0.48 + h / 2]], rtol=1e-6)
    points = decode_landmarks(torch.arange(10.0)[None], prior).reshape(5, 2)
    np.testing.assert_allclose(points.numpy(), [[0.5 + 0.1 * 2 * k * 0.2, 0.5 + 0.1 * (2 * k + 1) * 0.1]
                                                for k in range(5)], rtol=1e-6)


def test_nms_uses_pixel_inclusive_areas():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0],
                          [4.5, 0.0, 14.5, 10.0],  # plain IoU 0.379, pixel-inclusive 71.5 / 170.5 = 0.419
                          [30.0, 30.0, 40.0, 40.0],  # far away
                          [0.0, 4.5, 10.0, 14.5]])  # 0.419 with the first, 0.21 with the second
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    assert nms(boxes, scores, 0.4).tolist() == [3, 1, 2]  # plain IoU would keep box 0 (0.379 with box 3)
    assert nms(boxes, scores, 0.45).tolist() == [3, 0, 1, 2]
    assert nms(boxes[:0], scores[:0], 0.4).tolist() == []


# ------------------------------------------------------------------------------------
# Weights.

def test_weights_location_follows_the_models_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("FIQA_BENCH_MODELS", str(tmp_path))
    expected = tmp_path / "retinaface-mobilenet0.25" / "mobilenet0.25_Final.pth"
    with pytest.raises(FileNotFoundError, match=f"RetinaFace weights {expected} do not exist"):
        weights_file()
    expected.parent.mkdir()
    expected.write_bytes(b"x")
    assert weights_file() == expected
    with pytest.raises(FileNotFoundError, match="x.pth do not exist"):
        weights_file(tmp_path / "x.pth")
    (tmp_path / "x.pth").write_bytes(b"x")
    assert weights_file(tmp_path / "x.pth") == tmp_path / "x.pth"  # an explicit path wins


def test_a_file_with_the_wrong_hash_is_refused(random_checkpoint: Path):
    with pytest.raises(ValueError, match=rf"{random_checkpoint}: sha256 [0-9a-f]{{64}} is not that of the official "
                                         rf"mobilenet0.25_Final.pth \({SHA256}\)"):
        RetinaFace(weights=random_checkpoint)


def test_other_weights_load_without_the_hash_check_and_module_prefixes_are_stripped(tmp_path: Path):
    torch.manual_seed(1)
    state = RetinaFaceNet().state_dict()
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    detector = RetinaFace(weights=path, sha256=None)
    for key, value in state.items():
        torch.testing.assert_close(detector.network.state_dict()[key], value, msg=key)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.__setitem__("ClassHead.0.conv1x1.weight", torch.zeros(6, 64, 1, 1)),
     r"tensor 'ClassHead.0.conv1x1.weight': expected shape \(4, 64, 1, 1\), found \(6, 64, 1, 1\)"),
    (lambda s: s.pop("LandmarkHead.2.conv1x1.bias"), r"missing tensor 'LandmarkHead.2.conv1x1.bias' \(expected "
                                                     r"shape \(20,\)\)"),
    (lambda s: s.__setitem__("body.fc.weight", torch.zeros(1000, 256)),
     r"unexpected tensor 'body.fc.weight' \(shape \(1000, 256\)\)"),
])
def test_a_checkpoint_that_does_not_fit_names_the_tensor(tmp_path: Path, edit, message: str):
    state = RetinaFaceNet().state_dict()
    edit(state)
    path = tmp_path / "edited.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match="the checkpoint does not fit RetinaFace-MobileNet0.25: " + message):
        RetinaFace(weights=path, sha256=None)


# ------------------------------------------------------------------------------------
# Input, batching, one face per image (random weights).

class Recorder(torch.nn.Module):
    """Stands in for the network: remembers its input, finds one face on the first prior."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self.seen = x.clone()
        count = len(prior_boxes(x.shape[2], x.shape[3]))
        scores = torch.zeros(x.shape[0], count)
        scores[:, 0] = 0.9
        return torch.zeros(x.shape[0], count, 4), scores, torch.zeros(x.shape[0], count, 10)


def test_input_is_bgr_minus_the_mean_at_the_original_size(random_checkpoint: Path):
    detector = RetinaFace(weights=random_checkpoint, sha256=None)
    detector.network = Recorder()
    image = np.zeros((20, 30, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 10, 20, 250  # R, G, B
    found = detector.detect(image)
    seen = detector.network.seen
    assert seen.shape == (1, 3, 20, 30) and seen.dtype == torch.float32
    np.testing.assert_array_equal(seen[0, :, 0, 0].numpy(), np.array([250, 20, 10]) - np.array(BGR_MEAN))
    # the first prior (centre (4, 4), size 10) with zero offsets, in pixels
    assert found.boxes.dtype == np.float64 and found.boxes.shape == (1, 4) and found.landmarks.shape == (1, 5, 2)
    np.testing.assert_allclose(found.boxes, [[-1, -1, 9, 9]], atol=1e-5)
    np.testing.assert_allclose(found.landmarks, np.full((1, 5, 2), 4.0), atol=1e-5)
    np.testing.assert_allclose(found.scores, [0.9], atol=1e-7)


def test_bad_batches_are_refused(random_checkpoint: Path):
    detector = RetinaFace(weights=random_checkpoint, sha256=None)
    with pytest.raises(ValueError, match=r"one size: image 0 is \(20, 20, 3\), image 1 \(20, 21, 3\)"):
        detector.detect_batch([np.zeros((20, 20, 3), np.uint8), np.zeros((20, 21, 3), np.uint8)])
    with pytest.raises(ValueError, match=r"image 0: expected RGB uint8 \(H, W, 3\), got float32 \(20, 20, 3\)"):
        detector.detect(np.zeros((20, 20, 3), np.float32))
    assert detector.detect_batch([]) == []


def toy_detections(boxes: list[list[float]], scores: list[float]) -> Detections:
    boxes_a = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    marks = np.stack([np.full((5, 2), k, dtype=np.float64) for k in range(len(boxes))]) if boxes else np.zeros((0, 5, 2))
    return Detections(boxes=boxes_a, scores=np.array(scores, dtype=np.float64), landmarks=marks)


def test_central_face_follows_the_hog_rule():
    found = toy_detections([[0, 0, 40, 40], [40, 40, 60, 60], [45, 45, 55, 55], [48, 48, 52, 52]],
                           [0.99, 0.9, 0.8, 0.5])
    face = central_face(found, 100, 100)
    # boxes 1 and 2 are both centred; the larger wins; box 3 is centred too but scores under 0.6
    assert face is not None and face.faces == 3 and face.score == 0.9
    np.testing.assert_array_equal(face.box, [40, 40, 60, 60])
    np.testing.assert_array_equal(face.landmarks, np.full((5, 2), 1.0))
    assert central_face(found, 100, 100, min_score=0.95).faces == 1
    assert central_face(found, 100, 100, min_score=0.999) is None
    assert central_face(toy_detections([], []), 100, 100) is None


# ------------------------------------------------------------------------------------
# The official weights against the reference code.

@pytest.fixture(scope="session")
def detector(retinaface_weights: Path) -> RetinaFace:
    return RetinaFace()


@pytest.fixture(scope="session")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="session")
def maker():
    """``benchmarks/retinaface_reference.py``, which made the fixture: its inputs and comparison."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "retinaface_reference.py"
    spec = importlib.util.spec_from_file_location("retinaface_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def reference_inputs(lfw_root: Path, reference: dict[str, np.ndarray], maker) -> list[tuple[str, np.ndarray]]:
    meta = json.loads(str(reference["meta"]))
    named = maker.inputs(lfw_root / meta["lfw_root"])
    assert [n for n, _ in named] == meta["inputs"], "the script's inputs are no longer those of the fixture"
    assert [list(im.shape) for _, im in named] == meta["shapes"]
    changed = [n for (n, im), mean in zip(named, meta["pixels_mean"])
               if np.abs(np.subtract(maker.pixels_mean(im), mean)).max() > MEAN_TOLERANCE]
    assert not changed, f"these inputs no longer decode/compose to the reference's pixels: {changed}"
    return named


@pytest.mark.reference
def test_the_fixture_was_made_with_these_settings(reference: dict[str, np.ndarray], detector: RetinaFace):
    meta = json.loads(str(reference["meta"]))
    assert meta["weights_sha256"] == SHA256 == detector.weights_sha256
    settings = detector.settings
    assert meta["settings"]["confidence_threshold"] == settings.confidence_threshold
    assert meta["settings"]["nms_threshold"] == settings.nms_threshold
    assert meta["settings"]["top_k"] == settings.top_k and meta["settings"]["keep_top_k"] == settings.keep_top_k
    assert meta["cfg"]["min_sizes"] == [[10, 20], [32, 64], [128, 256]] and meta["cfg"]["steps"] == [8, 16, 32]
    assert meta["cfg"]["variance"] == [0.1, 0.2] and meta["cfg"]["clip"] is False


@pytest.mark.reference
@pytest.mark.parametrize("batched", [False, True])
def test_detections_match_the_reference_code(detector: RetinaFace, reference: dict[str, np.ndarray],
                                             reference_inputs: list[tuple[str, np.ndarray]], maker, batched: bool):
    images = [im for _, im in reference_inputs]
    if batched:
        found = detector.detect_batch([im for im in images if im.shape == (250, 250, 3)], batch_size=3)
        found += [detector.detect(im) for im in images if im.shape != (250, 250, 3)]
        order = [k for k, im in enumerate(images) if im.shape == (250, 250, 3)]
        order += [k for k, im in enumerate(images) if im.shape != (250, 250, 3)]
        found = [found[order.index(k)] for k in range(len(images))]
    else:
        found = [detector.detect(im) for im in images]
    for k, (name, _) in enumerate(reference_inputs):
        ref = Detections(reference[f"boxes_{k}"].astype(np.float64), reference[f"scores_{k}"].astype(np.float64),
                         reference[f"landmarks_{k}"].astype(np.float64))
        assert_same_detections(found[k], ref, name, maker.match)
        assert np.all(np.diff(found[k].scores) <= 0), f"{name}: not sorted by score"


def assert_same_detections(ours: Detections, ref: Detections, name: str,
                           match: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
    """Every detection of each side that scores clear of the 0.02 cut has its partner on the other side (the
    nearest box by ``match``, the reference script's pairing; each partner once) within the tolerances; one
    within ``SCORE_TOLERANCE`` of the cut may be missing from either side."""
    for a, b, side in ((ref, ours, "reference"), (ours, ref, "port")):
        clear = a.scores >= REFERENCE_CUT + SCORE_TOLERANCE
        assert len(b.boxes) or not clear.any(), f"{name}: no detections to match the {side}'s {clear.sum()} against"
        partner = match(b.boxes, a.boxes[clear])
        assert len(set(partner.tolist())) == len(partner), f"{name}: two of the {side}'s detections share a partner"
        if not len(partner):
            continue
        box = np.abs(a.boxes[clear] - b.boxes[partner]).max()
        landmark = np.abs(a.landmarks[clear] - b.landmarks[partner]).max()
        score = np.abs(a.scores[clear] - b.scores[partner]).max()
        assert box <= PIXEL_TOLERANCE and landmark <= PIXEL_TOLERANCE, (name, side, box, landmark)
        assert score <= SCORE_TOLERANCE, (name, side, score)


@pytest.mark.reference
def test_faces_and_landmark_order_on_real_images(detector: RetinaFace, reference_inputs):
    images = dict(reference_inputs)
    putin = images["Vladimir_Putin/Vladimir_Putin_0007.jpg"]
    face = central_face(detector.detect(putin), 250, 250)
    assert face is not None and face.faces == 5
    assert 70 < (face.box[0] + face.box[2]) / 2 < 180 and 60 < (face.box[1] + face.box[3]) / 2 < 190
    for name, image in images.items():
        found = detector.detect(image)
        for marks in found.landmarks[found.scores >= 0.6]:
            # left eye left of the right eye, left mouth corner left of the right one, nose below the eyes
            assert marks[0, 0] < marks[1, 0] and marks[3, 0] < marks[4, 0], name
            assert marks[2, 1] > min(marks[0, 1], marks[1, 1]), name


def test_detection_is_deterministic(detector: RetinaFace, reference_inputs):
    image = reference_inputs[0][1]
    a, b = detector.detect(image), detector.detect(image)
    for x, y in ((a.boxes, b.boxes), (a.scores, b.scores), (a.landmarks, b.landmarks)):
        np.testing.assert_array_equal(x, y)
