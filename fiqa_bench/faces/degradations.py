"""Seeded, deterministic image degradations with physical parameters.

Each :class:`Factor` degrades an 8-bit RGB photo (LFW's 250x250 images) by
one physical parameter at a given level; :data:`FACTORS` holds the twelve
in a fixed order, each with five levels of increasing severity.  The clean
image is not a level: it is the untouched file.  ``apply`` is a pure
function of ``(image, level, seed, landmarks)``: every random choice comes
from ``np.random.default_rng(seed)``, the input is never changed, and the
result is a new uint8 array of the input's shape.  A level off the list is
allowed (the parameters are continuous) but must be positive; JPEG quality
is rounded to an integer in 1..100 and the resolution factor must be at
most 1.

=================  ==============================  ================================  ===================================
factor             parameter                       levels (mild -> severe)           operation (library call)
=================  ==============================  ================================  ===================================
gaussian-blur      sigma (px)                      1, 2, 3, 4.5, 6                   ``cv2.GaussianBlur``, kernel side
                                                                                     2*ceil(4 sigma)+1, reflected border
motion-blur        length (px)                     5, 9, 13, 17, 21                  ``cv2.filter2D`` with a normalised
                                                                                     line kernel; angle seeded, uniform
                                                                                     in [0, 180) deg (``angle_deg``)
gaussian-noise     sd (grey levels, 0-255)         8, 16, 24, 32, 48                 ``rng.normal`` per pixel and
                                                                                     channel, added, rounded, clipped
jpeg               JPEG quality (1-100)            50, 30, 20, 10, 5                 ``cv2.imencode``/``cv2.imdecode``
                                                                                     (:func:`encode_jpeg`)
resolution         scale factor (down, then up)    1/2, 1/3, 1/4, 1/6, 1/8           ``cv2.resize``: ``INTER_AREA`` down
                                                                                     to ``small_size``, ``INTER_LINEAR``
                                                                                     back up
exposure-under     gain (on 8-bit values)          0.6, 0.45, 0.3, 0.2, 0.12         numpy: value x gain, rounded
exposure-over      gain (on 8-bit values)          1.4, 1.8, 2.2, 2.8, 3.5           numpy: value x gain, rounded,
                                                                                     clipped at 255
contrast           factor about the mean grey      0.7, 0.5, 0.35, 0.2, 0.1          numpy: m + factor (value - m),
                                                                                     m the mean luma, rounded, clipped
occlusion-eyes     bar height (x IOD)              0.15, 0.3, 0.45, 0.6, 0.8         numpy: pixels in a turned rectangle
                                                                                     set to 0
occlusion-mouth    bar height (x IOD)              0.15, 0.3, 0.45, 0.6, 0.8         numpy: pixels in a turned rectangle
                                                                                     set to 0
occlusion-patch    square side (x IOD)             0.4, 0.6, 0.8, 1.0, 1.3           numpy: pixels in a square set to 0;
                                                                                     centre seeded
rotation           in-plane angle (deg)            10, 20, 30, 45, 60                ``cv2.warpAffine``, bilinear,
                                                                                     ``BORDER_REFLECT_101``; seeded sign
=================  ==============================  ================================  ===================================

Details:

* **Exposure** is kept simple: the gain multiplies the 8-bit (gamma-encoded)
  values, not linear light, so a gain of 0.5 halves the stored values
  rather than the light that reached the sensor.
* **Contrast** scales every channel's deviation from one scalar, the mean
  luma ``0.299 R + 0.587 G + 0.114 B`` of the whole image, so the mean grey
  level stays and the RMS contrast (and saturation) shrinks by the factor.
* **Angles** (motion blur, rotation) are counter-clockwise as the image is
  shown (x right, y down on screen), as in ``cv2.getRotationMatrix2D``.
* **Motion blur** spreads each pixel evenly along a segment ``length`` px
  long (uniform motion by ``length`` px during the exposure; level 5 covers
  about 5 pixels, as a 1x5 box would), sampled every 0.05 px and splatted
  bilinearly into a kernel that is point-symmetric about its centre (so
  correlation and convolution agree).
* **Rotation** turns about the image centre ``((W-1)/2, (H-1)/2)`` and fills
  the corners by reflection (``BORDER_REFLECT_101``), so no black wedges
  appear for a face detector to react to; the signed angle is recorded.
  It is the one ``geometric`` factor: the face moves, and landmarks found
  on the clean image no longer fit the degraded one.
* **Occlusions** are placed from the clean image's five dlib landmarks
  (``landmarks``: outer and inner corner of the image-right eye, outer and
  inner corner of the other eye, nose base).  Eye centre = mean of its two
  corners; IOD = distance between the eye centres; the face's downward
  direction is perpendicular to the eye line, on the nose's side.

  - ``occlusion-eyes``: a bar along the eye line, 2.2 IOD long, centred on
    the eyes' midpoint, ``level`` IOD high, turned with the eye line.
  - ``occlusion-mouth``: a bar 1.4 IOD long and ``level`` IOD high, turned
    with the eye line, centred :data:`MOUTH_DROP` IOD below the eyes'
    midpoint: the drop of the mouth centre (mean of the mouth corners)
    below the eyes' midpoint in :data:`~fiqa_bench.faces.templates.ARCFACE_112_POINTS`,
    1.155 IOD.
  - ``occlusion-patch``: an axis-aligned square of side ``level`` IOD,
    centred at a seeded uniform point of the landmarks' bounding box grown
    by 0.5 IOD on every side (and cut to the image).

  A pixel is occluded (set exactly to 0) when its centre lies in the
  rectangle, pixel ``(i, j)``'s centre being ``x = i, y = j`` as for the
  landmarks, so the black area is the rectangle's to within its edge
  pixels.  (``cv2.fillPoly`` also takes in every pixel an edge touches,
  about one pixel more in height and length: 14% of the thinnest bar.)
  The recorded parameters give the occluder's corners in pixels, the
  patch's centre and side, and the IOD.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from fiqa_bench.faces.templates import ARCFACE_112_POINTS

#: Operation: (copy of the image, level, generator, landmarks or None) -> (degraded uint8 image, recorded parameters).
Operation = Callable[[np.ndarray, float, np.random.Generator, "np.ndarray | None"], tuple[np.ndarray, dict]]


def _mouth_drop() -> float:
    """The ArcFace template's mouth-centre drop below the eyes' midpoint, in IODs (perpendicular to the eye line)."""
    left, right, _, mouth_left, mouth_right = ARCFACE_112_POINTS
    iod = float(np.linalg.norm(right - left))
    along = (right - left) / iod
    down = np.array([-along[1], along[0]])
    return float(((mouth_left + mouth_right) / 2 - (left + right) / 2) @ down / iod)


#: Mouth centre below the eyes' midpoint, in IODs, from :data:`ARCFACE_112_POINTS` (about 1.155).
MOUTH_DROP = _mouth_drop()


@dataclass(frozen=True)
class Factor:
    """One degradation: a physical parameter, five levels of increasing severity, and the operation."""

    name: str
    parameter: str
    levels: tuple[float, ...]
    needs_landmarks: bool
    geometric: bool
    operation: Operation = field(repr=False, compare=False)

    def apply(self, image: np.ndarray, level: float, seed: int,
              landmarks: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
        """The degraded copy of ``image`` (H, W, 3) uint8 RGB at ``level``, and the parameters drawn or derived.

        Deterministic in ``(image, level, seed, landmarks)``; ``image`` is not changed.  ``landmarks`` are the
        clean image's five dlib points (5, 2), needed by the occlusions only.
        """
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"{self.name}: expected an (H, W, 3) uint8 RGB image, got shape {image.shape} "
                             f"dtype {image.dtype}")
        level = float(level)
        if not (math.isfinite(level) and level > 0):
            raise ValueError(f"{self.name}: level must be a positive number, got {level}")
        points = None
        if self.needs_landmarks:
            if landmarks is None:
                raise ValueError(f"{self.name}: needs the clean image's five landmarks, got None")
            points = np.asarray(landmarks, dtype=np.float64)
            if points.shape != (5, 2) or not np.isfinite(points).all():
                raise ValueError(f"{self.name}: landmarks must be five finite (x, y) points, got shape {points.shape}")
        degraded, extra = self.operation(image.copy(), level, np.random.default_rng(seed), points)
        assert degraded.dtype == np.uint8 and degraded.shape == image.shape, (self.name, degraded.shape)
        return degraded, extra


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Rounded to the nearest integer and clipped to 0..255."""
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def gaussian_blur(image: np.ndarray, level: float, rng: np.random.Generator,
                  landmarks: np.ndarray | None) -> tuple[np.ndarray, dict]:
    """Isotropic Gaussian blur of standard deviation ``level`` px, kernel side 2*ceil(4 sigma)+1."""
    side = 2 * math.ceil(4 * level) + 1
    blurred = cv2.GaussianBlur(image, (side, side), sigmaX=level, sigmaY=level, borderType=cv2.BORDER_REFLECT_101)
    return blurred, {"kernel_px": side}


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    """A normalised line kernel: a segment ``length`` px long at ``angle_deg``, its weight spread evenly.

    The segment (from ``-length/2`` to ``+length/2`` about the kernel's centre pixel) is sampled every
    0.05 px and splatted bilinearly, which adds a variance of 1/6 px^2 in every direction; the angle is
    counter-clockwise as shown (y down), so the direction in (x, y) pixels is (cos a, -sin a).
    """
    half = length / 2
    side = 2 * math.ceil(half) + 3  # room for the bilinear splat on either end
    centre = side // 2
    samples = max(2, int(math.ceil(length / 0.05)) + 1)
    t = np.linspace(-half, half, samples)
    angle = math.radians(angle_deg)
    x, y = centre + t * math.cos(angle), centre - t * math.sin(angle)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    kernel = np.zeros((side, side), np.float64)
    for dx, dy, weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, (y0 + dy, x0 + dx), weight)
    kernel = (kernel + kernel[::-1, ::-1]) / 2  # exactly point-symmetric despite floating-point sampling
    return (kernel / kernel.sum()).astype(np.float32)


def motion_blur(image: np.ndarray, level: float, rng: np.random.Generator,
                landmarks: np.ndarray | None) -> tuple[np.ndarray, dict]:
    """Linear motion blur of ``level`` px at a seeded angle, uniform in [0, 180) degrees."""
    angle = float(rng.uniform(0.0, 180.0))
    blurred = cv2.filter2D(image, -1, motion_kernel(level, angle), borderType=cv2.BORDER_REFLECT_101)
    return blurred, {"angle_deg": round(angle, 4)}


def gaussian_noise(image: np.ndarray, level: float, rng: np.random.Generator,
                   landmarks: np.ndarray | None) -> tuple[np.ndarray, dict]:
    """Additive white Gaussian noise, sd ``level`` grey levels, independent per pixel and channel."""
    return _to_uint8(image + rng.normal(0.0, level, image.shape)), {}


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """The JPEG file of an RGB uint8 image at ``quality`` (OpenCV's libjpeg, IJG quality scaling)."""
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {image.shape} image as JPEG (quality {quality})")
    return buffer.tobytes()


def jpeg_quality(level: float) -> int:
    """The integer JPEG quality a level stands for; ValueError outside 1..100."""
    quality = int(round(level))
    if not 1 <= quality <= 100:
        raise ValueError(f"jpeg: quality must round to 1..100, got {level}")
    return quality


def jpeg(image: np.ndarray, level: float, rng: np.random.Generator,
         landmarks: np.ndarray | None) -> tuple[np.ndarray, dict]:
    """Encode as JPEG at quality ``level`` and decode again."""
    quality = jpeg_quality(level)
    decoded = cv2.imdecode(np.frombuffer(encode_jpeg(image, quality), np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), {"quality": quality}


def small_size(width: int, height: int, level: float) -> tuple[int, int]:
    """The (width, height) a resolution factor ``level`` (0 < level <= 1) scales to, at least 1 px."""
    if level > 1:
        raise ValueError(f"resolution: the scale factor must be at most 1, got {level}")
    return max(1, int(round(width * level))), max(1, int(round(height * level)))


def resolution(image: np.ndarray, level: float, rng: np.random.Generator,
               landmarks: np.ndarray | None) -> tuple[np.ndarray, dict]:
    """Down-scale by ``level`` (area averaging), then up again to the original size (bilinear)."""
    height, width = image.shape[:2]
    size = small_size(width, height, level)
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR), {"small_size": list(size)}


def exposure(image: np.ndarray, level: float, rng: np.random.Generator,
             landmarks: np.ndarray | None) -> tuple[np.ndarray, dict]:
    """The 8-bit values times the gain ``level``, rounded and clipped (not linear light: see the module notes)."""
    return _to_uint8(image * level), {}


def contrast(image: np.ndarray, level: float, rng: np.random.Generator,
             landmarks: np.ndarray | None) -> tuple[np.ndarray, dict]:
    """``m + level * (value - m)`` with ``m`` the image's mean luma (0.299 R + 0.587 G + 0.114 B)."""
    mean = float((image.reshape(-1, 3).astype(np.float64) @ np.array([0.299, 0.587, 0.114])).mean())
    return _to_uint8(mean + level * (image - mean)), {"mean_grey": round(mean, 3)}


@dataclass(frozen=True)
class FaceFrame:
    """Where the eyes are: their midpoint, the IOD, and unit vectors along the eye line and down the face."""

    midpoint: np.ndarray
    iod: float
    along: np.ndarray
    down: np.ndarray


def face_frame(landmarks: np.ndarray) -> FaceFrame:
    """The eye frame of five dlib points (eye centre = mean of its two corners; down = towards the nose)."""
    right_eye, left_eye = landmarks[0:2].mean(axis=0), landmarks[2:4].mean(axis=0)
    iod = float(np.linalg.norm(right_eye - left_eye))
    if not iod > 0:
        raise ValueError("occlusion: the two eye centres coincide, no eye line to place the occluder on")
    along = (right_eye - left_eye) / iod
    down = np.array([-along[1], along[0]])
    midpoint = (right_eye + left_eye) / 2
    if (landmarks[4] - midpoint) @ down < 0:
        down = -down
    return FaceFrame(midpoint, iod, along, down)


def _blacken(image: np.ndarray, centre: np.ndarray, along: np.ndarray, down: np.ndarray, length: float,
             height: float) -> list[list[float]]:
    """Set to 0 every pixel whose centre lies in the ``length`` x ``height`` rectangle about ``centre``, its sides
    along the unit vectors ``along`` and ``down``; the rectangle's corners (pixel ``(i, j)``'s centre is at
    ``x = i, y = j``, as for the landmarks)."""
    ys, xs = np.mgrid[: image.shape[0], : image.shape[1]]
    dx, dy = xs - centre[0], ys - centre[1]
    inside = ((np.abs(dx * along[0] + dy * along[1]) <= length / 2)
              & (np.abs(dx * down[0] + dy * down[1]) <= height / 2))
    image[inside] = 0
    a, b = along * length / 2, down * height / 2
    corners = (centre - a - b, centre + a - b, centre + a + b, centre - a + b)
    return [[round(float(x), 2), round(float(y), 2)] for x, y in corners]


def occlusion_eyes(image: np.ndarray, level: float, rng: np.random.Generator,
                   landmarks: np.ndarray) -> tuple[np.ndarray, dict]:
    """A black bar over both eyes: 2.2 IOD along the eye line, ``level`` IOD high, on the eyes' midpoint."""
    frame = face_frame(landmarks)
    corners = _blacken(image, frame.midpoint, frame.along, frame.down, 2.2 * frame.iod, level * frame.iod)
    return image, {"corners": corners, "iod_px": round(frame.iod, 3)}


def occlusion_mouth(image: np.ndarray, level: float, rng: np.random.Generator,
                    landmarks: np.ndarray) -> tuple[np.ndarray, dict]:
    """A black bar over the mouth: 1.4 IOD long, ``level`` IOD high, :data:`MOUTH_DROP` IOD below the eyes."""
    frame = face_frame(landmarks)
    centre = frame.midpoint + MOUTH_DROP * frame.iod * frame.down
    corners = _blacken(image, centre, frame.along, frame.down, 1.4 * frame.iod, level * frame.iod)
    return image, {"corners": corners, "centre": [round(float(c), 2) for c in centre], "iod_px": round(frame.iod, 3)}


def occlusion_patch(image: np.ndarray, level: float, rng: np.random.Generator,
                    landmarks: np.ndarray) -> tuple[np.ndarray, dict]:
    """A black axis-aligned square of side ``level`` IOD at a seeded point of the face box (landmarks + 0.5 IOD)."""
    frame = face_frame(landmarks)
    height, width = image.shape[:2]
    low = np.maximum(landmarks.min(axis=0) - 0.5 * frame.iod, 0.0)
    high = np.minimum(landmarks.max(axis=0) + 0.5 * frame.iod, [width - 1.0, height - 1.0])
    high = np.maximum(high, low)  # landmarks wholly outside the image: the box collapses onto its edge
    centre = rng.uniform(low, high)
    side = level * frame.iod
    corners = _blacken(image, centre, np.array([1.0, 0.0]), np.array([0.0, 1.0]), side, side)
    return image, {"centre": [round(float(c), 2) for c in centre], "side_px": round(side, 3), "corners": corners,
                   "iod_px": round(frame.iod, 3)}


def rotation(image: np.ndarray, level: float, rng: np.random.Generator,
             landmarks: np.ndarray | None) -> tuple[np.ndarray, dict]:
    """Turn by ``level`` degrees about the image centre, sign seeded, corners filled by reflection."""
    angle = float(level) * (1.0 if rng.random() < 0.5 else -1.0)
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle, 1.0)
    turned = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT_101)
    return turned, {"angle_deg": angle}


BAR_HEIGHTS = (0.15, 0.3, 0.45, 0.6, 0.8)

#: The factors, in the fixed order reports use.
FACTORS: dict[str, Factor] = {f.name: f for f in (
    Factor("gaussian-blur", "sigma (px)", (1.0, 2.0, 3.0, 4.5, 6.0), False, False, gaussian_blur),
    Factor("motion-blur", "length (px)", (5.0, 9.0, 13.0, 17.0, 21.0), False, False, motion_blur),
    Factor("gaussian-noise", "sd (grey levels, 0-255)", (8.0, 16.0, 24.0, 32.0, 48.0), False, False, gaussian_noise),
    Factor("jpeg", "JPEG quality (1-100)", (50.0, 30.0, 20.0, 10.0, 5.0), False, False, jpeg),
    Factor("resolution", "scale factor (down, then up)", (1 / 2, 1 / 3, 1 / 4, 1 / 6, 1 / 8), False, False, resolution),
    Factor("exposure-under", "gain (on 8-bit values)", (0.6, 0.45, 0.3, 0.2, 0.12), False, False, exposure),
    Factor("exposure-over", "gain (on 8-bit values)", (1.4, 1.8, 2.2, 2.8, 3.5), False, False, exposure),
    Factor("contrast", "contrast factor (about the mean grey)", (0.7, 0.5, 0.35, 0.2, 0.1), False, False, contrast),
    Factor("occlusion-eyes", "bar height (x IOD)", BAR_HEIGHTS, True, False, occlusion_eyes),
    Factor("occlusion-mouth", "bar height (x IOD)", BAR_HEIGHTS, True, False, occlusion_mouth),
    Factor("occlusion-patch", "square side (x IOD)", (0.4, 0.6, 0.8, 1.0, 1.3), True, False, occlusion_patch),
    Factor("rotation", "in-plane angle (deg, sign seeded)", (10.0, 20.0, 30.0, 45.0, 60.0), False, True, rotation),
)}


def factor(name: str) -> Factor:
    """The factor called ``name``; ValueError listing the known names otherwise."""
    try:
        return FACTORS[name]
    except KeyError:
        raise ValueError(f"unknown degradation factor {name!r}; known: {', '.join(FACTORS)}") from None
