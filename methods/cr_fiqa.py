"""CR-FIQA: Certainty Ratio (Boutros, Fang, Klemt, Fu, Damer, CVPR 2023).

How well an image sits in its own identity's class, relative to the nearest
other class, is its quality.  With ``mu_c`` the centre of identity ``c``,
``y`` the image's identity and ``x`` its embedding, the paper's Eqs. 6-8:

    CCS(x)   = cos(x, mu_y)                         class centre similarity
    NNCCS(x) = max_{c != y} cos(x, mu_c)            nearest negative class centre similarity
    CR(x)    = CCS(x) / (NNCCS(x) + (1 + eps))      certainty ratio, eps = 1e-9

The label is ``100 CR``; a head on the frozen recognition model's features
learns to predict it (the paper trains the regression branch jointly with
the recognition network, with a smooth-L1 loss; here the shared head
machinery of :mod:`fiqa_bench.method.learned`, Huber loss).  The factor 100 puts
the label on the scale of SDD-FIQA's 0-100 labels, for which the head's
settings were chosen: on dlib-resnet CR itself varies by a standard
deviation of only 0.005 around 0.5, and at that scale the weight decay
outweighs the loss's gradient and the head learns little.  Higher = better.

**Centres.** In the paper ``mu_c`` are the class weights of the ArcFace
classification head being trained.  The recognition models here have no
classification head (dlib's was trained with a metric loss), so a centre is
the normalised mean of the identity's unit embeddings, the image itself
included, as a trained class weight also was fitted to it.  Identities with
a single image have no label (their centre is the image) but remain centres
for the others' NNCCS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from fiqa_bench.method.learned import LearnedQualityMethod, RegressionObjective, TrainingSet, register_learned

PAPER = ("F. Boutros, M. Fang, M. Klemt, B. Fu, N. Damer, CR-FIQA: Face Image Quality Assessment by Learning "
         "Sample Relative Classifiability, CVPR 2023")


def certainty_ratios(embeddings: np.ndarray, identities: np.ndarray, epsilon: float = 1e-9) -> np.ndarray:
    """``CCS / (NNCCS + 1 + eps)`` per image, ``(N,)`` float64, with identity-mean centres; NaN for singletons.

    Args:
        embeddings: ``(N, D)`` embeddings (normalised here).
        identities: ``(N,)`` labels; at least two identities.
        epsilon: the paper's eps.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(identities) or not np.isfinite(x).all():
        raise ValueError(f"embeddings must be a finite (N, D) array matching {len(identities)} identities")
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    names, index, counts = np.unique(np.asarray(identities), return_inverse=True, return_counts=True)
    if len(names) < 2:
        raise ValueError("CR-FIQA needs at least two identities (the nearest other centre)")
    centres = np.zeros((len(names), x.shape[1]))
    np.add.at(centres, index, x)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty(len(x))
    for start in range(0, len(x), 4096):
        rows = slice(start, start + 4096)
        cos = x[rows] @ centres.T
        own = index[rows]
        ccs = cos[np.arange(len(own)), own]
        cos[np.arange(len(own)), own] = -np.inf
        out[rows] = ccs / (cos.max(axis=1) + 1.0 + epsilon)
    out[counts[index] < 2] = np.nan
    return out


@dataclass(frozen=True)
class CertaintyRatio(RegressionObjective):
    """CR labels from identity-mean centres (settings: ``epsilon``)."""

    method: ClassVar[str] = "cr-fiqa"

    epsilon: float = 1e-9

    def labels(self, data: TrainingSet) -> np.ndarray:
        return 100 * certainty_ratios(data.embeddings, data.identities, self.epsilon)


class CRFIQA(LearnedQualityMethod):
    """CR-FIQA's regression of the certainty ratio, on the recognition model's frozen stage features."""

    objective = CertaintyRatio
    paper = PAPER


register_learned(CRFIQA, "CR-FIQA (CVPR 2023): regressed certainty ratio to identity-mean centres")
