"""RetinaFace-MobileNet0.25 as a face detector (``retinaface``).

The network (:mod:`fiqa_bench.faces.retinaface`, loaded when the detector is
built) runs at the image's own size; detections scoring at least
:data:`~fiqa_bench.faces.retinaface.FACE_THRESHOLD` are faces and the most
central is kept (:func:`~fiqa_bench.faces.retinaface.central_face`), its box
rounded to pixels and clipped to the image.  It also finds non-frontal faces
and gives the five ArcFace points (eye centres, nose tip, mouth corners),
which the templates with ArcFace-point targets (``arcface112``,
``lightqnet96``) are cut from, as insightface cuts its chips.  The alignment
digest names it with its weights' sha256, the face threshold and the
post-processing settings.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Mapping

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


@register
class RetinaFaceDetector(FaceDetector):
    """RetinaFace-MobileNet0.25 with the official weights, on the CPU."""

    card = DetectorCard(
        name="retinaface",
        description="RetinaFace-MobileNet0.25 (CVPR 2020; biubug6's weights): also non-frontal faces, "
                    "and the five ArcFace points",
        landmarks=(DLIB_POINTS, ARCFACE_POINTS),
        uses_torch=True,
        named_in_digest=True,
    )

    def __init__(self, settings: Any) -> None:
        from fiqa_bench.faces.retinaface import RetinaFace

        super().__init__(settings)
        self._network = RetinaFace()

    def find(self, image: np.ndarray) -> DetectedFace | None:
        from fiqa_bench.faces.retinaface import central_face

        height, width = image.shape[:2]
        face = central_face(self._network.detect(image), width, height)
        if face is None:
            return None
        return DetectedFace(box_in_image(face.box, width, height), face.landmarks.astype(np.float64), face.faces)

    @classmethod
    def digest_settings(cls) -> Mapping[str, Any]:
        from fiqa_bench.faces import retinaface

        return {"weights_sha256": retinaface.SHA256, "face_threshold": retinaface.FACE_THRESHOLD,
                "post_processing": asdict(retinaface.DetectionSettings())}
