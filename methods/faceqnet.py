"""FaceQnet v0 and v1: quality as the expected comparison score against an ICAO-compliant image.

Hernandez-Ortega, Galbally, Fierrez, Haraksim, Beslay: "FaceQnet: Quality
Assessment for Face Recognition based on Deep Learning", ICB 2019 (v0), and
Hernandez-Ortega, Galbally, Fierrez, Beslay: "Biometric Quality: Review and
Application to Face Recognition with FaceQnet", arXiv:2006.03298, 2020 (v1).

Labels.  For each identity of the training set one image is the reference,
the most ICAO-compliant one; every other image ``x`` of the identity is
labelled with its comparison score against that reference, normalised to
[0, 100] over the training set (the papers use [0, 1]; 100 puts the labels
on SDD-FIQA's scale, for which the head's settings were chosen):

    l_M(x) = 100 (s_M(x, r_y) - min s_M) / (max s_M - min s_M)

with ``s_M`` the cosine similarity of recognition model ``M``.  v0 uses one
model (FaceNet in the paper; here the deployed one); v1 averages the
normalised labels of several models, ``l(x) = mean_M l_M(x)``, so the
labels are less tied to one model's quirks (the paper fused three).  A head
on the frozen recognition model's features regresses the labels
(:mod:`fiqa_bench.method.learned`; the paper fine-tunes a ResNet-50).  Higher =
better.  References, and identities with one image, get no label.

**ICAO proxy.**  The papers chose the reference with a commercial ICAO
compliance tool (BioLab-ICAO), which is not available here.  The reference
is instead the image that is best on four measurable ICAO-style criteria,
each turned into its percentile rank over the training set and averaged
(:func:`icao_proxy`):

* frontal pose: the landmark residual against the frontal template
  (:func:`fiqa_bench.methods.pose.frontal_residual`; smaller is better);
* sharpness: variance of the Laplacian of the grey 150x150 chip
  (:func:`fiqa_bench.methods.sharpness.laplacian_variance`);
* exposure: how far the chip's mean grey is from mid-grey, plus the share
  of clipped pixels (<= 5 or >= 250; smaller is better), :func:`exposure_error`;
* face size: the distance between the eye centres in image pixels.

**v1's models here.**  The registered recognition models with no user
weights are ``dlib-resnet`` and ``lbp`` (a classical LBP-histogram
matcher), so v1's default fuses those two; ``label_models`` takes any
``+``-separated list of registered models.  The ``lbp`` labels are much
weaker than dlib's; when a second deep model is registered it belongs in
this list instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from fiqa_bench.method.learned import LearnedQualityMethod, RegressionObjective, TrainingSet, register_learned
from fiqa_bench.methods.pose import frontal_residual
from fiqa_bench.methods.sharpness import GREY_WEIGHTS, laplacian_variance

PAPER_V0 = ("J. Hernandez-Ortega, J. Galbally, J. Fierrez, R. Haraksim, L. Beslay, FaceQnet: Quality Assessment "
            "for Face Recognition based on Deep Learning, ICB 2019")
PAPER_V1 = ("J. Hernandez-Ortega, J. Galbally, J. Fierrez, L. Beslay, Biometric Quality: Review and Application "
            "to Face Recognition with FaceQnet, arXiv:2006.03298, 2020")
CLIP_LOW, CLIP_HIGH = 5, 250


def exposure_error(chips: np.ndarray) -> np.ndarray:
    """``|mean grey / 255 - 1/2| + share of clipped pixels`` per ``(N, S, S, 3)`` uint8 chip (smaller is better)."""
    out = np.empty(len(chips))
    for start in range(0, len(chips), 256):  # in slices: float64 copies of all chips would take GBs
        grey = np.asarray(chips[start : start + 256], dtype=np.float64) @ GREY_WEIGHTS
        flat = grey.reshape(len(grey), -1)
        clipped = ((flat <= CLIP_LOW) | (flat >= CLIP_HIGH)).mean(axis=1)
        out[start : start + 256] = np.abs(flat.mean(axis=1) / 255 - 0.5) + clipped
    return out


def eye_distance(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the eye centres (means of dlib's two corner pairs) of ``(N, 5, 2)`` landmarks."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    return np.linalg.norm(landmarks[:, 0:2].mean(axis=1) - landmarks[:, 2:4].mean(axis=1), axis=1)


def mean_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..N of ``values`` (ascending), ties sharing their mean rank."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    _, first, counts = np.unique(values[order], return_index=True, return_counts=True)
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(first + (counts + 1) / 2, counts)
    return ranks


def icao_proxy(pose_residual: np.ndarray, sharpness: np.ndarray, exposure: np.ndarray,
               eye_dist: np.ndarray) -> np.ndarray:
    """Mean percentile rank (0-1, higher = more ICAO-like) of the four criteria; each is ranked over all images.

    Smaller pose residual and exposure error rank higher; larger sharpness and
    eye distance rank higher.  Ties share the mean rank; a NaN criterion ranks lowest.
    """
    def percentile(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
        v = np.asarray(values, dtype=np.float64)
        v = np.where(np.isnan(v), -np.inf if higher_is_better else np.inf, v)
        return mean_ranks(v if higher_is_better else -v) / len(v)

    return np.mean([percentile(pose_residual, False), percentile(sharpness, True), percentile(exposure, False),
                    percentile(eye_dist, True)], axis=0)


def reference_images(identities: np.ndarray, icao: np.ndarray) -> np.ndarray:
    """Index of each image's identity reference: the identity's highest ``icao`` (first on a tie)."""
    identities = np.asarray(identities)
    order = np.lexsort((np.arange(len(icao)), -np.asarray(icao), identities))
    first = np.ones(len(order), bool)
    first[1:] = identities[order][1:] != identities[order][:-1]
    best = dict(zip(identities[order][first].tolist(), order[first].tolist()))
    return np.array([best[i] for i in identities.tolist()])


def reference_labels(embeddings: np.ndarray, identities: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Cosine similarity to the reference, min-max normalised to [0, 100]; NaN for references and singletons."""
    x = np.asarray(embeddings, dtype=np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    score = np.einsum("ij,ij->i", x, x[reference])
    score[(reference == np.arange(len(x))) | ~np.isfinite(score)] = np.nan
    lo, hi = np.nanmin(score), np.nanmax(score)
    return 100 * (score - lo) / (hi - lo) if hi > lo else np.where(np.isnan(score), np.nan, 50.0)


@dataclass(frozen=True)
class FaceQnetLabels(RegressionObjective):
    """Normalised comparison score against the identity's ICAO-proxy reference (v0: one model).

    Attributes:
        label_models: ``+``-separated recognition models whose labels are averaged
            ("deployed" = the model the head is trained on).
    """

    method: ClassVar[str] = "faceqnet-v0"
    needs_people: ClassVar[bool] = False  # each image against its own identity's reference only

    label_models: str = "deployed"

    def labels(self, data: TrainingSet) -> np.ndarray:
        landmarks = data.landmarks()
        chips = data.chips("dlib150")
        icao = icao_proxy(frontal_residual(landmarks), laplacian_variance(chips), exposure_error(chips),
                          eye_distance(landmarks))
        reference = reference_images(data.identities, icao)
        per_model = []
        for name in self.label_models.split("+"):
            emb = data.embeddings if name in ("deployed", data.model) else data.embeddings_of(name)
            ok = np.isfinite(emb).all(axis=1) & np.isfinite(emb[reference]).all(axis=1)
            labels = np.full(len(emb), np.nan)
            labels[ok] = reference_labels(np.where(ok[:, None], emb, 1.0), data.identities, reference)[ok]
            per_model.append(labels)
        return np.mean(per_model, axis=0)


@dataclass(frozen=True)
class FaceQnetV1Labels(FaceQnetLabels):
    """v1: the labels of several recognition models averaged (default: the deployed one and ``lbp``)."""

    method: ClassVar[str] = "faceqnet-v1"

    label_models: str = "deployed+lbp"


class FaceQnetV0(LearnedQualityMethod):
    """FaceQnet v0: regression of one model's score against an ICAO-proxy reference."""

    objective = FaceQnetLabels
    paper = PAPER_V0


class FaceQnetV1(LearnedQualityMethod):
    """FaceQnet v1: regression of several models' fused scores against an ICAO-proxy reference."""

    objective = FaceQnetV1Labels
    paper = PAPER_V1


register_learned(FaceQnetV0, "FaceQnet v0 (ICB 2019): score against an ICAO-proxy reference, regressed")
register_learned(FaceQnetV1, "FaceQnet v1 (2020): fused scores of several models against an ICAO-proxy reference")
