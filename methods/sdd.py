"""SDD-FIQA: Similarity Distribution Distance (Ou et al., CVPR 2021).

Quality pseudo-labels (paper Eqs. 7-10, :mod:`fiqa_bench.pseudo_labels`):
for each training image ``x``, the cosine similarities to ``m`` images of its
own identity (``S^P``) and to ``m`` images of other identities (``S^N``) are
collected, and the label is the Wasserstein distance between the two
empirical distributions,

    Q_x = mean_k  delta[ WD(S^P_{x,k} || S^N_{x,k}) ],
    delta[l] = 100 (l - min L) / (max L - min L),

averaged over ``K`` random draws, each min-max scaled to [0, 100] over the
set.  A regression network (the recognition backbone without its embedding
layer, dropout 0.5, one linear output) is then trained on the labels with the
Huber loss (Eq. 12; :mod:`fiqa_bench.quality_regression`), and its output
is the quality: higher is better.

The shipped models: ``dlib-resnet`` backbone, ``head`` mode (the backbone is
frozen; an ensemble of five small heads on its pooled stage features is
learned, see :mod:`fiqa_bench.quality_regression` for why and how it was
chosen), one trained on LFW peopleDevTrain
and one on LFW peopleDevTest, so that every LFW image can be scored by a
model that never saw its identity (the ``lfw`` protocol cross-fits).  Each
file in ``methods/weights/`` has a ``.json`` beside it with its sha256, the
training log and the command that reproduces it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from fiqa_bench.data import Dataset
from fiqa_bench.faces.align import AlignmentSettings
from fiqa_bench.hashing import sha256_file, sha256_json
from fiqa_bench.method import METHODS, TRAINERS, MethodCard, QualityMethod
from fiqa_bench.pipeline import dataset_chips, embed_dataset
from fiqa_bench.pseudo_labels import VARIANTS, sdd_pseudo_labels
from fiqa_bench.quality_regression import (
    QualityEnsemble,
    QualityHead,
    QualityRegressor,
    TrainConfig,
    predict_head,
    train_full,
    train_head,
)
from fiqa_bench.recognition import create_model
from fiqa_bench.report.provenance import provenance

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
PAPER = "F.-Z. Ou et al., SDD-FIQA: Unsupervised Face Image Quality Assessment with Similarity Distribution Distance, CVPR 2021"
CHECKPOINT_FORMAT = 2


def shipped_checkpoint(
    trained_on: str, model: str = "dlib-resnet", mode: str = "head", variant: str = "sdd"
) -> Path:
    """Path of the shipped checkpoint trained on ``trained_on`` (e.g. ``"lfw:devtrain"``) with labels ``variant``."""
    prefix = "sdd" if variant == "sdd" else f"sdd-{variant}"
    return WEIGHTS_DIR / f"{prefix}-{model}-{mode}-{trained_on.replace(':', '-')}.pt"


@dataclass(frozen=True)
class LabelSettings:
    """Pseudo-label parameters (paper: m = 24, K = 12)."""

    m: int = 24
    repetitions: int = 12
    seed: int = 0
    variant: str = "sdd"


class SDDFIQA(QualityMethod):
    """SDD-FIQA's quality regressor, loaded from a checkpoint.

    A ``head`` checkpoint reads the recognition model's pooled stage outputs
    or backbone features (``needs = stages:<model>`` or ``backbone:<model>``);
    a ``full`` checkpoint carries a fine-tuned backbone and reads aligned
    chips (``needs = chips:<template>``).
    """

    def __init__(self, checkpoint: Path) -> None:
        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise FileNotFoundError(f"SDD-FIQA checkpoint {checkpoint} does not exist")
        payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{checkpoint} is not an SDD-FIQA checkpoint of format {CHECKPOINT_FORMAT}")
        self.meta: dict = payload["meta"]
        self.mode: str = self.meta["mode"]
        model_name = self.meta["model"]
        self._digest = sha256_file(checkpoint)
        in_features, hidden = int(self.meta["in_features"]), int(self.meta["hidden"])
        dropout = float(self.meta["dropout"])
        if self.mode == "head":
            self.head = QualityEnsemble(in_features, int(self.meta["ensemble"]), dropout, hidden)
            self.head.load_state_dict(payload["state_dict"])
            self.head.eval()
            needs = f"{self.meta['features']}:{model_name}"
        else:
            network = create_model(model_name).network
            self.regressor = QualityRegressor(network, QualityHead(in_features, dropout, hidden))
            self.regressor.load_state_dict(payload["state_dict"])
            self.regressor.eval()
            needs = f"chips:{self.meta['template']}"
        self.card = MethodCard(name="sdd", paper=PAPER, higher_is_better=True, needs=needs, trained=True,
                               weights=str(checkpoint), weights_sha256=self._digest)

    @classmethod
    def create(
        cls,
        weights: Path | None = None,
        trained_on: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> SDDFIQA:
        """A checkpoint (``weights``) or the shipped model trained on ``trained_on`` (default
        ``lfw:devtrain``).  Settings: ``variant`` (sdd, pos-only, neg-only, signed: which pseudo-labels the
        shipped model learned; the paper's ablation) and ``model`` (the recognition model it reads)."""
        settings = dict(settings or {})
        variant, model = str(settings.pop("variant", "sdd")), str(settings.pop("model", "dlib-resnet"))
        if settings:
            raise ValueError(f"method 'sdd' has no setting {', '.join(sorted(settings))}; its settings: variant, model")
        if variant not in VARIANTS:
            raise ValueError(f"sdd: variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        if weights is not None and trained_on is not None:
            raise ValueError("give either weights (a checkpoint) or trained_on (a shipped model), not both")
        if weights is not None:
            return cls(weights)
        weights = shipped_checkpoint(trained_on or "lfw:devtrain", model, variant=variant)
        if not weights.is_file():
            known = sorted(p.name for p in WEIGHTS_DIR.glob("*.pt"))
            raise FileNotFoundError(f"no shipped SDD-FIQA model trained on {trained_on!r} with variant "
                                    f"{variant!r} for {model} ({weights.name}); shipped: {known}; train one with "
                                    "'fiqa-bench train --method sdd'")
        return cls(weights)

    def fingerprint(self) -> str:
        return sha256_json({"method": "sdd", "checkpoint": self._digest})

    def native_score(self, inputs: np.ndarray) -> np.ndarray:
        """Predicted quality (0-100 scale of the pseudo-labels; higher = better)."""
        if self.mode == "head":
            return predict_head(self.head, inputs)
        out = np.empty(len(inputs))
        network = self.regressor.network
        with torch.inference_mode():
            for start in range(0, len(inputs), 64):
                x = network.preprocess(torch.from_numpy(np.ascontiguousarray(inputs[start : start + 64])))
                out[start : start + 64] = self.regressor(x).double().numpy()
        return out


def train_sdd(
    dataset: Dataset,
    model_name: str,
    cache_dir: Path,
    out: Path,
    config: TrainConfig = TrainConfig(),
    labels: LabelSettings = LabelSettings(),
    settings: AlignmentSettings | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> dict:
    """Make pseudo-labels on ``dataset`` with ``model_name`` and train the regressor; write ``out``.

    Returns the training record (also written as ``out`` with suffix ``.json``).
    """
    settings = settings or AlignmentSettings()
    model = create_model(model_name)
    emb = embed_dataset(dataset, model, cache_dir, settings, workers, progress)
    ok = ~emb.failed
    pseudo = sdd_pseudo_labels(emb.embeddings[ok], emb.identities[ok], m=labels.m,
                               repetitions=labels.repetitions, seed=labels.seed, variant=labels.variant)
    target = np.full(len(emb.failed), np.nan)
    target[ok] = pseudo.labels
    use = np.isfinite(target)
    if use.sum() < 2:
        raise ValueError(f"{dataset.name}: only {int(use.sum())} images have a pseudo-label; "
                         "SDD-FIQA needs identities with at least two images")
    if config.mode == "head":
        feats = embed_dataset(dataset, model, cache_dir, settings, workers, progress, output=config.features)
        head, log = train_head(feats.embeddings[use], target[use], config)
        state, in_features = head.state_dict(), feats.embeddings.shape[1]
    else:
        chips, _, _ = dataset_chips(dataset, model.card.template, cache_dir, settings, workers, progress)
        regressor, log = train_full(model.network, chips[use], target[use], config)
        state, in_features = regressor.state_dict(), model.network.backbone_dim
    meta = {
        "mode": config.mode,
        "model": model.card.name,
        "model_fingerprint": model.fingerprint(),
        "template": model.card.template,
        "in_features": int(in_features),
        "hidden": int(config.hidden),
        "ensemble": int(config.ensemble),
        "features": config.features,
        "dropout": config.dropout,
        "trained_on": dataset.name,
        "n_images": int(len(target)),
        "n_labelled": int(use.sum()),
        "n_failed_images": int(emb.failed.sum()),
        "n_singletons": int(pseudo.n_singletons),
        "labels": asdict(labels),
        "label_stats": {"mean": float(np.mean(target[use])), "std": float(np.std(target[use]))},
        "alignment_digest": settings.digest(),
    }
    stamp = provenance()  # before writing: a checkpoint inside the work tree would mark it dirty
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": CHECKPOINT_FORMAT, "meta": meta, "state_dict": state}, out)
    record = {"checkpoint": out.name, "sha256": sha256_file(out), **meta, "train_log": dataclasses.asdict(log),
              "provenance": stamp}
    out.with_suffix(".json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def _train_from_options(
    dataset: Dataset,
    model_name: str,
    cache_dir: Path,
    out: Path,
    options: dict[str, str],
    workers: int | None = None,
    progress: bool = True,
) -> dict:
    """:func:`train_sdd` with ``fiqa-bench train`` options (mode, epochs, schedule, seed, batch_size,
    hidden, ensemble, features, m, repetitions, variant, label_seed)."""
    options = dict(options)
    default_labels = LabelSettings()
    labels = LabelSettings(
        m=int(options.pop("m", default_labels.m)),
        repetitions=int(options.pop("repetitions", default_labels.repetitions)),
        seed=int(options.pop("label_seed", default_labels.seed)),
        variant=options.pop("variant", default_labels.variant),
    )
    numbers = {k: int(options.pop(k)) for k in ("epochs", "seed", "batch_size", "hidden", "ensemble")
               if k in options}
    texts = {k: options.pop(k) for k in ("mode", "schedule", "features") if k in options}
    config = TrainConfig(**numbers, **texts)
    if options:
        raise ValueError(f"unknown SDD-FIQA training options {sorted(options)}; known: mode, epochs, "
                         "schedule, seed, batch_size, hidden, ensemble, features, m, repetitions, variant, "
                         "label_seed")
    return train_sdd(dataset, model_name, cache_dir, out, config, labels, workers=workers, progress=progress)


TRAINERS.add("sdd", _train_from_options, description="pseudo-labels + regression head on a recognition model")
METHODS.add("sdd", SDDFIQA, description="SDD-FIQA (CVPR 2021): Wasserstein pseudo-labels + quality regression",
            aliases=("sdd-fiqa",))
