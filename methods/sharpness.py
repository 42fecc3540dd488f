"""Sharpness: the variance of the Laplacian of the grey chip (Pech-Pacheco et al., ICPR 2000).

    q(x) = Var[ (d^2/du^2 + d^2/dv^2) g(x) ],   g = 0.299 R + 0.587 G + 0.114 B

with the 3x3 Laplacian kernel ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]``
(``cv2.Laplacian``, ksize 1, reflected borders) on the aligned chip in
float64.  Blur removes high frequencies and lowers it; so does low contrast.
The ISO/IEC 29794-5 draft lists sharpness among its face-image quality
components; this is the most common analytic form of it.  Higher = sharper =
better.  The chip seen is the aligned chip of the ``template`` setting
(default dlib150: 150x150 with dlib's padding, so some background is in it).
"""

from __future__ import annotations

import cv2
import numpy as np

from fiqa_bench.faces.templates import get_template
from fiqa_bench.method import METHODS, MethodCard, QualityMethod

GREY_WEIGHTS = np.array([0.299, 0.587, 0.114])


def laplacian_variance(chips: np.ndarray) -> np.ndarray:
    """Variance of the Laplacian of each grey chip, ``(N,)`` float64, for ``(N, S, S, 3)`` uint8 RGB chips."""
    out = np.empty(len(chips))
    for i, chip in enumerate(chips):
        grey = chip.astype(np.float64) @ GREY_WEIGHTS
        out[i] = cv2.Laplacian(grey, cv2.CV_64F, ksize=1, borderType=cv2.BORDER_REFLECT_101).var()
    return out


class Sharpness(QualityMethod):
    """Variance of the Laplacian of the grey aligned chip (higher = sharper)."""

    def __init__(self, template: str = "dlib150") -> None:
        get_template(template)
        self.card = MethodCard(name="sharpness", paper="J. L. Pech-Pacheco et al., Diatom autofocusing in "
                               "brightfield microscopy: a comparative study, ICPR 2000", higher_is_better=True,
                               needs=f"chips:{template}", trained=False, weights="none")

    def native_score(self, chips: np.ndarray) -> np.ndarray:
        return laplacian_variance(chips)


METHODS.add("sharpness", Sharpness, description="variance of the Laplacian of the grey chip (analytic)")
