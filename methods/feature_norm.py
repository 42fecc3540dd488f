"""Feature norm: the length of the recognition model's unnormalised embedding.

    q(x) = || W b(x) ||_2

with ``b(x)`` the backbone output and ``W`` the embedding layer (for
dlib-resnet the 256 -> 128 projection without bias; for IResNet dropout, fc
and the last batch norm).  Models trained with magnitude-aware margin losses
(MagFace, Meng et al., CVPR 2021; AdaFace, Kim et al., CVPR 2022) make this
norm grow with recognisability; on a model not trained that way (dlib's
metric-learning ResNet) it is a free but weak baseline.  Higher = better.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fiqa_bench.method import METHODS, MethodCard, QualityMethod
from fiqa_bench.recognition import create_torch_model


class FeatureNorm(QualityMethod):
    """Euclidean norm of the embedding before L2 normalisation (higher = better).

    Args:
        model: the recognition model whose embedding is measured (a name, or ``NAME@CHECKPOINT``).
    """

    def __init__(self, model: str = "dlib-resnet") -> None:
        self.model = create_torch_model(model, "feature-norm")
        self.card = MethodCard(name="feature-norm", paper="Q. Meng et al., MagFace, CVPR 2021 (the norm as "
                               "quality); M. Kim et al., AdaFace, CVPR 2022", higher_is_better=True,
                               needs=f"backbone:{self.model.reference}", trained=False,
                               weights=f"those of {self.model.card.name}")

    def fingerprint_parts(self) -> dict[str, Any]:
        return {"model": self.model.fingerprint()}

    def native_score(self, features: np.ndarray) -> np.ndarray:
        network = self.model.network
        out = np.empty(len(features))
        with torch.inference_mode():
            for start in range(0, len(features), 4096):
                x = torch.from_numpy(np.ascontiguousarray(features[start : start + 4096], dtype=np.float32))
                out[start : start + 4096] = torch.linalg.vector_norm(network.embedding(x).double(), dim=1).numpy()
        return out


METHODS.add("feature-norm", FeatureNorm, description="norm of the unnormalised embedding (MagFace/AdaFace idea)")
