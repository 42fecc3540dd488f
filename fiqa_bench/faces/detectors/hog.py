"""dlib's HOG frontal-face detector, the default detector (``hog``).

dlib's HOG + linear-SVM detector (``dlib.get_frontal_face_detector``) is run
at the upsampling levels of
:attr:`~fiqa_bench.faces.align.AlignmentSettings.upsample_attempts`
(default: none, then 2x) until it finds a face; of several, the most central
is kept (:func:`~fiqa_bench.faces.detector.pick_central`).  It gives no
points of its own: dlib's five shape-predictor points are predicted inside its
box.  Every cache made before detectors could be chosen was cut after it, so
the alignment digest leaves its name out (those caches keep their keys).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fiqa_bench.faces.detector import DLIB_POINTS, DetectedFace, DetectorCard, FaceDetector, pick_central, register


@register
class HOGDetector(FaceDetector):
    """dlib's HOG detector, tried at each upsampling level of the settings in turn."""

    card = DetectorCard(
        name="hog",
        description="dlib's HOG frontal-face detector, at the upsampling levels of the settings (default 0, "
                    "then 1) until a face is found",
        landmarks=(DLIB_POINTS,),
        uses_torch=False,
        named_in_digest=False,
    )

    def __init__(self, settings: Any) -> None:
        import dlib

        super().__init__(settings)
        self._detector = dlib.get_frontal_face_detector()

    def find(self, image: np.ndarray) -> DetectedFace | None:
        height, width = image.shape[:2]
        for level in self.settings.upsample_attempts:
            boxes = [(r.left(), r.top(), r.right(), r.bottom()) for r in self._detector(image, level)]
            if boxes:
                return DetectedFace(boxes[pick_central(boxes, width, height)], None, len(boxes))
        return None
