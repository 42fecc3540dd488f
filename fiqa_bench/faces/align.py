"""Face detection, 5-point landmarks and aligned chips.

For each image, the registered face detector named by
:attr:`AlignmentSettings.detector` (:data:`~fiqa_bench.faces.detector.DETECTORS`;
one module per detector in :mod:`fiqa_bench.faces.detectors`: dlib's HOG,
the default, and RetinaFace-MobileNet0.25) looks for faces.  Of several
faces the one whose box centre is nearest the image centre is kept (LFW and
most FIQA sets are centred on the subject), and the count is noted.  A
detector whose card gives the five ArcFace points (eye centres, nose tip,
mouth corners: :attr:`FaceAnalysis.points5`) has the templates with
ArcFace-point targets (``arcface112``, ``lightqnet96``) cut from them, as
insightface cuts its chips.  When no face is found, the
**fallback** box :attr:`AlignmentSettings.fallback_box` (fractions of the
image width/height; the default is the median HOG box on LFW's 250x250
deep-funneled images) is used and the image is noted
``"no face detected: fallback box"``; landmarks are still predicted inside
it, so the image keeps a chip and an embedding and the protocol can decide
what to do with it.  dlib's five landmarks (eye corners, nose base) come from
``shape_predictor_5_face_landmarks.dat`` inside the kept box, whichever
detector found it (dlib's chips and the ``pose`` method read them); chips
are cut to a :class:`~fiqa_bench.faces.templates.ChipTemplate`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from fiqa_bench.faces.detector import DEFAULT_DETECTOR, DETECTORS, FaceDetector
from fiqa_bench.faces.io import ImageLoadError, load_rgb
from fiqa_bench.faces.templates import ChipTemplate, arcface_points, umeyama_similarity
from fiqa_bench.pipeline.hashing import sha256_json

LANDMARK_MODEL = "shape_predictor_5_face_landmarks.dat"
NO_FACE_NOTE = "no face detected: fallback box"


def face_outcome(failure: str, notes: str, detector: str) -> str:
    """Whether the face of one image was found, in words: ``"found by hog"``,
    ``"not found by hog: fallback box"``, or ``"not analysed"`` (the image could not be read)."""
    if failure:
        return "not analysed"
    return f"not found by {detector}: fallback box" if NO_FACE_NOTE in notes else f"found by {detector}"


@dataclass(frozen=True)
class AlignmentSettings:
    """Everything that decides where a chip is cut (part of every cache key).

    Attributes:
        upsample_attempts: HOG detector upsampling levels, tried in order
            until a face is found.
        fallback_box: (left, top, right, bottom) as fractions of the image
            width and height, used when no face is found.
        detector: a registered face detector (:data:`~fiqa_bench.faces.detector.DETECTORS`).
    """

    upsample_attempts: tuple[int, ...] = (0, 1)
    fallback_box: tuple[float, float, float, float] = (0.308, 0.356, 0.724, 0.756)
    detector: str = DEFAULT_DETECTOR

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS.names():
            raise ValueError(f"unknown face detector {self.detector!r}; known: {', '.join(DETECTORS.names())}")
        if not self.upsample_attempts or any(u < 0 or u > 3 for u in self.upsample_attempts):
            raise ValueError(f"upsample_attempts must be levels in 0..3, got {self.upsample_attempts}")
        left, top, right, bottom = self.fallback_box
        if not (0 <= left < right <= 1 and 0 <= top < bottom <= 1):
            raise ValueError(f"fallback_box must be fractions with left<right, top<bottom: {self.fallback_box}")

    def digest(self) -> str:
        """Hash of these settings, of what decides where the detector finds faces (its
        :meth:`~fiqa_bench.faces.detector.FaceDetector.digest_settings`, under its name) and of the dlib
        version that applies them.  A detector whose card is not ``named_in_digest`` leaves its name out:
        the digest of every cache made before detectors could be chosen."""
        import dlib

        settings: dict = asdict(self)
        detector = DETECTORS.get(self.detector)
        if detector.card.named_in_digest:
            settings[detector.card.name] = dict(detector.digest_settings())
        else:
            del settings["detector"]
        return sha256_json({"settings": settings, "dlib": dlib.__version__, "landmarks": LANDMARK_MODEL})[:16]


@dataclass(frozen=True)
class FaceAnalysis:
    """Where the face is in one image.

    Attributes:
        box: (left, top, right, bottom) of the face box used, in pixels.
        landmarks: (5, 2) int32 landmark coordinates (x, y), dlib's order.
        notes: non-fatal remarks (conversions, fallback box, several faces).
        points5: (5, 2) float64 ArcFace points (left eye, right eye in image
            order, nose tip, left and right mouth corner) when the detector
            gives them (RetinaFace), else None.
    """

    box: tuple[int, int, int, int]
    landmarks: np.ndarray
    notes: tuple[str, ...]
    points5: np.ndarray | None = None


class FaceAligner:
    """Detects, landmarks and cuts chips; the detector and dlib's shape predictor are loaded on first use."""

    def __init__(self, settings: AlignmentSettings | None = None) -> None:
        self.settings = settings or AlignmentSettings()
        self._detector: FaceDetector | None = None
        self._predictor = None

    def _models(self):  # noqa: ANN202 - dlib types
        if self._detector is None:
            import dlib

            from fiqa_bench.pipeline.paths import dlib_model_file

            self._detector = DETECTORS.get(self.settings.detector)(self.settings)
            self._predictor = dlib.shape_predictor(str(dlib_model_file(LANDMARK_MODEL)))
        return self._detector, self._predictor

    def analyse(self, image: np.ndarray) -> FaceAnalysis:
        """Face box and five landmarks of the most central face in ``image`` (RGB uint8)."""
        import dlib

        detector, predictor = self._models()
        height, width = image.shape[:2]
        notes: list[str] = []
        found = detector.find(image)
        if found is not None:
            box, points5 = found.box, found.points5
            if found.faces > 1:
                notes.append(f"{found.faces} faces detected: kept the most central")
        else:
            fl, ft, fr, fb = self.settings.fallback_box
            box = (round(fl * width), round(ft * height), round(fr * width), round(fb * height))
            points5 = None
            notes.append(NO_FACE_NOTE)
        shape = predictor(image, dlib.rectangle(*box))
        landmarks = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.int32)
        return FaceAnalysis(box=box, landmarks=landmarks, notes=tuple(notes), points5=points5)

    def chip(self, image: np.ndarray, face: FaceAnalysis, template: ChipTemplate) -> np.ndarray:
        """The ``(S, S, 3)`` uint8 chip of ``face`` cut to ``template``."""
        if template.dlib_padding is not None:
            import dlib

            parts = dlib.points([dlib.point(int(x), int(y)) for x, y in face.landmarks])
            detection = dlib.full_object_detection(dlib.rectangle(*face.box), parts)
            return np.asarray(dlib.get_face_chip(image, detection, size=template.size,
                                                 padding=template.dlib_padding), dtype=np.uint8)
        if face.points5 is not None and template.arcface_target is not None:
            m = umeyama_similarity(arcface_points(face.points5, len(template.arcface_target)),
                                   np.array(template.arcface_target, dtype=np.float64))
        else:
            m = umeyama_similarity(face.landmarks.astype(np.float64), template.target_points())
        return cv2.warpAffine(image, m, (template.size, template.size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


@dataclass(frozen=True)
class ImageResult:
    """What processing one image produced: its face (or failure) and chips."""

    face: FaceAnalysis | None
    chips: dict[str, np.ndarray]
    failure: str | None
    notes: tuple[str, ...]


def process_image(
    aligner: FaceAligner,
    path: Path,
    templates: tuple[ChipTemplate, ...],
    known_face: FaceAnalysis | None = None,
) -> ImageResult:
    """Load ``path``, find its face (unless ``known_face`` is given) and cut ``templates``.

    Never raises for a bad image: the failure is returned as a reason.
    """
    try:
        image, load_notes = load_rgb(path)
    except ImageLoadError as err:
        return ImageResult(None, {}, f"{err.reason}: {err.detail}" if err.detail else err.reason, ())
    face = known_face if known_face is not None else aligner.analyse(image)
    chips = {t.name: aligner.chip(image, face, t) for t in templates}
    return ImageResult(face, chips, None, load_notes + face.notes)
