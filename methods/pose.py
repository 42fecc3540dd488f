"""Pose: how far the five landmarks are from a frontal face's (an ISO/IEC 29794-5-style component).

The five dlib landmarks ``p_k`` (both corners of each eye and the base of
the nose) are matched to dlib's frontal template ``t_k``
(:data:`fiqa_bench.faces.templates.DLIB_5_POINTS`) by the least-squares
similarity transform ``T`` (Umeyama 1991: rotation, scale, shift), and the
residual is measured in units of the template's own size:

    r(x) = sqrt( sum_k |T(p_k) - t_k|^2 / sum_k |t_k - mean(t)|^2 )

A similarity transform absorbs in-plane rotation (roll), scale and position,
which alignment undoes anyway; what it cannot absorb is yaw and pitch, which
move the nose off the eyes' midline, foreshorten one eye and change the
eye-nose distance.  ``r`` is 0 for a frontal face and grows with out-of-plane
rotation.  Native output ``r``: lower is better; quality = ``-r``.  Where no
face was detected, the landmarks are those of the fallback box, and ``r``
says how face-like they look.
"""

from __future__ import annotations

import numpy as np

from fiqa_bench.faces.templates import DLIB_5_POINTS, apply_affine, umeyama_similarity
from fiqa_bench.method import METHODS, MethodCard, QualityMethod

_TEMPLATE_SPREAD = float(np.sqrt(((DLIB_5_POINTS - DLIB_5_POINTS.mean(0)) ** 2).sum()))


def frontal_residual(landmarks: np.ndarray) -> np.ndarray:
    """``r`` above for ``(N, 5, 2)`` landmarks in dlib's order, ``(N,)`` float64; NaN rows stay NaN."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (5, 2):
        raise ValueError(f"landmarks must have shape (N, 5, 2), got {landmarks.shape}")
    out = np.full(len(landmarks), np.nan)
    for i, points in enumerate(landmarks):
        if not np.isfinite(points).all() or np.ptp(points, axis=0).max() == 0:
            continue
        moved = apply_affine(umeyama_similarity(points, DLIB_5_POINTS), points)
        out[i] = np.sqrt(((moved - DLIB_5_POINTS) ** 2).sum()) / _TEMPLATE_SPREAD
    return out


class Pose(QualityMethod):
    """Residual of the five landmarks against the frontal template after a similarity fit (lower = more frontal)."""

    card = MethodCard(name="pose", paper="ISO/IEC 29794-5 (head pose component); fit after S. Umeyama, "
                      "IEEE TPAMI 13(4), 1991", higher_is_better=False, needs="landmarks:dlib5", trained=False,
                      weights="none")

    def native_score(self, landmarks: np.ndarray) -> np.ndarray:
        return frontal_residual(landmarks)


METHODS.add("pose", Pose, description="frontalness: landmark residual against the frontal template (analytic)")
