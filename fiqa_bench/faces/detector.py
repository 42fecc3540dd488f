"""The face-detector contract and the registry of detectors.

A face detector finds the face of one image for
:class:`~fiqa_bench.faces.align.FaceAligner`: the box of the most central face
(:func:`pick_central`), how many faces it saw, and, when it predicts them,
its own five ArcFace points.  dlib's five shape-predictor points (eye
corners, nose base) are then predicted inside the kept box whichever
detector found it, so every detector gives those.

Each detector is a :class:`FaceDetector` subclass registered in
:data:`DETECTORS` by its own module in :mod:`fiqa_bench.faces.detectors`
(adding a detector is adding a file there).  Its :class:`DetectorCard` is a
class attribute, so what a detector gives, and how it enters the cache keys,
is read without building it (without loading its network).  Detector
modules import only what their card needs; the network is loaded when the
detector is built, so a HOG alignment worker never loads torch.

Example:
    >>> detector_card("retinaface").gives_points5
    True
    >>> detector_card(DEFAULT_DETECTOR).landmarks
    ('dlib-5',)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

from fiqa_bench.registry import Registry

if TYPE_CHECKING:
    import numpy as np

#: The detector of an alignment that names none (and of every cache made before detectors could be chosen).
DEFAULT_DETECTOR = "hog"
#: dlib's five shape-predictor points, predicted inside the kept box whatever the detector.
DLIB_POINTS = "dlib-5"
#: The five ArcFace points (eye centres, nose tip, mouth corners) a detector predicts itself.
ARCFACE_POINTS = "arcface-5"

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class DetectorCard:
    """What a face detector is and what it gives.

    Attributes:
        name: registry name (``--detector``).
        description: one line for listings.
        landmarks: the point sets a face it finds carries: :data:`DLIB_POINTS` always, and
            :data:`ARCFACE_POINTS` when the detector predicts the ArcFace five itself
            (:attr:`~fiqa_bench.faces.align.FaceAnalysis.points5`; the faces store then keeps them).
        uses_torch: it runs a PyTorch network (an alignment worker then gives torch one thread).
        named_in_digest: the alignment digest names the detector and its
            :meth:`FaceDetector.digest_settings`; False only for the detector every cache made before
            detectors could be chosen was cut after, whose digest must not change.
        reads_aligned: the chip template (e.g. ``"arcface112"``) of already aligned crops this detector
            reads the face of without looking (:func:`detector_for_aligned`), or None for a real detector.
    """

    name: str
    description: str
    landmarks: tuple[str, ...]
    uses_torch: bool
    named_in_digest: bool
    reads_aligned: str | None = None

    def __post_init__(self) -> None:
        if DLIB_POINTS not in self.landmarks or not set(self.landmarks) <= {DLIB_POINTS, ARCFACE_POINTS}:
            raise ValueError(f"detector {self.name!r}: landmarks must hold {DLIB_POINTS!r} and may hold "
                             f"{ARCFACE_POINTS!r}, got {self.landmarks!r}")

    @property
    def gives_points5(self) -> bool:
        """Whether its faces carry the five ArcFace points (and the faces store keeps a ``points5`` column)."""
        return ARCFACE_POINTS in self.landmarks


@dataclass(frozen=True)
class DetectedFace:
    """The face a detector kept in one image.

    Attributes:
        box: (left, top, right, bottom) in pixels, inside the image.
        points5: ``(5, 2)`` float64 ArcFace points (left eye, right eye in image order, nose tip,
            left and right mouth corner) when the detector gives them, else None.
        faces: how many faces it found (the kept one is the most central).
    """

    box: Box
    points5: np.ndarray | None
    faces: int


class FaceDetector(ABC):
    """Finds the most central face of an image; built once per aligner (its network loaded then).

    Subclasses set :attr:`card`.

    Args:
        settings: the :class:`~fiqa_bench.faces.align.AlignmentSettings` it serves (HOG reads its
            upsampling levels); typed loosely because that module builds detectors from this one.
    """

    card: ClassVar[DetectorCard]

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    @abstractmethod
    def find(self, image: np.ndarray) -> DetectedFace | None:
        """The most central face of ``image`` (RGB uint8 ``(H, W, 3)``), or None when there is none."""

    @classmethod
    def digest_settings(cls) -> Mapping[str, Any]:
        """What, beside :class:`~fiqa_bench.faces.align.AlignmentSettings`' fields, decides where it finds
        faces (weights digest, thresholds), as JSON values: part of the alignment digest under the
        detector's name when :attr:`DetectorCard.named_in_digest`."""
        return {}


DETECTORS: Registry[type[FaceDetector]] = Registry("face detector", plugins="fiqa_bench.faces.detectors",
                                                   entry_points="fiqa_bench.detectors")


def register(detector: type[FaceDetector]) -> type[FaceDetector]:
    """Class decorator: add ``detector`` to :data:`DETECTORS` under its card's name and description."""
    return DETECTORS.add(detector.card.name, detector, description=detector.card.description)


def detector_card(name: str) -> DetectorCard:
    """The card of the registered detector ``name`` (nothing is built)."""
    return DETECTORS.get(name).card


def box_in_image(box: Sequence[float], width: int, height: int) -> Box:
    """``box`` (left, top, right, bottom; floats allowed) rounded to pixels and clipped to the image.

    Example:
        >>> box_in_image((-3.4, 10.6, 260.2, 240.0), 250, 250)
        (0, 11, 249, 240)
    """
    left, top, right, bottom = (int(round(v)) for v in box)
    return max(left, 0), max(top, 0), min(right, width - 1), min(bottom, height - 1)


def pick_central(boxes: Sequence[tuple[float, float, float, float]], width: int, height: int) -> int:
    """Index of the box whose centre is nearest the image centre (larger box wins a tie).

    LFW and most FIQA sets are centred on the subject, so of several faces the
    most central one is the subject's.

    Example:
        >>> pick_central([(0, 0, 10, 10), (40, 40, 60, 60), (30, 30, 70, 70)], 100, 100)
        2
    """
    if not len(boxes):
        raise ValueError("pick_central needs at least one box")

    def key(i: int) -> tuple[float, float]:
        left, top, right, bottom = boxes[i]
        cx, cy = (left + right) / 2, (top + bottom) / 2
        return ((cx - width / 2) ** 2 + (cy - height / 2) ** 2, -(right - left) * (bottom - top))

    return min(range(len(boxes)), key=key)


def detector_for_aligned(template: str) -> str | None:
    """The registered detector that reads the face of crops already aligned to ``template`` (None: none does,
    and such crops are detected like photos)."""
    found = [name for name in DETECTORS.names() if DETECTORS.get(name).card.reads_aligned == template]
    return found[0] if found else None
