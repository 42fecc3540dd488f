"""How a protocol scores its dataset with the methods it evaluates, and the pieces every protocol shares.

* :class:`Scoring`: which model scores which images of a trained method.  A dataset that can be
  cross-fitted (:attr:`fiqa_bench.data.Dataset.cross_fitting`: LFW's View 1 people split) is, so that
  no image meets a model trained on its identity; any other is scored by the shipped model trained on
  :data:`~fiqa_bench.method.learned.DEFAULT_TRAINED_ON`, and the tables say so (:func:`no_cross_fitting`,
  the one place that wording lives).
* :func:`score_spec`: one method's scores of every image, cross-fitted as :class:`Scoring` says, trained
  on first use where no head is shipped.
* :func:`entries`: the rows of a study (every method on every quality model).
* :func:`merge_tables`, :func:`file_name`, :func:`progress`: fold tables merged, labels as file names,
  the progress printer.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from fiqa_bench.data import Dataset
from fiqa_bench.method import MethodSpec, QualityMethod, create_method, method_class, settings_for_model
from fiqa_bench.method.learned import DEFAULT_TRAINED_ON, LearnedQualityMethod, learned_checkpoint
from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.pipeline.scoring import ScoreTable, score_dataset


def no_cross_fitting(dataset_name: str) -> str:
    """What the tables say when a dataset cannot be cross-fitted (the only place this is worded)."""
    return (f"No cross-fitting was possible: trained methods scored every image with their shipped model trained "
            f"on {DEFAULT_TRAINED_ON} (LFW peopleDevTrain, 4,038 people). The result is fair only if "
            f"{dataset_name}'s identities are disjoint from those people.")


@dataclass(frozen=True)
class Scoring:
    """Which model scores which images of a trained method.

    Attributes:
        folds: ``(part, trained_on)`` pairs: each part of the dataset is scored by the shipped model
            trained on ``trained_on`` (cross-fitting); empty: every image is scored by the shipped
            model trained on :data:`fiqa_bench.method.learned.DEFAULT_TRAINED_ON`.
        note: what the tables and provenance say about it.
    """

    folds: tuple[tuple[Dataset, str], ...] = ()
    note: str = ""

    @classmethod
    def of(cls, dataset: Dataset) -> Scoring:
        """The dataset's own cross-fitting when it has one, else its shipped models and :func:`no_cross_fitting`."""
        if dataset.cross_fitting is None:
            return cls((), no_cross_fitting(dataset.name))
        split = dataset.cross_fitting()
        return cls(split.folds, split.note)


@dataclass(frozen=True)
class Scored:
    """One method's scores of the dataset and who scored which images."""

    table: ScoreTable
    scorers: list[dict]


def score_spec(spec: MethodSpec, dataset: Dataset, scoring: Scoring, context: RunContext,
               quality_model: str) -> Scored:
    """Scores of every image of ``dataset`` in its order; a method that reads a recognition model reads
    ``quality_model`` unless its settings name another (``sdd[model=...]``).

    A learned method uses its shipped heads, or trains them on first use when none is shipped for these
    settings and this model (:func:`fiqa_bench.method.learned.learned_checkpoint`), cross-fitted as ``scoring`` says.
    """
    settings = spec.settings if spec.weights is not None else settings_for_model(spec.name, spec.settings,
                                                                                 quality_model)
    scoring_context = context.for_model(settings.get("model", quality_model))
    cls = method_class(spec.name)
    if spec.weights is not None or not (isinstance(cls, type) and issubclass(cls, LearnedQualityMethod)):
        method = create_method(spec.name, weights=spec.weights, settings=settings)
        table = score_dataset(method, dataset, scoring_context)
        scope = "all images (user checkpoint, no cross-fitting)" if spec.weights is not None else "all images"
        return Scored(table, [_scorer(method, len(table.paths), scope)])
    folds = scoring.folds or ((dataset, DEFAULT_TRAINED_ON),)
    parts, scorers = [], []
    for part, trained_on in folds:
        checkpoint, trained_here = learned_checkpoint(cls, settings, trained_on, context)
        method = cls(checkpoint)
        scored = score_dataset(method, part, scoring_context)
        parts.append(scored)
        scope = (f"{part.name} images" if scoring.folds else
                 f"all images (model trained on {trained_on}; no cross-fitting)")
        scorers.append(_scorer(method, len(scored.paths), scope + (" (trained here on first use)" if trained_here
                                                                   else "")))
    return Scored(parts[0] if not scoring.folds else merge_tables(parts, dataset.paths), scorers)


@dataclass(frozen=True)
class Entry:
    """One row of a study: a method, the recognition model it reads, and its label in the tables."""

    label: str
    spec: MethodSpec
    quality_model: str
    reads_model: bool = True

    @property
    def source(self) -> str:
        """Where the quality comes from: the recognition model the method reads, or ``(no model)``."""
        return str(self.spec.settings.get("model", self.quality_model)) if self.reads_model else "(no model)"


def entries(specs: Sequence[MethodSpec], quality_models: Sequence[str], deployed_model: str) -> list[Entry]:
    """Every method on every quality model; a method that reads no recognition model once, on the deployed
    model's chips; one that names its own (``sdd[model=...]``) or comes with a checkpoint once.  Labels gain
    `` on MODEL`` only when there are several quality models."""
    out = []
    for spec in specs:
        reads = "model" in method_class(spec.name).setting_names()
        if not reads:
            models = [deployed_model]
        elif "model" in spec.settings or spec.weights is not None:
            models = list(quality_models[:1])
        else:
            models = list(quality_models)
        for model in models:
            label = f"{spec.label} on {model}" if len(models) > 1 else spec.label
            out.append(Entry(label, spec, model, reads))
    labels = [e.label for e in out]
    if len(set(labels)) != len(labels):
        raise ValueError(f"give each method once: {labels}")
    return out


def file_name(label: str) -> str:
    """A method label as a file name (``sdd[variant=pos-only]`` -> ``sdd_variant=pos-only``)."""
    return re.sub(r"[^\w.=-]+", "_", label).strip("_")


def _scorer(method: QualityMethod, n: int, scope: str) -> dict:
    """Who scored which images: the weights by file name and sha256 (never a path of this machine)."""
    checkpoint = Path(method.card.weights).name if method.card.weights_sha256 else ""
    return {"images": f"{n} {scope}", "checkpoint": checkpoint, "checkpoint_sha256": method.card.weights_sha256,
            "method_fingerprint": method.fingerprint()}


def merge_tables(parts: list[ScoreTable], order: list[Path]) -> ScoreTable:
    """Fold tables merged into the protocol's image order (every image exactly once)."""
    row_of = {}
    for t, part in enumerate(parts):
        for i, p in enumerate(part.paths):
            row_of[p] = (t, i)
    missing = [str(p) for p in order if str(p) not in row_of]
    if missing:
        raise RuntimeError(f"{len(missing)} images were scored by no fold, e.g. {missing[0]}")
    rows = [row_of[str(p)] for p in order]

    def pick(field: str) -> np.ndarray:
        return np.array([getattr(parts[t], field)[i] for t, i in rows])

    return ScoreTable(paths=np.array([str(p) for p in order]), identities=pick("identities"),
                      quality=pick("quality").astype(np.float64), native=pick("native").astype(np.float64),
                      reasons=pick("reasons").astype(str), face=pick("face").astype(str), method=parts[0].method)


def progress(context: RunContext) -> Callable[[str], None]:
    """A progress printer to stderr, silent when the context draws no progress."""
    if not context.progress:
        return lambda message: None
    return lambda message: print(f"[fiqa-bench] {message}", file=sys.stderr, flush=True)
