"""The quality regression network of SDD-FIQA (Ou et al., CVPR 2021, Sec. 3.3).

A pre-trained recognition network loses its embedding layer; a dropout
(p = 0.5) and one fully connected layer with a single output are put on its
backbone, and the whole is trained to regress the 0-100 pseudo-labels with
the Huber loss (paper Eq. 12, zeta = 1)::

    L(x, Q) = 1/2 (phi(x) - Q)^2              if |phi(x) - Q| <= zeta
              zeta |phi(x) - Q| - zeta^2 / 2   otherwise

(``torch.nn.HuberLoss(delta=1)``; with zeta = 1 it equals SmoothL1 with
beta = 1, which the official code uses).

Optimiser, from the paper: Adam, weight decay 5e-4, learning rate 1e-3
dropping by a factor 5e-2 every 5 epochs (:data:`PAPER_SCHEDULE`).  The
official code (Tencent/TFace ``quality/``) differs: learning rate 1e-4,
multiplied by 0.1 at epochs 5 and 10 (:data:`OFFICIAL_SCHEDULE`).  The paper
does not give the number of epochs; 15 (three learning-rate stages) is the
default here.

Two training modes:

* ``head``: the backbone is frozen and its features are computed once; only
  a head is trained (under a minute on a CPU).  A frozen backbone cannot adapt, so
  this mode departs from the paper in three measured ways: the head reads
  the backbone's pooled *stage* features (the global average of every
  stage's output, concatenated: 736 values for dlib-resnet) rather than the
  last stage alone; it has one hidden layer (256 ReLU units, then dropout
  0.5 and the output unit) on standardised features; and it is the mean of
  five such heads trained from seeds ``seed ... seed + 4``
  (:class:`QualityEnsemble`).  Each head is trained with Adam at a constant
  learning rate 1e-3, weight decay 5e-4, for 30 epochs
  (:data:`HEAD_SCHEDULE`), since the paper's schedule, sized for MS1M
  (about 90,000 steps per epoch), all but stops learning after five epochs
  of LFW's ~100 steps.  The choice was made on label agreement with unseen
  identities (Spearman correlation of the predictions with the
  pseudo-labels of the other LFW View 1 split, cross-fitted), not on the
  EVRC that reports the result; ``benchmarks/sdd_regressor.py`` measures
  every variant (figures in BENCHMARKS.md).
* ``full``: backbone and head (the paper's dropout + one linear unit) are
  fine-tuned together with Adam and the chosen schedule (meant for a GPU;
  on this 2-core CPU an epoch of LFW peopleDevTrain takes about a minute).
  Measured once on LFW (random mirroring during training, prediction
  averaged with the mirrored chip): with the official schedule, label
  agreement 0.65 / 0.68 (devtrain / devtest images), no better than
  ``head``; with the paper's learning rate 1e-3 the loss stayed at that of
  a constant prediction for four epochs.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from fiqa_bench.method.adam import LeanAdam
from fiqa_bench.method.dropout_tape import taped_dropout
from fiqa_bench.recognition.base import TorchEmbeddingNet


@dataclass(frozen=True)
class Schedule:
    """A step learning-rate schedule for Adam.

    Attributes:
        lr: initial learning rate.
        gamma: the factor the rate is multiplied by at each drop.
        step_every: drop every this many epochs (0 = use ``milestones``).
        milestones: epochs (0-based) at which the rate drops.
        weight_decay: Adam's L2 weight decay.
    """

    lr: float
    gamma: float
    step_every: int = 0
    milestones: tuple[int, ...] = ()
    weight_decay: float = 5e-4

    def lr_at(self, epoch: int) -> float:
        """Learning rate during ``epoch`` (0-based)."""
        if self.step_every:
            drops = epoch // self.step_every
        else:
            drops = sum(epoch >= m for m in self.milestones)
        return self.lr * self.gamma**drops


PAPER_SCHEDULE = Schedule(lr=1e-3, gamma=5e-2, step_every=5)
OFFICIAL_SCHEDULE = Schedule(lr=1e-4, gamma=0.1, milestones=(5, 10))
HEAD_SCHEDULE = Schedule(lr=1e-3, gamma=1.0)
SCHEDULES = {"paper": PAPER_SCHEDULE, "official": OFFICIAL_SCHEDULE, "head": HEAD_SCHEDULE}


@dataclass(frozen=True)
class TrainConfig:
    """How to train the quality regressor.

    Attributes:
        mode: "head" (frozen backbone, cached features) or "full".
        epochs: passes over the training set (default: 30 for head, 15 for full).
        batch_size: samples per step.
        schedule: "head", "paper" or "official" (default: "head" for head
            mode, "paper" for full; see module docstring).
        hidden: hidden units of the head (default: 256 for head mode, 0 =
            the paper's single linear unit for full mode).
        ensemble: heads averaged (head mode only; default 5 there, 1 in full).
        features: what a head-mode head reads: "stages" (default; pooled
            stage outputs) or "backbone" (the backbone output); "chips" in
            full mode.
        huber_delta: zeta of Eq. 12.
        dropout: dropout probability before the output unit.
        seed: seed of initialisation, shuffling and dropout.
    """

    mode: str = "head"
    epochs: int | None = None
    batch_size: int = 64
    schedule: str | None = None
    hidden: int | None = None
    ensemble: int | None = None
    features: str | None = None
    huber_delta: float = 1.0
    dropout: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("head", "full"):
            raise ValueError(f"mode must be 'head' or 'full', got {self.mode!r}")
        head = self.mode == "head"
        for name, value in (("epochs", 30 if head else 15), ("schedule", "head" if head else "paper"),
                            ("hidden", 256 if head else 0), ("ensemble", 5 if head else 1),
                            ("features", "stages" if head else "chips")):
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.hidden < 0:
            raise ValueError(f"hidden must be >= 0, got {self.hidden}")
        if self.ensemble < 1 or (not head and self.ensemble != 1):
            raise ValueError(f"ensemble must be >= 1 in head mode and 1 in full mode, got {self.ensemble}")
        allowed = ("stages", "backbone") if head else ("chips",)
        if self.features not in allowed:
            raise ValueError(f"features must be one of {allowed} in {self.mode} mode, got {self.features!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {sorted(SCHEDULES)}, got {self.schedule!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")
        if not 0 <= self.dropout < 1 or self.huber_delta <= 0:
            raise ValueError(f"need 0 <= dropout < 1 and huber_delta > 0, got {self.dropout}, {self.huber_delta}")


ACTIVATIONS = ("none", "sigmoid")


class QualityHead(nn.Module):
    """Backbone features ``(N, F)`` -> qualities ``(N,)``.

    ``hidden == 0``: standardise, dropout, one linear unit (the paper's head).
    ``hidden > 0``: standardise, linear to ``hidden`` units, ReLU, dropout,
    one linear unit.  ``mean`` and ``scale`` (buffers, saved with the head)
    standardise the features; they are 0 and 1 unless set from training data.
    ``activation="sigmoid"`` squashes the output into (0, 1) (PCNet's
    confidences); ``"none"`` leaves it unbounded (a regression).
    """

    def __init__(self, in_features: int, dropout: float = 0.5, hidden: int = 0, activation: str = "none") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.activation = activation
        self.register_buffer("mean", torch.zeros(in_features))
        self.register_buffer("scale", torch.ones(in_features))
        layers: list[nn.Module] = [nn.Linear(in_features, hidden), nn.ReLU()] if hidden else []
        self.body = nn.Sequential(*layers, nn.Dropout(dropout))
        self.out = nn.Linear(hidden or in_features, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = (features.flatten(1) - self.mean) / self.scale
        y = self.out(self.body(x)).squeeze(1)
        return torch.sigmoid(y) if self.activation == "sigmoid" else y


class QualityEnsemble(nn.Module):
    """The mean of ``members`` :class:`QualityHead` s: ``q(f) = 1/M sum_j head_j(f)``.

    Averaging heads trained from different seeds lowers the variance of the
    prediction (see the module docstring).
    """

    def __init__(
        self, in_features: int, members: int = 1, dropout: float = 0.5, hidden: int = 0, activation: str = "none"
    ) -> None:
        super().__init__()
        if members < 1:
            raise ValueError(f"an ensemble needs at least one member, got {members}")
        self.members = nn.ModuleList(QualityHead(in_features, dropout, hidden, activation) for _ in range(members))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.stack([head(features) for head in self.members]).mean(dim=0)


class QualityRegressor(nn.Module):
    """A recognition backbone with a :class:`QualityHead`: uint8 chips -> quality."""

    def __init__(self, network: TorchEmbeddingNet, head: QualityHead) -> None:
        super().__init__()
        self.network = network
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.network.backbone(x))


@dataclass
class TrainLog:
    """Per-epoch training record: learning rate and mean Huber loss."""

    config: dict
    epochs: list[dict] = field(default_factory=list)

    def add(self, epoch: int, lr: float, loss: float, member: int = 0) -> None:
        if not math.isfinite(loss):
            raise FloatingPointError(f"training diverged: loss {loss} at epoch {epoch} (member {member})")
        self.epochs.append({"member": member, "epoch": epoch, "lr": lr, "loss": loss})


def _check_labels(labels: np.ndarray, n: int) -> torch.Tensor:
    labels = np.asarray(labels, dtype=np.float64)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    if not np.isfinite(labels).all():
        raise ValueError(f"{int((~np.isfinite(labels)).sum())} labels are not finite; drop unlabelled samples first")
    return torch.from_numpy(labels).float()


Batch = tuple[torch.Tensor, ...]
#: ``loss(model, batch) -> scalar``: what one training step minimises.
LossFn = Callable[[nn.Module, Batch], torch.Tensor]


def fit_module(
    model: nn.Module,
    parameters: list[nn.Parameter],
    batches: Callable[[torch.Generator], list[Batch]],
    loss: LossFn,
    config: TrainConfig,
    log: TrainLog,
    member: int = 0,
    progress: Callable[[int, float], None] | None = None,
    row_mean: bool = False,
) -> None:
    """Adam on ``parameters`` with ``config``'s schedule for ``config.epochs`` epochs, minimising ``loss``.

    ``batches(generator)`` returns one epoch's batches (shuffled from the
    generator, seeded ``config.seed + member``); the epoch's loss logged is
    the mean of the batch losses weighted by batch length.  This is the one
    training loop of every learned method (SDD-FIQA, FaceQnet, CR-FIQA,
    PCNet, PFE): a method supplies its batches and its loss.

    ``row_mean=True`` declares that ``loss(model, batch)`` is the mean over the
    batch's rows of a per-row loss of ``model(batch[0])`` (every tensor of a
    batch holding one row per sample).  Such a loss is trained data-parallel
    when a ``torch.distributed`` group of several processes is initialised
    (:func:`_fit_data_parallel`); any other loss is trained whole by every
    process (the same model everywhere, no speed-up).
    """
    from fiqa_bench.method.distributed import is_distributed

    if row_mean and is_distributed():
        _fit_data_parallel(model, parameters, batches, loss, config, log, member, progress)
        return
    for epoch, lr, optimiser, gen in _scheduled_epochs(parameters, config, member):
        model.train()
        total, count = 0.0, 0
        for batch in batches(gen):
            optimiser.zero_grad()
            value = loss(model, batch)
            value.backward()
            optimiser.step()
            total += float(value.detach()) * len(batch[0])
            count += len(batch[0])
        log.add(epoch, lr, total / count, member)
        if progress is not None:
            progress(epoch, total / count)
    model.eval()


def _scheduled_epochs(parameters: list[nn.Parameter], config: TrainConfig,
                      member: int) -> Iterator[tuple[int, float, LeanAdam, torch.Generator]]:
    """The schedule both training loops follow: per epoch ``(epoch, lr, optimiser, generator)``.

    One Adam on ``parameters`` (``config``'s schedule: learning rate and weight decay), its
    learning rate set to the epoch's before the epoch is handed out, and one batch-shuffling
    generator seeded ``config.seed + member`` for all epochs.
    """
    schedule = SCHEDULES[config.schedule]
    # torch.optim.Adam(foreach=True)'s arithmetic without its per-step Python bookkeeping: the same bits
    # (tested), a quarter of the optimiser's time saved; foreach itself runs the same per-tensor kernels as
    # torch's default loop on the CPU, so those steps too are the same bit for bit (tested)
    optimiser = LeanAdam(parameters, lr=schedule.lr, weight_decay=schedule.weight_decay)
    gen = torch.Generator().manual_seed(config.seed + member)
    for epoch in range(config.epochs):
        lr = schedule.lr_at(epoch)
        for group in optimiser.param_groups:
            group["lr"] = lr
        yield epoch, lr, optimiser, gen


def _fit_data_parallel(
    model: nn.Module,
    parameters: list[nn.Parameter],
    batches: Callable[[torch.Generator], list[Batch]],
    loss: LossFn,
    config: TrainConfig,
    log: TrainLog,
    member: int,
    progress: Callable[[int, float], None] | None,
) -> None:
    """:func:`fit_module` for a row-mean loss over the processes of the group (``DistributedDataParallel``).

    Every process draws the same epoch batches (the generator is seeded
    alike) and the same dropout masks for the whole batch
    (:func:`~fiqa_bench.method.distributed.sharded_dropout`), and takes the
    contiguous slice ``[lo, hi)`` of each batch that
    :func:`~fiqa_bench.method.distributed.shard_range` gives it.  Its loss is the
    slice's mean times ``(hi - lo) * world / n``, so the gradient DDP
    averages over the processes is the gradient of the mean over the whole
    batch: the step of one process, except for the order in which the
    per-sample gradients are summed (within each slice, then across
    processes).  A ``torch.utils.data.DistributedSampler`` is not used: it
    deals samples out round-robin and pads the last batch with repeats, so
    the steps would differ from one process's.  Adam, the schedule and
    weight decay act on identical gradients on every process, and DDP keeps
    the buffers equal (broadcast from process 0), so every process ends with
    the same model.  The logged loss is summed over the processes.

    Not reproduced: statistics computed per batch inside the model (a
    ``BatchNorm`` backbone in full mode sees only its slice).
    """
    from fiqa_bench.method.distributed import all_reduce_sum, current, data_parallel, shard_range, sharded_dropout

    rank, world = current()
    requires = [(p, p.requires_grad) for p in model.parameters()]
    try:
        with sharded_dropout(model) as dropouts:
            net = data_parallel(model, parameters)
            for epoch, lr, optimiser, gen in _scheduled_epochs(parameters, config, member):
                net.train()
                total, count = 0.0, 0  # this process's sum of per-sample losses; samples of the epoch
                for batch in batches(gen):
                    n = len(batch[0])
                    lo, hi = shard_range(n, rank, world, align=1)
                    local = tuple(t[lo:hi] for t in batch)
                    for d in dropouts:
                        d.rows = (n, lo, hi)
                    optimiser.zero_grad()
                    if hi > lo:
                        value = loss(net, local)
                        (value * ((hi - lo) * world / n)).backward()
                        total += float(value.detach()) * (hi - lo)
                    else:  # an empty slice of a short last batch: zero gradient, same collectives and draws
                        (net(local[0]).sum() * 0.0).backward()
                    optimiser.step()
                    count += n
                mean = float(all_reduce_sum(np.array([total]))[0]) / count
                log.add(epoch, lr, mean, member)
                if progress is not None:
                    progress(epoch, mean)
    finally:
        for p, flag in requires:
            p.requires_grad_(flag)
    model.eval()


def huber_loss(config: TrainConfig) -> LossFn:
    """Eq. 12 on ``(x, y)`` batches: ``HuberLoss(delta=zeta)(model(x), y)``."""
    huber = nn.HuberLoss(delta=config.huber_delta)
    return lambda model, batch: huber(model(batch[0]), batch[1])


def new_log(config: TrainConfig) -> TrainLog:
    """An empty training log recording ``config`` and its schedule's values."""
    return TrainLog(config=asdict(config) | {"schedule_values": asdict(SCHEDULES[config.schedule])})


def check_features(features: np.ndarray) -> torch.Tensor:
    """Finite ``(N, F)`` features as a float32 tensor; ValueError otherwise."""
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or len(features) == 0:
        raise ValueError(f"features must be a non-empty (N, F) array, got shape {features.shape}")
    if not np.isfinite(features).all():
        raise ValueError("features contain NaN or inf; drop failed images first")
    return torch.from_numpy(features)


def train_ensemble(
    x: torch.Tensor,
    config: TrainConfig,
    batches: Callable[[torch.Generator], list[Batch]],
    loss: LossFn,
    activation: str = "none",
    initial_output: float = 0.0,
    progress: Callable[[int, float], None] | None = None,
    row_mean: bool = False,
    tape_dropout: bool = False,
) -> tuple[QualityEnsemble, TrainLog]:
    """Train ``config.ensemble`` :class:`QualityHead` s on frozen features ``x`` with ``loss``.

    Member ``j`` is initialised, shuffled and dropped out from seed
    ``config.seed + j``.  Features are standardised with their training mean
    and deviation (stored in each head); each output bias starts at
    ``initial_output`` (before the activation).  ``row_mean``: see
    :func:`fit_module` (members are trained one after the other, each
    data-parallel under a process group; every process holds ``x`` whole).
    ``tape_dropout``: the caller promises that nothing but the heads' dropout
    draws from torch's default generator while a member trains, so the masks
    are recorded and replayed (:mod:`~fiqa_bench.method.dropout_tape`: the
    same masks, drawn once per process); ignored under a process group.
    """
    from fiqa_bench.method.distributed import is_distributed

    taping = tape_dropout and not is_distributed()
    ensemble = QualityEnsemble(x.shape[1], config.ensemble, config.dropout, config.hidden, activation)
    log = new_log(config)
    for member in range(config.ensemble):
        torch.manual_seed(config.seed + member)
        head = QualityHead(x.shape[1], config.dropout, config.hidden, activation)
        with torch.no_grad():
            head.mean.copy_(x.mean(0))
            head.scale.copy_(x.std(0).clamp_min(1e-6))
            head.out.bias.fill_(initial_output)
        with taped_dropout(head) if taping else nullcontext():
            fit_module(head, list(head.parameters()), batches, loss, config, log, member, progress, row_mean)
        ensemble.members[member] = head
    return ensemble.eval(), log


def train_head(
    features: np.ndarray,
    labels: np.ndarray,
    config: TrainConfig,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[QualityEnsemble, TrainLog]:
    """Regress ``labels`` from frozen features ``(N, F)`` with the Huber loss (mode "head").

    :func:`train_ensemble` with shuffled ``(x, y)`` batches; each output bias
    starts at the median label.  Data-parallel under a ``torch.distributed``
    group (:func:`fit_module`).  Its batches come from their own generator and
    its loss draws nothing, so the dropout masks are taped.
    """
    x = check_features(features)
    y = _check_labels(labels, len(x))

    def batches(gen: torch.Generator) -> list[Batch]:
        order = torch.randperm(len(x), generator=gen)
        return [(x[idx], y[idx]) for idx in order.split(config.batch_size)]

    return train_ensemble(x, config, batches, huber_loss(config), initial_output=float(y.median()),
                          progress=progress, row_mean=True, tape_dropout=True)


def train_full(
    network: TorchEmbeddingNet,
    chips: np.ndarray,
    labels: np.ndarray,
    config: TrainConfig,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[QualityRegressor, TrainLog]:
    """Fine-tune ``network``'s backbone with a new head on uint8 ``chips`` (mode "full").

    The embedding layer is left out; the backbone's weights change in place.
    """
    chips = np.asarray(chips)
    if chips.dtype != np.uint8 or chips.ndim != 4 or len(chips) == 0:
        raise ValueError(f"chips must be a non-empty (N, S, S, 3) uint8 array, got {chips.dtype} {chips.shape}")
    y = _check_labels(labels, len(chips))
    torch.manual_seed(config.seed)
    head = QualityHead(network.backbone_dim, config.dropout, config.hidden)
    model = QualityRegressor(network, head)
    raw = torch.from_numpy(chips)

    def batches(gen: torch.Generator) -> list[Batch]:
        order = torch.randperm(len(raw), generator=gen)
        return [(network.preprocess(raw[idx]), y[idx]) for idx in order.split(config.batch_size)]

    parameters = list(network.backbone.parameters()) + list(head.parameters())
    for p in parameters:
        p.requires_grad_(True)
    log = new_log(config)
    fit_module(model, parameters, batches, huber_loss(config), config, log, progress=progress, row_mean=True)
    return model, log


def predict_head(head: nn.Module, features: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Qualities ``(N,)`` float64 from backbone features; NaN rows stay NaN."""
    features = np.asarray(features, dtype=np.float32)
    out = np.full(len(features), np.nan)
    ok = np.isfinite(features).all(axis=1) if features.ndim == 2 else np.zeros(0, bool)
    head.eval()
    with torch.inference_mode():
        rows = np.flatnonzero(ok)
        for start in range(0, len(rows), batch_size):
            idx = rows[start : start + batch_size]
            out[idx] = head(torch.from_numpy(features[idx])).double().numpy()
    return out
