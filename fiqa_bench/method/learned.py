"""Learned quality methods: what to learn from a recognition model, a head that learns it, checkpoints.

SDD-FIQA, FaceQnet, CR-FIQA, PCNet and PFE all learn the same way here:

1. the recognition model embeds the training images (cached, :mod:`fiqa_bench.pipeline.embedding`);
2. the method's :class:`Objective` turns the embeddings and identities into
   what it learns from: per-image labels (:class:`RegressionObjective`,
   fitted with the Huber loss of SDD-FIQA Eq. 12), or its own batches and
   loss (PCNet's mated pairs, PFE's mutual likelihood);
3. a head on the model's frozen features (pooled stage outputs by default;
   see :mod:`fiqa_bench.method.training` for why) is fitted by the one
   training loop, :func:`~fiqa_bench.method.training.fit_module`;
4. the head is written with its meta, and beside it a JSON record with its
   sha256, the training log and the command that reproduces it.

A method file holds only what is particular to it: its objective and, when
its head is not the regression ensemble, how that head is built
(:data:`HEADS`).  Loading checkpoints, the shipped cross-fitted models'
names, ``fiqa-bench train --method M`` and the score interface come from
:class:`LearnedQualityMethod` and :func:`register_learned`.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import os
import re
import shutil
import uuid
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.data import Dataset, DatasetError
from fiqa_bench.pipeline.hashing import sha256_file, sha256_json
from fiqa_bench.method import METHODS, TRAINERS, MethodCard, QualityMethod, constructor_settings
from fiqa_bench.pipeline.embedding import dataset_chips, dataset_landmarks, embed_dataset
from fiqa_bench.method.training import (
    QualityEnsemble,
    QualityHead,
    QualityRegressor,
    TrainConfig,
    TrainLog,
    predict_head,
    train_full,
    train_head,
)
from fiqa_bench.report.provenance import provenance

CHECKPOINT_FORMAT = 2
DEFAULT_TRAINED_ON = "lfw:devtrain"
#: The training-set specs a shipped checkpoint can be named by: ``KIND`` or ``KIND:SPLIT`` in plain characters
#: (``lfw:devtrain``); a path (``folder:/data/x``) never names one.
SHIPPABLE_SPEC = re.compile(r"[A-Za-z0-9_-]+(:[A-Za-z0-9_-]+)?")


def weights_dir() -> Path:
    """``methods/weights/``: where the shipped checkpoints live (installed as ``fiqa_bench/methods/weights``)."""
    return Path(importlib.import_module("fiqa_bench.methods").__file__).resolve().parent / "weights"


def shipped_checkpoint(stem: str, trained_on: str, model: str = "dlib-resnet", mode: str = "head") -> Path:
    """``methods/weights/<stem>-<model>-<mode>-<trained_on>.pt``, e.g. ``sdd-dlib-resnet-head-lfw-devtrain.pt``.

    Raises:
        ValueError: ``trained_on`` is not a plain ``KIND[:SPLIT]`` (:data:`SHIPPABLE_SPEC`): no shipped model
            is named by a path.
    """
    if not SHIPPABLE_SPEC.fullmatch(trained_on):
        raise ValueError(f"no model is shipped trained on {trained_on!r}: shipped models are named by a dataset "
                         f"and split ({DEFAULT_TRAINED_ON}); train one on it with 'fiqa-bench train'")
    return weights_dir() / f"{stem}-{model}-{mode}-{trained_on.replace(':', '-')}.pt"


# --- what an objective learns from -------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingSet:
    """The usable images of a training dataset, as an objective sees them.

    Attributes:
        dataset: the whole dataset.
        rows: indices into ``dataset`` of the images used (those the recognition model embedded).
        embeddings: ``(n, D)`` unit embeddings of those images by ``model``.
        identities: ``(n,)`` their identities.
        features: ``(n, F)`` what the head reads (stage or backbone features), or
            ``(n, S, S, 3)`` uint8 chips in full mode.
        model: the recognition model's registry name.
        context: the run context (for objectives that need more inputs).
        n_failed: images of the dataset left out because they could not be embedded.
    """

    dataset: Dataset
    rows: np.ndarray
    embeddings: np.ndarray
    identities: np.ndarray
    features: np.ndarray
    model: str
    context: RunContext
    n_failed: int

    def embeddings_of(self, model: str) -> np.ndarray:
        """``(n, D')`` unit embeddings of the same images by another registered model (NaN where it failed)."""
        return embed_dataset(self.dataset, self.context.model(model), self.context).embeddings[self.rows]

    def landmarks(self) -> np.ndarray:
        """``(n, 5, 2)`` dlib landmarks of the images, in image pixels."""
        return dataset_landmarks(self.dataset, self.context)[0][self.rows]

    def chips(self, template: str) -> np.ndarray:
        """``(n, S, S, 3)`` uint8 aligned chips of the images."""
        return dataset_chips(self.dataset, template, self.context)[0][self.rows]


@dataclass(frozen=True)
class Fitted:
    """A trained head, its log, how to rebuild it (``spec``) and label statistics for the record."""

    head: nn.Module
    log: TrainLog
    spec: dict
    stats: dict


class Objective(ABC):
    """What a learned method learns; subclasses are frozen dataclasses whose fields are its settings.

    Class attributes:
        method: the registry name of the method.
        config_defaults: training settings it prefers over :class:`TrainConfig`'s
            defaults in head mode (e.g. PFE reads ``features="backbone"``).
        selectors: the settings that choose among shipped checkpoints (part of ``stem``).
        needs_people: whether it takes two images of different identities for two different people
            (SDD's negatives, CR-FIQA's nearest other class centre).  Such an objective cannot train on
            pseudo-identities (:attr:`fiqa_bench.data.Dataset.has_identities` False: a ``.bin`` file's
            components of genuine pairs, where one person may be several identities);
            one that compares only images of one identity (PCNet's and PFE's mated pairs, FaceQnet's
            reference) can, and says so with False.  True by default: the safe assumption.
    """

    method: ClassVar[str]
    config_defaults: ClassVar[Mapping[str, Any]] = {}
    selectors: ClassVar[tuple[str, ...]] = ()
    needs_people: ClassVar[bool] = True

    @property
    def stem(self) -> str:
        """First part of the shipped checkpoint's name: the method, then any non-default selector."""
        parts = [self.method]
        defaults = type(self)()
        parts += [str(getattr(self, k)) for k in self.selectors if getattr(self, k) != getattr(defaults, k)]
        return "-".join(parts)

    def settings(self) -> dict:
        """The settings as recorded in the checkpoint."""
        return asdict(self) if dataclasses.is_dataclass(self) else {}

    @abstractmethod
    def fit(self, data: TrainingSet, config: TrainConfig) -> Fitted:
        """Train a head on ``data`` (see :class:`RegressionObjective` for the common case)."""


def regression_spec(in_features: int, config: TrainConfig, activation: str = "none") -> dict:
    """How to rebuild a :class:`QualityEnsemble` (head mode) or a :class:`QualityRegressor` (full mode)."""
    return {"kind": "regression", "in_features": int(in_features), "hidden": int(config.hidden),
            "ensemble": int(config.ensemble), "dropout": float(config.dropout), "activation": activation}


class RegressionObjective(Objective):
    """Per-image labels, regressed with the Huber loss (SDD-FIQA Eq. 12) by the head ensemble."""

    @abstractmethod
    def labels(self, data: TrainingSet) -> np.ndarray:
        """``(n,)`` float64 label per image of ``data``; NaN = no label (left out of training)."""

    def fit(self, data: TrainingSet, config: TrainConfig) -> Fitted:
        target = np.asarray(self.labels(data), dtype=np.float64)
        if target.shape != (len(data.rows),):
            raise RuntimeError(f"{self.method}: labels have shape {target.shape}, expected ({len(data.rows)},)")
        use = np.isfinite(target)
        if use.sum() < 2:
            raise ValueError(f"{data.dataset.name}: only {int(use.sum())} images have a {self.method} label; "
                             "it needs identities with at least two images")
        if config.mode == "head":
            head, log = train_head(data.features[use], target[use], config)
            spec = regression_spec(data.features.shape[1], config)
        else:
            network = copy.deepcopy(data.context.model(data.model).network)  # fine-tuned: its own copy
            head, log = train_full(network, data.features[use], target[use], config)
            spec = regression_spec(network.backbone_dim, config)
        stats = {"n_labelled": int(use.sum()),
                 "label_stats": {"mean": float(np.mean(target[use])), "std": float(np.std(target[use]))}}
        return Fitted(head, log, spec, stats)


# --- heads -------------------------------------------------------------------------------------------

#: Head builders by ``spec["kind"]``: ``builder(spec, meta) -> nn.Module`` mapping features to native scores.
HEADS: dict[str, Callable[[dict, dict], nn.Module]] = {}


def _regression_head(spec: dict, meta: dict) -> nn.Module:
    if meta["mode"] == "head":
        return QualityEnsemble(spec["in_features"], spec["ensemble"], spec["dropout"], spec["hidden"],
                               spec.get("activation", "none"))
    from fiqa_bench.recognition import create_model

    return QualityRegressor(copy.deepcopy(create_model(meta.get("model_reference", meta["model"])).network),
                            QualityHead(spec["in_features"], spec["dropout"], spec["hidden"]))


HEADS["regression"] = _regression_head


def head_spec(meta: dict) -> dict:
    """The head's spec; checkpoints written before specs existed (SDD's) describe it in ``meta``."""
    if "head" in meta:
        return meta["head"]
    return {"kind": "regression", "in_features": meta["in_features"], "hidden": meta["hidden"],
            "ensemble": meta["ensemble"], "dropout": meta["dropout"], "activation": "none"}


# --- the method ----------------------------------------------------------------------------------------


def check_against_record(checkpoint: Path, digest: str) -> None:
    """Refuse a checkpoint whose training record (the ``.json`` beside it, written with it by
    :func:`train_method`; every shipped model has one) names another sha256: the file was damaged,
    truncated or replaced after training.  A checkpoint without a record is taken as it is."""
    record = checkpoint.with_suffix(".json")
    if not record.is_file():
        return
    try:
        expected = json.loads(record.read_text()).get("sha256")
    except (json.JSONDecodeError, AttributeError):
        raise ValueError(f"{record} (the training record of {checkpoint.name}) is not readable JSON") from None
    if expected and expected != digest:
        raise ValueError(f"{checkpoint}: sha256 {digest[:16]}... differs from {expected[:16]}... in its training "
                         f"record {record.name}: the file was changed after training (damaged or replaced); "
                         f"restore it (git checkout / reinstall) or retrain")


class LearnedQualityMethod(QualityMethod):
    """A learned method loaded from its checkpoint; subclasses name their :class:`Objective`.

    Class attributes:
        objective: the objective class (its fields are the training settings).
        paper: citation for the card.
        higher_is_better: whether the head's output grows with quality.
    """

    objective: ClassVar[type[Objective]]
    paper: ClassVar[str]
    higher_is_better: ClassVar[bool] = True

    def __init__(self, checkpoint: Path) -> None:
        checkpoint = Path(checkpoint)
        name = self.objective.method
        if not checkpoint.is_file():
            raise FileNotFoundError(f"{name} checkpoint {checkpoint} does not exist")
        self._digest = sha256_file(checkpoint)
        check_against_record(checkpoint, self._digest)
        try:  # weights_only: tensors and plain containers, never code (a checkpoint may come from anyone)
            payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unpickling failure is the same user error
            raise ValueError(f"{checkpoint} is not a readable {name} checkpoint: {err}") from None
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{checkpoint} is not a fiqa-bench checkpoint of format {CHECKPOINT_FORMAT}")
        self.meta: dict = payload["meta"]
        trained_for = self.meta.get("method", "sdd")
        if trained_for != name:
            raise ValueError(f"{checkpoint} holds a {trained_for} model, not a {name} one")
        spec = head_spec(self.meta)
        self.head = HEADS[spec["kind"]](spec, self.meta)
        self.head.load_state_dict(payload["state_dict"])
        self.head.eval()
        model = self.meta.get("model_reference", self.meta["model"])  # NAME@CHECKPOINT for a user's weights
        needs = f"{self.meta['features']}:{model}" if self.meta["mode"] == "head" else f"chips:{self.meta['template']}"
        self.card = MethodCard(name=name, paper=self.paper, higher_is_better=self.higher_is_better, needs=needs,
                               trained=True, weights=str(checkpoint), weights_sha256=self._digest)

    @classmethod
    def create(
        cls,
        weights: Path | None = None,
        trained_on: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> LearnedQualityMethod:
        """A checkpoint (``weights``), or the shipped model trained on ``trained_on`` (default
        ``lfw:devtrain``) for the recognition model ``model`` (setting, default dlib-resnet) and the
        objective's selectors (e.g. SDD's ``variant``)."""
        settings = dict(settings or {})
        model = str(settings.pop("model", "dlib-resnet"))
        known = cls.setting_names()
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise ValueError(f"method {cls.objective.method!r} has no setting {', '.join(unknown)}; "
                             f"its settings: {', '.join(known)}")
        objective = cls.objective(**constructor_settings(cls.objective, settings))
        if weights is not None and trained_on is not None:
            raise ValueError("give either weights (a checkpoint) or trained_on (a shipped model), not both")
        if weights is not None:
            return cls(weights)
        if "@" not in model:  # an alias (dlib) names the same shipped files as the model's name
            from fiqa_bench.recognition import canonical_model_name

            model = canonical_model_name(model)
        path = shipped_checkpoint(objective.stem, trained_on or DEFAULT_TRAINED_ON, model)
        if not path.is_file():
            shipped = sorted(p.name for p in weights_dir().glob(f"{cls.objective.method}-*.pt"))
            raise FileNotFoundError(f"no shipped {objective.method} model {path.name}; shipped: {shipped or 'none'}; "
                                    f"train one with 'fiqa-bench train --method {objective.method} --model {model}'")
        return cls(path)

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        return ("model", *cls.objective.selectors)

    def fingerprint_parts(self) -> dict[str, Any]:
        return {"checkpoint": self._digest}

    def native_score(self, inputs: np.ndarray) -> np.ndarray:
        """The head's output for each sample (float64; NaN rows stay NaN)."""
        if self.meta["mode"] == "head":
            return predict_head(self.head, inputs)
        out = np.empty(len(inputs))
        network = self.head.network
        with torch.inference_mode():
            for start in range(0, len(inputs), 64):
                x = network.preprocess(torch.from_numpy(np.ascontiguousarray(inputs[start : start + 64])))
                out[start : start + 64] = self.head(x).double().numpy()
        return out


# --- training ------------------------------------------------------------------------------------------


def training_set(dataset: Dataset, model_name: str, context: RunContext, features: str) -> TrainingSet:
    """The embeddings and head inputs of every image of ``dataset`` that ``model_name`` could embed.

    Under a ``torch.distributed`` group the images are embedded by all processes together
    (:func:`~fiqa_bench.method.distributed.embed_dataset_distributed`, bit for bit the one-process result).
    """
    from fiqa_bench.method.distributed import embed_dataset_distributed

    model = context.model(model_name)
    emb = embed_dataset_distributed(dataset, model, context)
    rows = np.flatnonzero(~emb.failed)
    if features == "chips":
        inputs = dataset_chips(dataset, model.card.template, context)[0][rows]
    else:
        inputs = embed_dataset_distributed(dataset, model, context, output=features).embeddings[rows]
    return TrainingSet(dataset=dataset, rows=rows, embeddings=emb.embeddings[rows],
                       identities=emb.identities[rows], features=inputs, model=model_name, context=context,
                       n_failed=int(emb.failed.sum()))


def check_trainable(objective: Objective, dataset: Dataset) -> None:
    """Refuse a training set ``objective`` cannot learn from, before anything is embedded.

    Every objective compares images of one identity, so some identity needs two or more images; one
    that :attr:`~Objective.needs_people` also needs identities that name people.

    Raises:
        DatasetError: naming the dataset, the method and what is missing.
    """
    counts: dict[str, int] = {}
    for identity in dataset.identities:
        counts[identity] = counts.get(identity, 0) + 1
    if not any(n >= 2 for n in counts.values()):
        raise DatasetError(f"{objective.method} cannot train on {dataset.name}: none of its {len(counts)} "
                           f"identities has two or more images, and the method learns from images of one "
                           f"identity compared")
    if objective.needs_people and not dataset.has_identities:
        raise DatasetError(f"{objective.method} cannot train on {dataset.name}: its identities are "
                           f"pseudo-identities (one person may be several of them), and {objective.method} "
                           f"takes images of different identities for different people; train it on a dataset "
                           f"whose identities name people, or train a method that compares only images of one "
                           f"identity ({', '.join(_pseudo_identity_methods()) or 'none is registered'})")


def _pseudo_identity_methods() -> list[str]:
    """The registered learned methods whose objective trains on pseudo-identities (``needs_people`` False)."""
    names = []
    for name in METHODS.names():
        cls = METHODS.get(name)
        if isinstance(cls, type) and issubclass(cls, LearnedQualityMethod) and not cls.objective.needs_people:
            names.append(name)
    return names


def train_method(
    objective: Objective, dataset: Dataset, model_name: str, context: RunContext, out: Path,
    config: TrainConfig = TrainConfig(),
) -> dict:
    """Train ``objective`` on ``dataset`` with ``model_name``; write the checkpoint ``out`` and its ``.json``.

    Returns the training record (what the ``.json`` holds).  Under a ``torch.distributed`` group of
    several processes (``torchrun``) every process trains (embeddings, labels and the regression are
    shared out, :mod:`fiqa_bench.method.distributed`), process 0 alone writes the files (the record then
    holds ``world_size``), and every process returns its record.

    Raises:
        DatasetError: ``objective`` cannot train on ``dataset`` (:func:`check_trainable`).
    """
    check_trainable(objective, dataset)
    model = context.model(model_name)
    data = training_set(dataset, model_name, context, config.features)
    fitted = objective.fit(data, config)
    meta = {
        "method": objective.method,
        "mode": config.mode,
        "model": model.card.name,
        **({"model_reference": model.reference} if "@" in model.reference else {}),
        "model_fingerprint": model.fingerprint(),
        "template": model.card.template,
        "features": config.features,
        "head": fitted.spec,
        # The spec's fields, flat, as SDD's first checkpoints recorded them.
        "in_features": fitted.spec.get("in_features"),
        "hidden": fitted.spec.get("hidden"),
        "ensemble": fitted.spec.get("ensemble"),
        "dropout": fitted.spec.get("dropout"),
        "trained_on": dataset.name,
        "n_images": len(dataset),
        "n_failed_images": data.n_failed,
        "labels": objective.settings(),
        **fitted.stats,
        "alignment_digest": context.alignment.digest(),
    }
    from fiqa_bench.method.distributed import barrier, broadcast_object, current

    rank, world = current()
    if world > 1:
        meta["world_size"] = world
    if rank != 0:
        barrier()
        return broadcast_object(None)
    stamp = provenance()  # before writing: a checkpoint inside the work tree would mark it dirty
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": CHECKPOINT_FORMAT, "meta": meta, "state_dict": fitted.head.state_dict()}, out)
    record = {"checkpoint": out.name, "sha256": sha256_file(out), **meta,
              "train_log": dataclasses.asdict(fitted.log), "provenance": stamp}
    out.with_suffix(".json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    if world > 1:
        barrier()
        broadcast_object(record)
    return record


_CONFIG_INTS = ("epochs", "seed", "batch_size", "hidden", "ensemble")
_CONFIG_TEXTS = ("mode", "schedule", "features")


def train_from_options(
    method: type[LearnedQualityMethod], dataset: Dataset, model_name: str, context: RunContext, out: Path,
    options: Mapping[str, str],
) -> dict:
    """:func:`train_method` with ``fiqa-bench train`` options: the training settings of
    :class:`~fiqa_bench.method.training.TrainConfig` (mode, epochs, schedule, seed, batch_size, hidden,
    ensemble, features) and the objective's own (its dataclass fields)."""
    options = dict(options)
    own = [f.name for f in dataclasses.fields(method.objective)]
    unknown = sorted(set(options) - set(own) - set(_CONFIG_INTS) - set(_CONFIG_TEXTS))
    if unknown:
        raise ValueError(f"unknown {method.objective.method} training options {unknown}; known: "
                         f"{', '.join([*_CONFIG_TEXTS, *_CONFIG_INTS, *own])}")
    config_options: dict[str, Any] = {k: int(options.pop(k)) for k in _CONFIG_INTS if k in options}
    config_options |= {k: options.pop(k) for k in _CONFIG_TEXTS if k in options}
    if config_options.get("mode", "head") == "head":
        config_options = dict(method.objective.config_defaults) | config_options
    objective = method.objective(**constructor_settings(method.objective, options))
    return train_method(objective, dataset, model_name, context, out, TrainConfig(**config_options))


def training_data_identity(dataset: Dataset) -> dict:
    """What a trained checkpoint's cache key knows of its training data: the dataset's name and, per sample
    in its order, the path relative to its root, the identity and the file's size in bytes.

    Cheap on purpose: one ``stat`` per image, no image read.  Hashing the files' bytes would read the whole
    training set (LFW devtrain: 9,525 files) on every run only to find a head already trained, while the
    run may not otherwise touch those images.  A file renamed, added, removed, relabelled or rewritten to
    another size trains anew; one rewritten in place to the same size is not noticed (a JPEG re-encoded
    almost never keeps its size).
    """
    rows = []
    for sample in dataset.samples:
        try:
            where = sample.path.relative_to(dataset.root).as_posix()
        except ValueError:  # a sample outside the dataset's root (a loader's choice): its full path
            where = str(sample.path)
        try:
            size = os.stat(sample.path).st_size
        except OSError:
            size = -1
        rows.append([where, sample.identity, size])
    return {"name": dataset.name, "has_identities": dataset.has_identities, "samples": rows}


def learned_checkpoint(
    method: type[LearnedQualityMethod], settings: Mapping[str, Any], trained_on: str, context: RunContext,
) -> tuple[Path, bool]:
    """The checkpoint of ``method`` with ``settings`` trained on ``trained_on``: shipped, else trained on
    first use and kept in the cache.

    ``settings`` may hold ``model`` and any field of the method's objective
    (``sdd[m=6,repetitions=1]``, ``sdd[variant=neg-only]``); a shipped
    checkpoint serves only when its recorded objective settings are exactly
    these and ``trained_on`` names it (``lfw:devtrain``, ``lfw:devtest``).
    Otherwise the method is trained with its default training configuration
    (as the shipped heads were) on the dataset ``trained_on`` names: any spec
    :func:`~fiqa_bench.data.load_dataset` reads (``lfw:devtrain``, ``faces94``,
    ``folder:/data/faces``, a ``.bin`` file), loaded with the context's data root
    and cache, into ``<cache>/trained/<stem>-<model>-<dataset slug>-<digest>.pt``
    (:func:`~fiqa_bench.pipeline.stores.trained_checkpoint`), the digest
    covering the method, its settings, the full spec, the training data
    (:func:`training_data_identity`), the model's fingerprint, the alignment
    and the checkpoint format, so a change to any of them trains anew.
    Written atomically, in a folder of the training's own: an interrupted training leaves no
    checkpoint (at most, after SIGKILL, a hidden ``.<name>.<random>.training/`` folder), and two
    processes training the same checkpoint at once do not mix their files.

    Returns:
        the checkpoint path, and whether it was trained here (not shipped).

    Raises:
        DatasetError: the dataset cannot be loaded, or the method cannot train on it
            (:func:`check_trainable`: no identity with two images; pseudo-identities for a method that
            needs people).
    """
    plan = _plan(method, settings, trained_on, context)
    if plan.shipped or plan.path.is_file():
        return plan.path, not plan.shipped
    _train_into(plan, method)
    return plan.path, True


def checkpoint_to_train(
    method: type[LearnedQualityMethod], settings: Mapping[str, Any], trained_on: str, context: RunContext,
) -> Path | None:
    """Where :func:`learned_checkpoint` would train now (None: shipped, or already in the cache)."""
    plan = _plan(method, settings, trained_on, context)
    return None if plan.shipped or plan.path.is_file() else plan.path


def prepare_training(
    method: type[LearnedQualityMethod], settings: Mapping[str, Any], trained_on: str, context: RunContext,
) -> bool:
    """Compute here, into the cache, everything training the checkpoint would read from images, so that another
    process can train it from the cache alone; False when there is nothing to train (shipped, cached, or not a
    head: a fine-tuning reads chips through the network itself).

    That is the training set's embeddings and head inputs and, for a :class:`RegressionObjective`, whatever its
    labels read (FaceQnet's chips, landmarks and other models' embeddings).  Torch's kernels depend on the
    number of threads (mobilefacenet-512's embeddings of LFW differ by up to 2.5e-7 between one thread and
    two), so the numbers a run caches must come from one place whoever trains; the training itself gives the
    same bytes with one thread or two (tested).

    Raises:
        DatasetError: as :func:`learned_checkpoint`.
    """
    plan = _plan(method, settings, trained_on, context)
    config = TrainConfig(**dict(method.objective.config_defaults))
    if plan.shipped or plan.path.is_file() or config.mode != "head":
        return False
    check_trainable(plan.objective, plan.dataset)
    data = training_set(plan.dataset, plan.model_name, plan.model_context, config.features)
    if isinstance(plan.objective, RegressionObjective):
        plan.objective.labels(data)
    return True


#: Inside :func:`training_sets_read_once`: (spec, data root, cache) -> the training set and its identity.
_TRAINING_SETS: dict[tuple[str, str, str], tuple[Dataset, dict]] | None = None


@contextmanager
def training_sets_read_once() -> Iterator[None]:
    """Within the block, each training set a checkpoint's plan names is loaded and identified once.

    A study plans each head up to three times (is it trained? prepare it; load it to score), and
    loading LFW's devtrain and taking its identity (:func:`training_data_identity`: a ``stat`` per
    image) costs about 0.3 s: 20 s of the ablation's 36 heads.  Meant for one study, during which the
    training sets' files do not change; outside such a block every plan reads them afresh.
    """
    global _TRAINING_SETS
    if _TRAINING_SETS is not None:  # an enclosing block already remembers
        yield
        return
    _TRAINING_SETS = {}
    try:
        yield
    finally:
        _TRAINING_SETS = None


def _training_data(trained_on: str, context: RunContext) -> tuple[Dataset, dict]:
    """The training set ``trained_on`` names and its :func:`training_data_identity` (remembered inside
    :func:`training_sets_read_once`)."""
    from fiqa_bench.data import load_dataset

    key = (trained_on, str(context.data_root), str(context.cache_dir))
    if _TRAINING_SETS is not None and key in _TRAINING_SETS:
        return _TRAINING_SETS[key]
    dataset = load_dataset(trained_on, context.data_root, cache_dir=context.cache_dir)
    found = dataset, training_data_identity(dataset)
    if _TRAINING_SETS is not None:
        _TRAINING_SETS[key] = found
    return found


@dataclass(frozen=True)
class _Plan:
    """Which checkpoint a (method, settings, training set) takes, and what training it would need."""

    path: Path
    shipped: bool
    objective: Objective | None = None
    dataset: Dataset | None = None
    model_name: str = ""
    model_context: RunContext | None = None


def _plan(method: type[LearnedQualityMethod], settings: Mapping[str, Any], trained_on: str,
          context: RunContext) -> _Plan:
    """The shipped checkpoint for these settings, or where training would put one (see :func:`learned_checkpoint`)."""
    from fiqa_bench.pipeline.stores import trained_checkpoint
    from fiqa_bench.recognition import canonical_model_name

    settings = dict(settings)
    model = str(settings.pop("model", "dlib-resnet"))
    own = {f.name for f in dataclasses.fields(method.objective)}
    unknown = sorted(set(settings) - own)
    if unknown:
        raise ValueError(f"method {method.objective.method!r} has no setting {', '.join(unknown)}; "
                         f"its settings: {', '.join(['model', *sorted(own)])}")
    objective = method.objective(**constructor_settings(method.objective, settings))
    model_name = model if "@" in model else canonical_model_name(model)
    if SHIPPABLE_SPEC.fullmatch(trained_on):
        shipped = shipped_checkpoint(objective.stem, trained_on, model_name)
        defaults = method.objective()
        at_defaults = all(getattr(objective, f.name) == getattr(defaults, f.name)
                          for f in dataclasses.fields(objective) if f.name not in objective.selectors)
        if at_defaults and shipped.is_file():
            return _Plan(shipped, True)
    dataset, identity = _training_data(trained_on, context)
    model_context = context.for_dataset(dataset).for_model(model_name)  # pre-aligned crops: their own detector
    key = sha256_json({"method": objective.method, "settings": objective.settings(), "trained_on": trained_on,
                       "data": identity,
                       "model": context.model(model_name).fingerprint(), "format": CHECKPOINT_FORMAT,
                       "alignment": model_context.alignment.digest()})[:16]
    out = trained_checkpoint(context.cache_dir, objective.stem, model_name, trained_on, key)
    return _Plan(out, False, objective, dataset, model_name, model_context)


def _train_into(plan: _Plan, method: type[LearnedQualityMethod]) -> None:
    """Train ``plan``'s checkpoint (see :func:`learned_checkpoint`)."""
    from fiqa_bench.pipeline.cache import atomic_write

    objective, dataset, model_name, model_context, out = (plan.objective, plan.dataset, plan.model_name,
                                                          plan.model_context, plan.path)
    check_trainable(objective, dataset)  # before the folder is made: a refusal leaves nothing behind
    out.parent.mkdir(parents=True, exist_ok=True)
    # Each training writes in a folder of its own, so two processes training the same checkpoint at once
    # never write one file together; the scratch file's name is the same in every folder because torch
    # names the archive inside after the file, and the checkpoint's bytes (its sha256, part of the score
    # cache key) must not depend on who trained it.  Two such trainings give the same bytes; the last
    # rename wins.  A killed training leaves only its hidden folder, which nothing reads.
    workdir = out.parent / f".{out.name}.{uuid.uuid4().hex}.training"
    workdir.mkdir()
    try:
        scratch = workdir / (out.name + ".training.pt")
        config = TrainConfig(**dict(method.objective.config_defaults))
        train_method(objective, dataset, model_name, model_context, scratch, config)
        with atomic_write(out.with_suffix(".json")) as fh:
            fh.write(scratch.with_suffix(".json").read_text().replace(scratch.name, out.name))
        scratch.replace(out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def register_learned(
    method: type[LearnedQualityMethod], description: str, aliases: tuple[str, ...] = ()
) -> None:
    """Register ``method`` in :data:`~fiqa_bench.method.METHODS` and its trainer in ``TRAINERS``."""
    name = method.objective.method
    TRAINERS.add(name, partial(train_from_options, method), description=f"train {name}")
    METHODS.add(name, method, description=description, aliases=aliases)
