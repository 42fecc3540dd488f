"""The degradations' physical parameters, measured back from their outputs, and their contracts.

Every check measures the parameter on the degraded image (a blurred line's spread, a motion-blurred dot's
direction and length, the noise's sd, the JPEG's quantisation table, the rank of the resolution change, grey
level ratios, the occluder's size and place, a dot's turn) rather than re-running the operation's own code.
Synthetic images throughout; tolerances are stated with their reason next to each.
"""

from __future__ import annotations

import io
import json
import math

import cv2
import numpy as np
import pytest
from PIL import Image

from fiqa_bench.faces.degradations import FACTORS, MOUTH_DROP, encode_jpeg, factor
from fiqa_bench.faces.templates import ARCFACE_112_POINTS

#: Five dlib points of an upright LFW-like face in a 250x250 image: eyes 47 px apart, nose below.
UPRIGHT = np.array([[160.0, 112.0], [137.0, 113.0], [90.0, 112.0], [113.0, 113.0], [125.0, 150.0]])


def _tilted(degrees: float) -> np.ndarray:
    """:data:`UPRIGHT` turned by ``degrees`` (counter-clockwise as shown) about the image centre."""
    matrix = cv2.getRotationMatrix2D((124.5, 124.5), degrees, 1.0)
    return np.hstack([UPRIGHT, np.ones((5, 1))]) @ matrix.T


def _texture(seed: int = 3, side: int = 250) -> np.ndarray:
    """A smooth random texture on a horizontal ramp, mid-range, every channel different."""
    rng = np.random.default_rng(seed)
    smooth = cv2.GaussianBlur(rng.normal(128, 60, (side, side, 3)), (0, 0), 2)
    return np.clip(smooth + np.linspace(-40, 40, side)[None, :, None], 0, 255).astype(np.uint8)


def _eye_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Eye centres' midpoint, unit vector along the eye line, unit vector down the face, IOD."""
    right, left = landmarks[0:2].mean(axis=0), landmarks[2:4].mean(axis=0)
    iod = float(np.linalg.norm(right - left))
    along = (right - left) / iod
    return (right + left) / 2, along, np.array([-along[1], along[0]]), iod


def _zero_pixels(image: np.ndarray) -> np.ndarray:
    """(x, y) of the pixels black in every channel."""
    ys, xs = np.nonzero((image == 0).all(axis=2))
    return np.stack([xs, ys], axis=1).astype(np.float64)


# ---- contracts, every factor ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(FACTORS))
def test_contract_deterministic_pure_uint8(name: str) -> None:
    """Same inputs, same bytes and record; the input untouched; uint8 of the input's shape; a visible change."""
    f = factor(name)
    image = _texture()
    before = image.copy()
    for level in (f.levels[0], f.levels[-1]):
        first, extra = f.apply(image, level, 11, UPRIGHT)
        second, again = f.apply(image, level, 11, UPRIGHT)
        assert first.dtype == np.uint8 and first.shape == image.shape
        assert first.tobytes() == second.tobytes() and extra == again  # same run, same inputs: same bytes
        assert json.loads(json.dumps(extra)) == extra  # the manifest stores it as JSON
        assert not np.array_equal(first, image), f"{name} at {level} left the image as it was"
    assert np.array_equal(image, before), f"{name} changed its input"


@pytest.mark.parametrize("name", list(FACTORS))
def test_effect_grows_with_the_level(name: str) -> None:
    """Mean absolute difference to the clean image rises strictly along the five levels, for one seed.

    It holds for every factor, rotation and the random patch included: for a fixed seed the motion-blur angle,
    the rotation's sign and the patch centre stay put, so a larger level is a longer line, a larger turn or a
    larger square that contains the smaller one.
    """
    f = factor(name)
    image = _texture()
    for seed in (0, 1):
        differences = [np.abs(f.apply(image, level, seed, UPRIGHT)[0].astype(float) - image).mean()
                       for level in f.levels]
        assert np.all(np.diff(differences) > 0), (name, seed, differences)


def test_factor_table() -> None:
    assert list(FACTORS)[:3] == ["gaussian-blur", "motion-blur", "gaussian-noise"] and len(FACTORS) == 12
    for name, f in FACTORS.items():
        assert f.name == name and len(f.levels) == 5 and all(level > 0 for level in f.levels)
        assert f.needs_landmarks == name.startswith("occlusion-") and f.geometric == (name == "rotation")
    with pytest.raises(ValueError, match="known: gaussian-blur, motion-blur"):
        factor("fog")


@pytest.mark.parametrize("level", [0.0, -1.0, float("nan")])
def test_level_must_be_positive(level: float) -> None:
    with pytest.raises(ValueError, match="gaussian-blur: level must be a positive"):
        factor("gaussian-blur").apply(_texture(), level, 0)


def test_off_list_level_and_bad_inputs() -> None:
    out, _ = factor("gaussian-blur").apply(_texture(), 2.5, 0)  # a level between the listed ones is fine
    assert out.shape == (250, 250, 3)
    with pytest.raises(ValueError, match="jpeg: quality must round to 1..100"):
        factor("jpeg").apply(_texture(), 150, 0)
    with pytest.raises(ValueError, match="resolution: the scale factor must be at most 1"):
        factor("resolution").apply(_texture(), 2, 0)
    with pytest.raises(ValueError, match=r"contrast: expected an \(H, W, 3\) uint8"):
        factor("contrast").apply(np.zeros((8, 8), np.uint8), 0.5, 0)


@pytest.mark.parametrize("name", ["occlusion-eyes", "occlusion-mouth", "occlusion-patch"])
def test_occlusions_need_landmarks(name: str) -> None:
    with pytest.raises(ValueError, match=f"{name}: needs the clean image's five landmarks"):
        factor(name).apply(_texture(), factor(name).levels[0], 0, None)
    with pytest.raises(ValueError, match=f"{name}: landmarks must be five"):
        factor(name).apply(_texture(), factor(name).levels[0], 0, np.zeros((4, 2)))


# ---- blur ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sigma", FACTORS["gaussian-blur"].levels)
def test_gaussian_blur_spread_is_sigma(sigma: float) -> None:
    """A blurred bright line's profile has standard deviation sigma within 5%.

    A line, not a single dot: a dot's 255 spread over 2 pi sigma^2 pixels rounds to 0 or 1 grey level at
    sigma 6, while the Gaussian is separable, so a line's cross-section is the 1-D kernel itself, peak 17
    grey levels at sigma 6; rounding then moves the measured sd by about 1%.
    """
    image = np.zeros((201, 201, 3), np.uint8)
    image[:, 100] = 255
    blurred, _ = factor("gaussian-blur").apply(image, sigma, 0)
    profile = blurred[100, :, 0].astype(np.float64)
    x = np.arange(201)
    centre = (profile * x).sum() / profile.sum()
    spread = math.sqrt((profile * (x - centre) ** 2).sum() / profile.sum())
    assert abs(centre - 100) < 0.05
    assert spread == pytest.approx(sigma, rel=0.05)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("length", FACTORS["motion-blur"].levels)
def test_motion_blur_is_a_line_of_the_recorded_angle_and_length(length: float, seed: int) -> None:
    """A blurred dot is a line: intensity-weighted PCA gives its direction within 3 degrees of ``angle_deg``
    and its length within 1 px (a uniform segment of length L has variance L^2/12 along it; the bilinear
    splat adds 1/6 px^2), and it is thin (sd across below 0.6 px)."""
    image = np.zeros((101, 101, 3), np.uint8)
    image[50, 50] = 255
    blurred, extra = factor("motion-blur").apply(image, length, seed)
    assert 0 <= extra["angle_deg"] < 180
    weight = blurred[..., 0].astype(np.float64)
    ys, xs = np.nonzero(weight)
    w = weight[ys, xs]
    points = np.stack([xs, -ys], axis=1).astype(np.float64)  # y up, so angles read counter-clockwise as shown
    centre = (points * w[:, None]).sum(axis=0) / w.sum()
    covariance = ((points - centre).T * w) @ (points - centre) / w.sum()
    values, vectors = np.linalg.eigh(covariance)
    direction = vectors[:, -1]
    angle = math.degrees(math.atan2(direction[1], direction[0])) % 180
    assert abs((angle - extra["angle_deg"] + 90) % 180 - 90) < 3
    assert math.sqrt(12 * (values[-1] - 1 / 6)) == pytest.approx(length, abs=1.0)
    assert math.sqrt(values[0]) < 0.6
    assert np.allclose(centre, [50, -50], atol=0.2)


def test_motion_blur_angle_is_seeded_and_spread() -> None:
    angles = [factor("motion-blur").apply(_texture(side=32), 5, seed)[1]["angle_deg"] for seed in range(200)]
    assert len(set(angles)) == 200 and min(angles) < 10 and max(angles) > 170


# ---- noise, JPEG, resolution ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("sd", FACTORS["gaussian-noise"].levels)
def test_noise_sd(sd: float) -> None:
    """sd of (degraded - clean) on mid-grey within 3% (clipping at 0 and 255 removes 0.7% at sd 48; rounding
    adds 1/12 grey level^2; 187,500 samples leave 0.2% sampling error)."""
    image = np.full((250, 250, 3), 128, np.uint8)
    noisy, _ = factor("gaussian-noise").apply(image, sd, 5)
    difference = noisy.astype(np.float64) - image
    assert difference.std() == pytest.approx(sd, rel=0.03)
    assert abs(difference.mean()) < 0.5
    assert not np.array_equal(noisy, factor("gaussian-noise").apply(image, sd, 6)[0])  # another seed, other noise


#: libjpeg's (IJG) standard luminance quantisation table, natural (row-major) order.
IJG_LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])


@pytest.mark.parametrize("quality", FACTORS["jpeg"].levels)
def test_jpeg_quality_read_back_from_quantisation_table(quality: float) -> None:
    """The luminance table in the file is the IJG table scaled for the quality (libjpeg's jpeg_quality_scaling),
    and the operator's output is that file decoded."""
    q = int(quality)
    scale = 5000 // q if q < 50 else 200 - 2 * q
    expected = np.clip((IJG_LUMINANCE * scale + 50) // 100, 1, 255)
    image = _texture(side=64)
    data = encode_jpeg(image, q)
    decoded = Image.open(io.BytesIO(data))
    assert np.array_equal(np.array(decoded.quantization[0]), expected)
    degraded, extra = factor("jpeg").apply(image, quality, 0)
    assert extra == {"quality": q}
    # decoded by Pillow here, by OpenCV in the operator: IDCT implementations may differ by a grey level or two
    assert np.abs(degraded.astype(int) - np.asarray(decoded.convert("RGB"), dtype=int)).max() <= 3


def _linear_upsampler(n: int, size: int) -> np.ndarray:
    """The (size, n) matrix of OpenCV's bilinear resize from n to size samples (column j: e_j resized)."""
    return cv2.resize(np.eye(n), (n, size), interpolation=cv2.INTER_LINEAR)


@pytest.mark.parametrize("scale", FACTORS["resolution"].levels)
def test_resolution_is_exactly_the_recorded_small_size(scale: float) -> None:
    """A random texture's degraded copy is the bilinear enlargement of a ``small_size`` image: projecting it
    onto the span of such enlargements leaves at most rounding (under 1.5 grey levels), while one pixel
    fewer leaves far more (rms above 2), so the recorded size is the resolution the image really has."""
    image = np.random.default_rng(1).integers(0, 256, (250, 250, 3), dtype=np.uint8)
    degraded, extra = factor("resolution").apply(image, scale, 0)
    width, height = extra["small_size"]
    assert (width, height) == (round(250 * scale), round(250 * scale))
    channel = degraded[..., 1].astype(np.float64)
    for n, fits in ((width, True), (width - 1, False)):
        up = _linear_upsampler(n, 250)
        projector = up @ np.linalg.pinv(up)
        residual = channel - projector @ channel @ projector.T
        if fits:
            assert np.abs(residual).max() < 1.5
        else:
            assert np.sqrt((residual ** 2).mean()) > 2


# ---- exposure, contrast --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["exposure-under", "exposure-over"])
def test_exposure_gain(name: str) -> None:
    """Mean grey level ratio = gain within 1% on an image dark enough never to clip (values 20..72, so 3.5 x 72
    = 252); rounding moves the mean by well under 0.1 grey level."""
    image = np.random.default_rng(2).integers(20, 73, (100, 100, 3), dtype=np.uint8)
    for gain in factor(name).levels:
        out, _ = factor(name).apply(image, gain, 0)
        assert out.mean() / image.mean() == pytest.approx(gain, rel=0.01)
    bright, _ = factor("exposure-over").apply(np.full((4, 4, 3), 200, np.uint8), 1.4, 0)
    assert (bright == 255).all()  # clipped, not wrapped


@pytest.mark.parametrize("level", FACTORS["contrast"].levels)
def test_contrast_factor(level: float) -> None:
    """The mean grey level stays (within 0.5) and the sd of the grey image shrinks by the factor (within 2%, or
    0.3 grey levels where rounding dominates), on a texture far from clipping."""
    image = _texture()
    out, extra = factor("contrast").apply(image, level, 0)
    grey, grey_out = (cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float64) for a in (image, out))
    assert grey_out.mean() == pytest.approx(grey.mean(), abs=0.5)
    assert extra["mean_grey"] == pytest.approx(grey.mean(), abs=0.5)
    assert grey_out.std() == pytest.approx(level * grey.std(), rel=0.02, abs=0.3)


# ---- occlusions ----------------------------------------------------------------------------------------------------

def _spans(offsets: np.ndarray, size: float) -> bool:
    """Whether pixel centres blackened for an interval ``size`` long span it: their extent lies in
    [size - 2, size], since the outermost centres inside fall within one pixel of either end (an axis-aligned
    edge; a slanted one is sampled more finely)."""
    extent = float(offsets.max() - offsets.min())
    return size - 2 <= extent <= size + 1e-6


@pytest.mark.parametrize("tilt", [0.0, 17.0, -30.0])
@pytest.mark.parametrize("level", FACTORS["occlusion-eyes"].levels)
def test_eye_bar(level: float, tilt: float) -> None:
    """The bar covers both eye centres; across the eye line its zero pixels span level x IOD and along it 2.2 IOD
    (see :func:`_spans`), centred on the eyes' midpoint within 0.75 px; its area is length x height to within
    one row of pixels along each side."""
    landmarks = _tilted(tilt)
    image = np.full((250, 250, 3), 200, np.uint8)
    out, extra = factor("occlusion-eyes").apply(image, level, 0, landmarks)
    midpoint, along, down, iod = _eye_frame(landmarks)
    for eye in (landmarks[0:2].mean(axis=0), landmarks[2:4].mean(axis=0)):
        x, y = np.rint(eye).astype(int)
        assert (out[y, x] == 0).all()
    zeros = _zero_pixels(out) - midpoint
    across, lengthwise = zeros @ down, zeros @ along
    assert _spans(across, level * iod) and _spans(lengthwise, 2.2 * iod)
    assert abs(across.mean()) < 0.75 and abs(lengthwise.mean()) < 0.75
    assert len(zeros) == pytest.approx(2.2 * iod * level * iod, abs=2.2 * iod + level * iod + 1)
    assert extra["iod_px"] == pytest.approx(iod, abs=0.01) and len(extra["corners"]) == 4


def test_mouth_drop_is_the_arcface_templates() -> None:
    """1.155 IOD: the ArcFace 112 template's mouth-corner midpoint below its eye midpoint (the brief's 1.16, to
    three figures), measured here on the plain coordinates."""
    left, right = ARCFACE_112_POINTS[0], ARCFACE_112_POINTS[1]
    mouth_y = (ARCFACE_112_POINTS[3, 1] + ARCFACE_112_POINTS[4, 1]) / 2
    assert MOUTH_DROP == pytest.approx((mouth_y - (left[1] + right[1]) / 2) / (right[0] - left[0]), rel=1e-3)
    assert MOUTH_DROP == pytest.approx(1.155, abs=0.001)


@pytest.mark.parametrize("tilt", [0.0, 25.0])
@pytest.mark.parametrize("level", FACTORS["occlusion-mouth"].levels)
def test_mouth_bar(level: float, tilt: float) -> None:
    """The bar's zero pixels are centred MOUTH_DROP x IOD below the eyes' midpoint, perpendicular to the eye line
    (within 0.75 px), span level x IOD across and 1.4 IOD along it (see :func:`_spans`), and leave the eyes
    alone."""
    landmarks = _tilted(tilt)
    image = np.full((250, 250, 3), 200, np.uint8)
    out, extra = factor("occlusion-mouth").apply(image, level, 0, landmarks)
    midpoint, along, down, iod = _eye_frame(landmarks)
    centre = midpoint + MOUTH_DROP * iod * down
    assert np.allclose(extra["centre"], centre, atol=0.01)
    zeros = _zero_pixels(out) - centre
    across, lengthwise = zeros @ down, zeros @ along
    assert abs(across.mean()) < 0.75 and abs(lengthwise.mean()) < 0.75
    assert _spans(across, level * iod) and _spans(lengthwise, 1.4 * iod)
    assert (out[np.rint(landmarks[:4, 1]).astype(int), np.rint(landmarks[:4, 0]).astype(int)] == 200).all()


@pytest.mark.parametrize("level", FACTORS["occlusion-patch"].levels)
def test_patch_area_and_centre(level: float) -> None:
    """The black square has area (level x IOD)^2 (its sides cover whole pixels: within 2 x side + 1 px^2), is
    centred at the recorded point within 0.5 px, and the point lies in the landmark box grown by 0.5 IOD."""
    _, _, _, iod = _eye_frame(UPRIGHT)
    low, high = UPRIGHT.min(axis=0) - 0.5 * iod, UPRIGHT.max(axis=0) + 0.5 * iod
    centres = []
    for seed in range(20):
        out, extra = factor("occlusion-patch").apply(np.full((250, 250, 3), 200, np.uint8), level, seed, UPRIGHT)
        zeros = _zero_pixels(out)
        side = level * iod
        assert len(zeros) == pytest.approx(side ** 2, abs=2 * side + 1)
        assert np.allclose(zeros.mean(axis=0), extra["centre"], atol=0.5)
        assert np.all(np.asarray(extra["centre"]) >= low) and np.all(np.asarray(extra["centre"]) <= high)
        centres.append(extra["centre"])
    centres = np.array(centres)
    assert np.ptp(centres, axis=0).min() > iod  # seeded points spread over the box, not one spot


# ---- rotation ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("angle", FACTORS["rotation"].levels)
def test_rotation_turns_a_dot_by_the_recorded_angle(angle: float) -> None:
    """A bright dot 60 px from the centre turns about it by ``angle_deg`` (counter-clockwise as shown) within
    1 degree. Only the disc of radius 110 is searched: the reflected border can copy the dot into the corners."""
    image = np.zeros((250, 250, 3), np.uint8)
    cv2.circle(image, (124 + 60, 124), 3, (255, 255, 255), -1)  # the centre is (124.5, 124.5)
    ys, xs = np.mgrid[:250, :250]
    disc = (xs - 124.5) ** 2 + (ys - 124.5) ** 2 < 110 ** 2

    def direction(picture: np.ndarray) -> float:
        """The dot's direction from the centre in degrees, counter-clockwise as shown."""
        weight = picture[..., 0].astype(np.float64) * disc
        x, y = (weight * xs).sum() / weight.sum() - 124.5, (weight * ys).sum() / weight.sum() - 124.5
        return math.degrees(math.atan2(-y, x))

    signs = set()
    for seed in range(6):
        out, extra = factor("rotation").apply(image, angle, seed)
        assert abs(extra["angle_deg"]) == angle
        signs.add(math.copysign(1, extra["angle_deg"]))
        assert direction(out) - direction(image) == pytest.approx(extra["angle_deg"], abs=1.0)
    assert signs == {1.0, -1.0}


def test_rotation_leaves_no_black_corners() -> None:
    out, _ = factor("rotation").apply(np.full((250, 250, 3), 90, np.uint8), 45, 0)
    assert (out == 90).all()  # reflected border: the corners are image, not black
