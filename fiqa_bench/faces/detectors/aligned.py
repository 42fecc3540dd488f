"""Crops already aligned to the ArcFace 112x112 template (insightface's ``.bin`` files): ``arcface112-aligned``.

An insightface verification ``.bin`` holds faces that were detected and
warped onto :data:`~fiqa_bench.faces.templates.ARCFACE_112_POINTS` before the
file was written, so where the face is needs no looking: this "detector"
returns, for every image, the five ArcFace points where the template put them
and the face box where RetinaFace's box lands in such a crop, both scaled from
112 px to the image's size.  What each model then gets:

* a model on the ``arcface112`` template (``mobilefacenet-512``): the crop itself, the warp from the
  template's points onto themselves being the identity (checked in the tests, within one grey level);
* ``lightqnet96``: cut from the ArcFace points, as from RetinaFace's;
* ``dlib150`` (``dlib-resnet``, and the methods that read dlib's chips): dlib's five points predicted inside
  :data:`BOX_112`, then dlib's chip; dlib's chip reaches beyond a tight 112 px crop, so its border is black
  where the crop ends (the share is measured in the tests and BENCHMARKS.md), as any chip of a tight crop
  would be.

:data:`BOX_112` is the median RetinaFace box of 100 LFW deep-funneled images (every 130th of the sorted
file list) mapped into the 112 px chip by the same similarity that cuts it: (17.7, 8.7, 94.2, 120.5),
rounded to (18, 9, 94, 121); it reaches 9 px below the crop, where the chin is, and is clipped to the crop
(:func:`~fiqa_bench.faces.detector.box_in_image`) as every detector's box is.  Protocols choose this
detector for a dataset that says its images are aligned (:attr:`~fiqa_bench.data.base.Dataset.aligned_to`),
unless the user chose a detector (``--detector``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fiqa_bench.faces.detector import (
    ARCFACE_POINTS,
    DLIB_POINTS,
    DetectedFace,
    DetectorCard,
    FaceDetector,
    box_in_image,
    register,
)
from fiqa_bench.faces.templates import ARCFACE_112_POINTS

#: The face box of a 112x112 ArcFace crop (left, top, right, bottom), in pixels of the crop.
BOX_112 = (18, 9, 94, 121)
#: The side of the crops the points and box are given for.
SIDE = 112


@register
class AlignedArcFace112(FaceDetector):
    """The face of a crop already aligned to ``arcface112``: the template's points and box, scaled."""

    card = DetectorCard(
        name="arcface112-aligned",
        description="for crops already aligned to the 112x112 ArcFace template (insightface .bin files): "
                    "the template's five points and box, no detection",
        landmarks=(DLIB_POINTS, ARCFACE_POINTS),
        uses_torch=False,
        named_in_digest=True,
        reads_aligned="arcface112",
    )

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)

    def find(self, image: np.ndarray) -> DetectedFace | None:
        height, width = image.shape[:2]
        scale = np.array([width / SIDE, height / SIDE])
        box = box_in_image(np.array(BOX_112, dtype=np.float64) * np.tile(scale, 2), width, height)
        return DetectedFace(box, ARCFACE_112_POINTS.astype(np.float64) * scale, 1)

    @classmethod
    def digest_settings(cls) -> dict[str, Any]:
        return {"box_112": list(BOX_112), "points_112": ARCFACE_112_POINTS.tolist()}
