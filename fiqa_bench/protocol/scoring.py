"""How a protocol scores its dataset with the methods it evaluates, and the pieces every protocol shares.

* :class:`Scoring`: which model scores which images of a trained method.  A dataset that can be
  cross-fitted (:attr:`fiqa_bench.data.Dataset.cross_fitting`: LFW's View 1 people split) is, so that
  no image meets a model trained on its identity; any other is scored by the shipped model trained on
  :data:`~fiqa_bench.method.learned.DEFAULT_TRAINED_ON`, and the tables say so (:func:`no_cross_fitting`,
  the one place that wording lives).  :meth:`Scoring.trained_on` scores every image with heads trained on a
  training set the user chose, refused when that set shares people or image files with the scored one.
* :func:`score_spec`: one method's scores of every image, cross-fitted as :class:`Scoring` says, trained
  on first use where no head is shipped; :func:`head_jobs`: the heads it will need, for
  :func:`~fiqa_bench.method.parallel_training.train_missing` to train side by side beforehand.
* :func:`entries`: the rows of a study (every method on every quality model).
* :func:`merge_tables`, :func:`file_name`, :func:`progress`: fold tables merged, labels as file names,
  the progress printer.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from fiqa_bench.data import Dataset, DatasetError, load_dataset
from fiqa_bench.method import MethodSpec, QualityMethod, create_method, method_class, settings_for_model
from fiqa_bench.method.learned import DEFAULT_TRAINED_ON, LearnedQualityMethod, learned_checkpoint
from fiqa_bench.method.parallel_training import HeadJob
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
        folds: ``(part, trained_on)`` pairs: each part of the dataset is scored by the model trained on
            ``trained_on`` (shipped, else trained on first use); empty: every image is scored by the shipped
            model trained on :data:`fiqa_bench.method.learned.DEFAULT_TRAINED_ON`.
        note: what the tables and provenance say about it.
        training_set: the training set the user chose for every image (:meth:`trained_on`), else None.
    """

    folds: tuple[tuple[Dataset, str], ...] = ()
    note: str = ""
    training_set: str | None = None

    @classmethod
    def of(cls, dataset: Dataset) -> Scoring:
        """The dataset's own cross-fitting when it has one, else its shipped models and :func:`no_cross_fitting`."""
        if dataset.cross_fitting is None:
            return cls((), no_cross_fitting(dataset.name))
        split = dataset.cross_fitting()
        return cls(split.folds, split.note)

    @classmethod
    def trained_on(cls, dataset: Dataset, train_on: str, context: RunContext) -> Scoring:
        """Every image of ``dataset`` scored by heads trained on the dataset ``train_on`` names (any spec
        :func:`~fiqa_bench.data.load_dataset` reads, loaded with ``context``'s data root and cache), and a
        note that names that training set, its images and identities.

        When ``train_on`` is what ``dataset``'s own cross-fitting trains on for every image (``lfw:devtest``
        with ``lfw:devtrain``), that cross-fitting: :meth:`of`.

        Raises:
            DatasetError: the two datasets share people (an identity label, when both name people) or image
                files (the same file after links are resolved), so some images would be scored by a model
                trained on them; or no identity of ``train_on`` has two images (nothing to learn from).
        """
        training = load_dataset(train_on, context.data_root, cache_dir=context.cache_dir)
        if dataset.cross_fitting is not None:
            own = dataset.cross_fitting()
            if own.folds and all(spec in (train_on, training.name) for _, spec in own.folds):
                return cls(own.folds, own.note)
        refuse_shared_people(dataset, training, train_on)
        if not _has_mated_images(training):
            raise DatasetError(f"{train_on} cannot train the heads that score {dataset.name}: none of its "
                               f"{len(set(training.identities)):,} identities has two or more images")
        return cls(((dataset, train_on),), trained_on_note(dataset, training, train_on), train_on)


def _has_mated_images(dataset: Dataset) -> bool:
    """Whether some identity of ``dataset`` has two or more images (what every learned method needs)."""
    seen: set[str] = set()
    for identity in dataset.identities:
        if identity in seen:
            return True
        seen.add(identity)
    return False


def shared_people(scored: Dataset, training: Dataset) -> tuple[list[str], int]:
    """The identity labels two datasets share (sorted; none unless both name people,
    :attr:`~fiqa_bench.data.Dataset.has_identities`) and how many image files they share (real paths:
    links resolved)."""
    labels = (sorted(set(scored.identities) & set(training.identities))
              if scored.has_identities and training.has_identities else [])
    files = {os.path.realpath(p) for p in scored.paths} & {os.path.realpath(p) for p in training.paths}
    return labels, len(files)


def refuse_shared_people(scored: Dataset, training: Dataset, train_on: str) -> None:
    """Refuse to score ``scored`` with heads trained on ``training`` when they share people or files.

    Raises:
        DatasetError: one sentence naming both datasets and what they share.
    """
    labels, files = shared_people(scored, training)
    if not labels and not files:
        return
    shared = []
    if labels:
        examples = ", ".join(repr(name) for name in labels[:3])
        shared.append(f"{len(labels):,} {'person' if len(labels) == 1 else 'people'} ({examples}"
                      f"{', ...' if len(labels) > 3 else ''})")
    if files:
        shared.append(f"{files:,} image file{'' if files == 1 else 's'}")
    own = (f"; or leave {scored.name} to its own cross-fitting"
           if scored.cross_fitting is not None else "")
    raise DatasetError(f"{train_on} cannot train the heads that score {scored.name}: they share "
                       f"{' and '.join(shared)}, so images would be scored by a model trained on their own "
                       f"identity; train on a dataset of other people{own}")


def trained_on_note(scored: Dataset, training: Dataset, train_on: str) -> str:
    """What the tables say when every image of ``scored`` is scored by heads trained on ``training``."""
    kind = "identities" if training.has_identities else "pseudo-identities"
    head = (f"Trained methods scored every image with heads trained on {train_on} ({len(training):,} images, "
            f"{len(set(training.identities)):,} {kind})")
    if scored.has_identities and training.has_identities:
        return f"{head}, which shares no identity and no image file with {scored.name}."
    pseudo = " and ".join(d for d, ok in ((scored.name, scored.has_identities), (train_on, training.has_identities))
                          if not ok)
    return (f"{head}, which shares no image file with {scored.name}; the identities could not be compared "
            f"({pseudo} {'has' if ' and ' not in pseudo else 'have'} no named people), so the result is fair "
            f"only if {scored.name}'s people are not among {train_on}'s.")


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
    settings, this model and training set (:func:`fiqa_bench.method.learned.learned_checkpoint`), cross-fitted
    or trained on the chosen set as ``scoring`` says (:meth:`Scoring.of`, :meth:`Scoring.trained_on`).
    """
    settings = _settings(spec, quality_model)
    scoring_context = context.for_dataset(dataset).for_model(settings.get("model", quality_model))
    cls = method_class(spec.name)
    if not _trained_here(spec):
        method = create_method(spec.name, weights=spec.weights, settings=settings)
        table = score_dataset(method, dataset, scoring_context)
        scope = "all images (user checkpoint, no cross-fitting)" if spec.weights is not None else "all images"
        return Scored(table, [_scorer(method, len(table.paths), scope)])
    folds = _folds(dataset, scoring)
    parts, scorers = [], []
    for part, trained_on in folds:
        checkpoint, trained_here = learned_checkpoint(cls, settings, trained_on, context)
        method = cls(checkpoint)
        scored = score_dataset(method, part, scoring_context)
        parts.append(scored)
        if scoring.training_set is not None:
            scope = f"all images (model trained on {trained_on})"
        elif scoring.folds:
            scope = f"{part.name} images"
        else:
            scope = f"all images (model trained on {trained_on}; no cross-fitting)"
        scorers.append(_scorer(method, len(scored.paths), scope + (" (trained here on first use)" if trained_here
                                                                   else "")))
    return Scored(parts[0] if not scoring.folds else merge_tables(parts, dataset.paths), scorers)


def _settings(spec: MethodSpec, quality_model: str) -> dict:
    """The settings ``spec`` is scored with (a method that reads a model reads ``quality_model`` unless named)."""
    return dict(spec.settings) if spec.weights is not None else settings_for_model(spec.name, spec.settings,
                                                                                   quality_model)


def _trained_here(spec: MethodSpec) -> bool:
    """Whether ``spec`` is a learned method scored with shipped or trained-on-first-use heads (no ``--weights``)."""
    cls = method_class(spec.name)
    return spec.weights is None and isinstance(cls, type) and issubclass(cls, LearnedQualityMethod)


def _folds(dataset: Dataset, scoring: Scoring) -> tuple[tuple[Dataset, str], ...]:
    """(images scored, training set spec) of a learned method: cross-fitted, or all images by one model."""
    return tuple(scoring.folds) or ((dataset, DEFAULT_TRAINED_ON),)


def head_jobs(rows: Sequence[Entry], dataset: Dataset, scoring: Scoring) -> list[HeadJob]:
    """Every head :func:`score_spec` will load or train for ``rows`` (for :func:`train_missing`)."""
    return [HeadJob(entry.spec.name, _settings(entry.spec, entry.quality_model), trained_on)
            for entry in rows if _trained_here(entry.spec) for _, trained_on in _folds(dataset, scoring)]


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
