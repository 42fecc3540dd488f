"""PCNet: quality whose product over a mated pair predicts the pair's similarity.

W. Xie, J. Byrne, A. Zisserman, "Inducing Predictive Uncertainty Estimation
for Face Recognition", BMVC 2020.  Each image ``x`` gets a confidence
``c(x)`` in (0, 1) (a sigmoid output), trained on mated pairs (two images of
one identity) so that the product of the two confidences regresses the
pair's similarity under the recognition model:

    L = mean_{(a, b) mated}  huber( 100 c(a) c(b) - 100 clip(cos(f_a, f_b), 0, 1) )

A pair is only as comparable as its worse image, and the product lets
either image pull the prediction down.  Per-image output: ``c(x)``, higher
= better.  There is no public code; what is particular here: the head is
the shared ensemble on the recognition model's frozen stage features
(:mod:`fiqa_bench.method.learned`) with a sigmoid output; each epoch pairs every
image of an identity with two or more images with one of its mates drawn at
random (so every image is seen once per epoch, and large identities do not
dominate as they would with all pairs); the Huber loss with delta 1 on
similarities in percent, the scale of SDD-FIQA's labels for which the head's
settings were chosen (on [0, 1] the loss's gradient is so small that the
weight decay outweighs it and the head does not learn: measured on LFW).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from fiqa_bench.method.learned import Fitted, LearnedQualityMethod, Objective, TrainingSet, regression_spec, register_learned
from fiqa_bench.method.training import Batch, TrainConfig, check_features, train_ensemble

PAPER = "W. Xie, J. Byrne, A. Zisserman, Inducing Predictive Uncertainty Estimation for Face Recognition, BMVC 2020"


def random_mates(identities: np.ndarray, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)``: every image ``a`` of an identity with >= 2 images, and a uniformly drawn other image ``b`` of it."""
    identities = np.asarray(identities)
    _, index, counts = np.unique(identities, return_inverse=True, return_counts=True)
    order = np.argsort(index, kind="stable")  # images grouped by identity
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.empty(len(order), np.int64)
    position[order] = np.arange(len(order)) - start[index[order]]
    a = np.flatnonzero(counts[index] >= 2)
    n = counts[index[a]]
    offset = (torch.rand(len(a), generator=generator, dtype=torch.float64).numpy() * (n - 1)).astype(np.int64)
    b = order[start[index[a]] + (position[a] + 1 + offset) % n]
    return a, b


@dataclass(frozen=True)
class MatedPairSimilarity(Objective):
    """Confidences whose product regresses mated-pair similarity (no settings of its own)."""

    method: ClassVar[str] = "pcnet"
    needs_people: ClassVar[bool] = False  # mated pairs only: pseudo-identities serve

    def fit(self, data: TrainingSet, config: TrainConfig) -> Fitted:
        if config.mode != "head":
            raise ValueError("pcnet trains a head on frozen features only (mode=head)")
        x = check_features(data.features)
        unit = torch.nn.functional.normalize(torch.from_numpy(np.asarray(data.embeddings, np.float64)), dim=1)
        a, b = random_mates(data.identities, torch.Generator().manual_seed(config.seed))
        if len(a) < 2:
            raise ValueError(f"{data.dataset.name}: pcnet needs identities with at least two images")
        huber = torch.nn.HuberLoss(delta=config.huber_delta)

        def batches(gen: torch.Generator) -> list[Batch]:
            a, b = random_mates(data.identities, gen)
            target = (unit[a] * unit[b]).sum(dim=1).clamp(0, 1).float()
            order = torch.randperm(len(a), generator=gen)
            return [(x[a[idx]], x[b[idx]], target[idx]) for idx in order.split(config.batch_size)]

        def loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
            xa, xb, target = batch
            return huber(100 * model(xa) * model(xb), 100 * target)

        median = float((unit[a] * unit[b]).sum(dim=1).clamp(1e-3, 1 - 1e-3).median())
        start = float(np.log(np.sqrt(median) / (1 - np.sqrt(median))))  # sigmoid(start)^2 = median similarity
        head, log = train_ensemble(x, config, batches, loss, activation="sigmoid", initial_output=start)
        return Fitted(head, log, regression_spec(x.shape[1], config, activation="sigmoid"),
                      {"n_labelled": int(len(a)), "n_pairs_per_epoch": int(len(a))})


class PCNet(LearnedQualityMethod):
    """PCNet's confidence c(x) in (0, 1), on the recognition model's frozen stage features."""

    objective = MatedPairSimilarity
    paper = PAPER


register_learned(PCNet, "PCNet (BMVC 2020): confidences whose product predicts mated-pair similarity")
