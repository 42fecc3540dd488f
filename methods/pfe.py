"""PFE: Probabilistic Face Embeddings (Shi and Jain, ICCV 2019).

Each image is a Gaussian ``N(mu, diag(sigma^2))`` in the embedding space:
``mu`` is the frozen recognition model's unit embedding, and an uncertainty
module learns ``log sigma^2`` from the model's backbone features:

    h = ReLU(BN(W_1 b)),   log sigma^2 = gamma * BN'(W_2 h) + beta

(FC-BN-ReLU-FC-BN, the second batch norm without its own scale and shift;
``gamma`` and ``beta`` are two scalars shared by all dimensions, started at
1e-4 and -7 as in the official code).  It is trained by maximising the
mutual likelihood score (paper Eq. 3, constant dropped) over mated pairs:

    s(x_i, x_j) = -1/2 sum_l [ (mu_i^l - mu_j^l)^2 / (sigma_i^2l + sigma_j^2l) + log(sigma_i^2l + sigma_j^2l) ]
    L = -mean_{(i, j) mated} s(x_i, x_j)

As a quality (the paper's Sec. 5.4 and SDD-FIQA's Table 1), the uncertainty
is summarised by the harmonic mean of the variances,

    sigma_hm^2 = D / sum_l 1 / sigma^2l        (native; lower = better; quality = -sigma_hm^2)

Batches hold ``batch_size / 4`` identities with four images each (fewer when
an identity has fewer), as the official code samples them; every mated
pair in a batch counts.  Differences: Adam at a constant 1e-3 (the official
code: SGD with momentum, 3,000 steps), and the head reads the backbone
output of the recognition model (dlib-resnet: its 256-d pooled features;
the paper: the last convolutional features of a 64-layer SphereFace net).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np
import torch
from torch import nn

from fiqa_bench.method.learned import HEADS, Fitted, LearnedQualityMethod, Objective, TrainingSet, register_learned
from fiqa_bench.method.training import Batch, TrainConfig, check_features, fit_module, new_log

PAPER = "Y. Shi, A. K. Jain, Probabilistic Face Embeddings, ICCV 2019"
IMAGES_PER_IDENTITY = 4


class UncertaintyHead(nn.Module):
    """Backbone features ``(N, F)`` -> ``log sigma^2`` ``(N, D)``; ``forward`` gives the harmonic mean of sigma^2."""

    def __init__(self, in_features: int, dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_features, dim, bias=False), nn.BatchNorm1d(dim), nn.ReLU(),
                                  nn.Linear(dim, dim, bias=False), nn.BatchNorm1d(dim, affine=False))
        self.gamma = nn.Parameter(torch.tensor([1e-4]))
        self.beta = nn.Parameter(torch.tensor([-7.0]))

    def log_sigma_sq(self, features: torch.Tensor) -> torch.Tensor:
        return self.gamma * self.body(features.flatten(1)) + self.beta

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        log_var = self.log_sigma_sq(features).double()
        return log_var.shape[1] / torch.exp(-log_var).sum(dim=1)


def mutual_likelihood_loss(mu: torch.Tensor, log_var: torch.Tensor, first: torch.Tensor,
                           second: torch.Tensor) -> torch.Tensor:
    """``-mean s(x_i, x_j)`` over the pairs ``(first[k], second[k])`` (paper Eq. 3 without its constant)."""
    var = torch.exp(log_var[first]) + torch.exp(log_var[second])
    return 0.5 * ((mu[first] - mu[second]) ** 2 / var + torch.log(var)).sum(dim=1).mean()


def identity_groups(identities: np.ndarray) -> list[np.ndarray]:
    """Row indices of each identity with at least two images, identities in sorted order."""
    _, index = np.unique(np.asarray(identities), return_inverse=True)
    order = np.argsort(index, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(index[order])) + 1)
    return [g for g in groups if len(g) >= 2]


def identity_batches(groups: list[np.ndarray], batch_size: int, generator: torch.Generator) -> list[np.ndarray]:
    """One epoch: the ``groups`` in random order, up to four random images of each, packed by ``batch_size``."""
    per_batch = max(1, batch_size // IMAGES_PER_IDENTITY)
    batches, current = [], []
    for k in torch.randperm(len(groups), generator=generator).tolist():
        members = groups[k][torch.randperm(len(groups[k]), generator=generator)[:IMAGES_PER_IDENTITY].numpy()]
        current.append(members)
        if len(current) == per_batch:
            batches.append(np.concatenate(current))
            current = []
    if current:  # the last, smaller batch (at least one identity, so at least one mated pair)
        batches.append(np.concatenate(current))
    return batches


@dataclass(frozen=True)
class MutualLikelihood(Objective):
    """PFE's uncertainty module trained with the mutual likelihood score (no settings of its own)."""

    method: ClassVar[str] = "pfe"
    needs_people: ClassVar[bool] = False  # mated pairs only: pseudo-identities serve
    config_defaults: ClassVar[Mapping[str, Any]] = {"features": "backbone", "batch_size": 256, "epochs": 100}

    def fit(self, data: TrainingSet, config: TrainConfig) -> Fitted:
        if config.mode != "head":
            raise ValueError("pfe trains its uncertainty module on frozen features only (mode=head)")
        x = check_features(data.features)
        mu = torch.nn.functional.normalize(torch.from_numpy(np.asarray(data.embeddings, np.float32)), dim=1)
        _, index = np.unique(data.identities, return_inverse=True)
        groups = identity_groups(data.identities)
        if len(groups) < 2:
            raise ValueError(f"{data.dataset.name}: pfe needs at least two identities with two or more images")
        same = torch.from_numpy(index)

        def batches(gen: torch.Generator) -> list[Batch]:
            out = []
            for rows in identity_batches(groups, config.batch_size, gen):
                rows_t = torch.from_numpy(rows)
                first, second = torch.triu_indices(len(rows), len(rows), offset=1)
                mated = same[rows_t][first] == same[rows_t][second]
                out.append((x[rows_t], mu[rows_t], first[mated], second[mated]))
            return out

        def loss(model: nn.Module, batch: Batch) -> torch.Tensor:
            features, means, first, second = batch
            return mutual_likelihood_loss(means, model.log_sigma_sq(features), first, second)

        torch.manual_seed(config.seed)
        head = UncertaintyHead(x.shape[1], mu.shape[1])
        log = new_log(config)
        fit_module(head, list(head.parameters()), batches, loss, config, log)
        n_used = int(sum(len(g) for g in groups))
        return Fitted(head, log, {"kind": "pfe", "in_features": int(x.shape[1]), "dim": int(mu.shape[1])},
                      {"n_labelled": n_used})


HEADS["pfe"] = lambda spec, meta: UncertaintyHead(spec["in_features"], spec["dim"])


class PFE(LearnedQualityMethod):
    """PFE's harmonic-mean variance from the uncertainty module (native lower = better)."""

    objective = MutualLikelihood
    paper = PAPER
    higher_is_better = False


register_learned(PFE, "PFE (ICCV 2019): harmonic mean of the learned embedding variance")
