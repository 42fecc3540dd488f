"""Aligned-chip templates: where the five landmarks land in the output chip.

dlib's 5-point landmark model returns, in image order: the outer and inner
corner of the eye on the image's right (the subject's left eye), the outer
and inner corner of the other eye, and the base of the nose.  dlib's own
template for them on the unit square (``get_face_chip_details`` in
``dlib/image_transforms/interpolation.h``) is :data:`DLIB_5_POINTS`; a chip of
side ``S`` with padding ``p`` puts point ``q`` at ``S * (q + p) / (1 + 2p)``.

Three templates are offered:

* ``dlib150``: dlib's 150x150 chip with padding 0.25, exactly as dlib's
  ResNet was trained and as ``dlib.get_face_chip`` cuts it (dlib itself does
  the warp, so the chips match dlib's byte for byte).
* ``arcface112``: the standard 112x112 ArcFace / insightface template
  (:data:`ARCFACE_112_POINTS`: eye centres, nose tip, mouth corners).  dlib's
  five points are not those five, so the template for them is *derived*:
  the similarity transform that puts the centres of dlib's two eye-corner
  pairs onto ArcFace's eye centres is applied to dlib's unit-square template.
  Eyes then land exactly where ArcFace expects them, and the nose base lands
  about 7 px below ArcFace's nose tip (as a subnasale should); scale and roll
  are fixed by the eyes alone.  The warp is a least-squares similarity
  transform (Umeyama) from the five detected points to that target, applied
  with bilinear interpolation (OpenCV), black outside the image.
* ``lightqnet96``: the 96x96 input of LightQNet (Chen, Yi and Lv, IEEE SPL
  2021).  The authors' demo maps MTCNN's two eye centres and mouth centre
  to :data:`LIGHTQNET_POINTS` (per 100 px) in a 160x160 crop and resizes it
  to 96x96; here the chip is cut at 96 px directly, the points scaled by
  0.96.  Derived from dlib's points as ``arcface112`` is: the similarity
  that puts the centres of dlib's eye-corner pairs onto LightQNet's two eye
  targets, applied to dlib's unit-square template.  The mouth target is not
  used (dlib has no mouth point): scale and roll come from the eyes alone.
  LightQNet's three points are the ArcFace template's eyes and mouth centre
  up to a similarity, so a face shaped like ArcFace's mean face, its eyes on
  the targets, has its mouth centre within 0.01 px of LightQNet's mouth
  target (48.12, 79.10); the nose base lands at (48.05, 67.59), 6.1 px below
  where ArcFace's nose tip lands.  The demo's 160 -> 96 resize (OpenCV's
  half-pixel centres) would put every point 0.2 px up and left of 0.96 times
  its 160-px position; that shift is ignored.

When the detector gives the five ArcFace points itself (RetinaFace: eye
centres, nose tip, mouth corners), ``arcface112`` is cut from those onto
:data:`ARCFACE_112_POINTS`, as insightface does, and ``lightqnet96`` from the
eye centres and the mouth centre onto the authors' three targets, as their
demo does with MTCNN's points; the derived dlib targets above serve the
HOG path, which has no mouth points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DLIB_5_POINTS = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)

#: insightface's reference points for a 112x112 chip: left eye, right eye
#: (image order), nose tip, left and right mouth corner.
ARCFACE_112_POINTS = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ]
)

#: LightQNet's alignment targets (the authors' demo): left eye, right eye
#: (image order) and mouth centre, in pixels per 100 px of the chip side.
LIGHTQNET_POINTS = np.array([[34.19, 46.16], [65.65, 45.98], [50.12, 82.40]])


def similarity_from_two_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity (rotation, uniform scale, translation) taking src[k] to dst[k], k=0,1."""
    s = complex(*(src[1] - src[0]))
    d = complex(*(dst[1] - dst[0]))
    if s == 0:
        raise ValueError(f"the two source points coincide: {src.tolist()}")
    a = d / s  # rotation and scale as one complex factor
    t = complex(*dst[0]) - a * complex(*src[0])
    return np.array([[a.real, -a.imag, t.real], [a.imag, a.real, t.imag]])


def umeyama_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares 2x3 similarity transform taking ``src`` points onto ``dst`` (Umeyama, 1991).

    Minimises ``sum_k |s R src_k + t - dst_k|^2`` over rotations ``R``,
    scales ``s`` and translations ``t``; reflections are excluded.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two matching (K>=2, 2) point arrays, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    sc, dc = src - mu_s, dst - mu_d
    var_s = (sc**2).sum() / len(src)
    if var_s == 0:
        raise ValueError("source points all coincide")
    cov = dc.T @ sc / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1
    rot = u @ np.diag(d) @ vt
    scale = (sig * d).sum() / var_s
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def apply_affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``points`` (K, 2) mapped by the 2x3 matrix ``m``."""
    return points @ m[:, :2].T + m[:, 2]


def dlib_points_in_arcface_112() -> np.ndarray:
    """Target positions of dlib's five points in the 112x112 ArcFace chip (see module docstring)."""
    dlib_eyes = np.array([DLIB_5_POINTS[2:4].mean(0), DLIB_5_POINTS[0:2].mean(0)])
    m = similarity_from_two_points(dlib_eyes, ARCFACE_112_POINTS[:2])
    return apply_affine(m, DLIB_5_POINTS)


def dlib_points_in_lightqnet_96() -> np.ndarray:
    """Target positions of dlib's five points in LightQNet's 96x96 chip (see module docstring)."""
    dlib_eyes = np.array([DLIB_5_POINTS[2:4].mean(0), DLIB_5_POINTS[0:2].mean(0)])
    m = similarity_from_two_points(dlib_eyes, LIGHTQNET_POINTS[:2] * 0.96)
    return apply_affine(m, DLIB_5_POINTS)


@dataclass(frozen=True)
class ChipTemplate:
    """An aligned-chip layout.

    Attributes:
        name: the name model cards use ("dlib150", "arcface112").
        size: side of the square chip in pixels.
        target: where dlib's five points land in the chip, in pixels.
        dlib_padding: when set, the chip is cut by ``dlib.get_face_chip``
            with this padding (byte-identical to dlib's own chips); when
            None, by a least-squares similarity warp onto ``target``.
        description: one line for humans.
        arcface_target: where a detector's ArcFace points land in the chip
            (five: eye centres, nose tip, mouth corners; or three: eye
            centres and mouth centre, see :func:`arcface_points`); used
            instead of ``target`` when the face has them (RetinaFace).
    """

    name: str
    size: int
    target: tuple[tuple[float, float], ...]
    dlib_padding: float | None
    description: str
    arcface_target: tuple[tuple[float, float], ...] | None = None

    def target_points(self) -> np.ndarray:
        """``target`` as a (5, 2) float array."""
        return np.array(self.target, dtype=np.float64)


def _points(a: np.ndarray) -> tuple[tuple[float, float], ...]:
    return tuple((float(x), float(y)) for x, y in a)


def dlib_template(size: int, padding: float) -> ChipTemplate:
    """dlib's chip of side ``size`` with ``padding`` (as ``dlib.get_face_chip``)."""
    target = size * (DLIB_5_POINTS + padding) / (1 + 2 * padding)
    return ChipTemplate(f"dlib{size}", size, _points(target), padding,
                        f"dlib's {size}x{size} chip, padding {padding} (dlib.get_face_chip)")


TEMPLATES: dict[str, ChipTemplate] = {
    "dlib150": dlib_template(150, 0.25),
    "arcface112": ChipTemplate("arcface112", 112, _points(dlib_points_in_arcface_112()), None,
                               "112x112 ArcFace template, eyes where insightface puts them",
                               arcface_target=_points(ARCFACE_112_POINTS)),
    "lightqnet96": ChipTemplate("lightqnet96", 96, _points(dlib_points_in_lightqnet_96()), None,
                                "96x96 LightQNet input, eyes where the authors' demo puts them",
                                arcface_target=_points(LIGHTQNET_POINTS * 0.96)),
}


def arcface_points(points5: np.ndarray, n: int) -> np.ndarray:
    """A detector's five ArcFace points as a template with ``n`` targets reads them.

    ``n = 5``: unchanged (eye centres, nose tip, mouth corners).  ``n = 3``:
    the two eye centres and the mouth centre (mean of the corners), the
    three points LightQNet's demo aligns with.
    """
    points5 = np.asarray(points5, dtype=np.float64)
    if n == 5:
        return points5
    if n == 3:
        return np.vstack([points5[:2], points5[3:5].mean(axis=0)])
    raise ValueError(f"a template has 5 or 3 ArcFace targets, not {n}")


def get_template(name: str) -> ChipTemplate:
    """The template called ``name``; ValueError naming the known ones otherwise."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown chip template {name!r}; known: {sorted(TEMPLATES)}") from None
