"""SER-FIQ: quality from the robustness of stochastic embeddings (Terhörst et al., CVPR 2020).

``T`` stochastic embeddings of one image are drawn by keeping dropout
(probability ``p``) active in the layers after the backbone; with
``x_1 ... x_T`` the L2-normalised embeddings,

    q(I) = 2 * sigmoid( -2 / (T (T - 1)) * sum_{i<j} || x_i - x_j ||_2 )

the mean Euclidean distance over the ``T (T - 1) / 2`` distinct pairs, as
the official code computes it (the upper triangle of the distance matrix,
diagonal excluded); its optional final rescaling
``1 / (1 + exp(-alpha (q - r)))`` is monotone and left out.  Defaults as the
paper: ``T = 100``, ``p = 0.5``.  Higher = more robust = better.

Only the layers after the dropout are repeated: the backbone output ``b``
is computed once (and cached), and each pass is ``W (m_t * b) / (1 - p)``
with a Bernoulli mask ``m_t``, so ``T = 100`` costs little beyond one plain
embedding (BENCHMARKS.md).  The official code reruns the whole network; the
distribution of the embeddings is the same.

**On dlib-resnet** (which was trained without dropout), the dropout is put
on the 256-d pooled backbone output, just before the final 256 -> 128
projection, the only layer after the backbone.  On IResNet it is where
arcface_torch has its own dropout, before ``fc``.

The ``T`` masks are drawn once from ``seed`` and shared by every image (common
random numbers): an image's quality does not depend on which other images
are scored with it or in which order, and a rerun gives the same values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fiqa_bench.method import METHODS, MethodCard, QualityMethod
from fiqa_bench.recognition import create_torch_model

PAPER = ("P. Terhörst et al., SER-FIQ: Unsupervised Estimation of Face Image Quality Based on Stochastic "
         "Embedding Robustness, CVPR 2020")


def stochastic_robustness(embeddings: torch.Tensor) -> torch.Tensor:
    """``2 sigmoid(-mean_{i<j} ||x_i - x_j||)`` per image for ``(T, N, D)`` unit embeddings -> ``(N,)`` float64."""
    t = embeddings.shape[0]
    x = embeddings.double().transpose(0, 1).contiguous()  # (N, T, D)
    # ||x_i - x_j||^2 = ||x_i||^2 + ||x_j||^2 - 2 <x_i, x_j> from one batched float64 product (twice as fast
    # as differencing every pair).  The square is exact to ~1e-16, so a distance to ~1e-8 at worst, far
    # below the distance between two dropout passes (at least 0.77 on 256 LFW images at p = 0.5; qualities
    # within 3.4e-16 of the differencing), and identical passes give ~1e-8 instead of 0.
    gram = torch.bmm(x, x.transpose(1, 2))
    norms = torch.diagonal(gram, dim1=1, dim2=2)
    distances = (norms[:, :, None] + norms[:, None, :] - 2.0 * gram).clamp_min(0.0).sqrt()
    mean_distance = distances.sum(dim=(1, 2)) / (t * (t - 1))
    return 2.0 * torch.sigmoid(-mean_distance)


class SERFIQ(QualityMethod):
    """Stochastic embedding robustness: T dropout passes through the layers after the backbone.

    Args:
        model: the recognition model (a PyTorch one; a name, or ``NAME@CHECKPOINT``).
        passes: T, the number of stochastic embeddings per image.
        dropout: p, the dropout probability.
        seed: seed of the T dropout masks.
    """

    def __init__(self, model: str = "dlib-resnet", passes: int = 100, dropout: float = 0.5, seed: int = 0) -> None:
        if passes < 2:
            raise ValueError(f"serfiq: passes must be >= 2, got {passes}")
        if not 0.0 < dropout < 1.0:
            raise ValueError(f"serfiq: dropout must be in (0, 1), got {dropout}")
        self.model = create_torch_model(model, "serfiq")
        self.passes, self.dropout, self.seed = int(passes), float(dropout), int(seed)
        generator = torch.Generator().manual_seed(self.seed)
        width = self.model.network.backbone_dim
        keep = torch.rand((self.passes, width), generator=generator) >= self.dropout
        self.masks = keep.float() / (1.0 - self.dropout)
        self.card = MethodCard(name="serfiq", paper=PAPER, higher_is_better=True,
                               needs=f"backbone:{self.model.reference}", trained=False,
                               weights=f"those of {self.model.card.name}; dropout p={self.dropout} before the "
                               f"final projection, T={self.passes}")

    def fingerprint_parts(self) -> dict[str, Any]:
        return {"model": self.model.fingerprint(), "passes": self.passes, "dropout": self.dropout, "seed": self.seed}

    def native_score(self, features: np.ndarray, batch_size: int = 256) -> np.ndarray:
        network = self.model.network
        out = np.empty(len(features))
        with torch.inference_mode():
            for start in range(0, len(features), batch_size):
                b = torch.from_numpy(np.ascontiguousarray(features[start : start + batch_size], dtype=np.float32))
                stochastic = self.masks[:, None, :] * b[None, :, :]  # (T, n, F)
                emb = network.embedding(stochastic.flatten(0, 1)).unflatten(0, (self.passes, len(b)))
                emb = torch.nn.functional.normalize(emb, dim=2)
                out[start : start + batch_size] = stochastic_robustness(emb).numpy()
        return out


METHODS.add("serfiq", SERFIQ, aliases=("ser-fiq",),
            description="SER-FIQ (CVPR 2020): robustness of T=100 dropout embeddings after the backbone")
