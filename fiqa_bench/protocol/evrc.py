"""The EVRC study every EVRC protocol runs: score, compare, study, write (not a protocol itself).

A protocol says *which* images (a :class:`~fiqa_bench.data.Dataset`), how a
trained method's scores are obtained for them (:class:`Scoring`: cross-fitted
over identity-disjoint parts, or the shipped model for every image), which
recognition model the methods read (the *quality model*) and which one makes
the comparisons whose errors are counted (the *deployed model*).  When the
two differ the run is a cross-model run (SDD-FIQA Sec. 4.2.2, Tables 3, 4).

:func:`evaluate` then embeds the dataset with the deployed model, scores it
with every method, runs :func:`fiqa_bench.protocol.study.run_studies` (EVRC at
every FMR and threshold policy, paper-compatible AOC with identity-bootstrap
intervals, the random band, paired differences) and writes a results folder:
``table.md`` (Table 1 layout), ``evrc-<policy>.png`` (Fig. 4 layout),
``scores.csv`` or ``scores/<method>.csv``, ``study.json`` and
``provenance.json``.

Each recognition model is run on the chips of its own default face detector
(its card's ``detector``) unless the user chose one (``--detector``):
:meth:`fiqa_bench.pipeline.context.RunContext.for_model`.
"""

from __future__ import annotations

import json
import re
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from fiqa_bench.pipeline.cache import remove_temporaries, write_text_atomic
from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.data import Dataset
from fiqa_bench.protocol.study import StudyConfig, StudySet, run_studies
from fiqa_bench.pipeline.hashing import sha256_json
from fiqa_bench.method.learned import DEFAULT_TRAINED_ON, LearnedQualityMethod, learned_checkpoint
from fiqa_bench.method import MethodSpec, QualityMethod, create_method, method_class, settings_for_model
from fiqa_bench.pipeline.embedding import Embeddings, embed_dataset
from fiqa_bench.report.plots import plot_evrc
from fiqa_bench.report.provenance import provenance
from fiqa_bench.report.tables import studies_markdown
from fiqa_bench.pipeline.scoring import ScoreTable, score_dataset


@dataclass(frozen=True)
class Scoring:
    """How a trained method's shipped models score a dataset.

    Attributes:
        folds: ``(part, trained_on)`` pairs: each part of the dataset is scored by the shipped model
            trained on ``trained_on`` (cross-fitting); empty: every image is scored by the shipped
            model trained on :data:`fiqa_bench.method.learned.DEFAULT_TRAINED_ON`.
        note: what the provenance says about it.
    """

    folds: tuple[tuple[Dataset, str], ...] = ()
    note: str = ""


class OneOrSeveral:
    """A protocol whose ``run`` of one method is its ``compare`` of that one method (the protocols that
    evaluate several methods on the same data share the same shape)."""

    def run(self, method: str, *, context: RunContext, out_dir: Path, weights: Path | None = None,
            settings: Mapping[str, str] | None = None, model: str = "dlib-resnet", deployed_model: str | None = None,
            dataset: str | None = None, config: StudyConfig = StudyConfig(), **options: object) -> Path:
        """Evaluate one method: :meth:`compare` of ``[method]``."""
        return self.compare([MethodSpec.named(method, settings, weights)], context=context, out_dir=out_dir,
                            model=model, deployed_model=deployed_model, dataset=dataset, config=config, **options)

    def compare(self, methods: list[MethodSpec], **kwargs: object) -> Path:  # pragma: no cover - abstract
        raise NotImplementedError


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


@dataclass(frozen=True)
class EVRCRun:
    """Everything an EVRC run computed, before it is written."""

    protocol: str
    dataset: Dataset
    entries: list[Entry]
    deployed_model: str
    embeddings: Embeddings
    scored: dict[str, Scored]
    result: StudySet
    config: StudyConfig
    scoring_note: str

    @property
    def keep(self) -> np.ndarray:
        return ~self.embeddings.failed

    @property
    def quality_models(self) -> list[str]:
        return sorted({e.quality_model for e in self.entries})

    @property
    def direction(self) -> str:
        """``deployed M`` when the methods read the deployed model, else which models the quality comes from."""
        if self.quality_models == [self.deployed_model]:
            return f"deployed {self.deployed_model}"
        return f"quality from {' and '.join(self.quality_models)}, deployed {self.deployed_model}"


def study(specs: Sequence[MethodSpec], *, protocol: str, dataset: Dataset, scoring: Scoring, context: RunContext,
          quality_models: Sequence[str], deployed_model: str, config: StudyConfig) -> EVRCRun:
    """Embed, score and study (nothing written): see the module docstring.

    Every method that reads a recognition model is scored once per quality model; all rows share
    the deployed model's comparisons, random band and bootstrap replicates, so the paired
    differences say whether a method's quality transfers from one model to another.
    """
    if not specs:
        raise ValueError("an EVRC study needs at least one method")
    from fiqa_bench.recognition import model_reference

    quality_models = [model_reference(m) for m in quality_models]
    deployed_model = model_reference(deployed_model)
    rows = entries(specs, quality_models, deployed_model)
    say = context_say(context)
    say(f"{protocol}: embedding {len(dataset)} images of {dataset.name} with {deployed_model}")
    deployed_context = context.for_model(deployed_model)
    emb = embed_dataset(dataset, deployed_context.model(deployed_model), deployed_context)
    scored = {}
    for entry in rows:
        say(f"scoring with {entry.label}")
        scored[entry.label] = score_spec(entry.spec, dataset, scoring, context, entry.quality_model)
        if list(scored[entry.label].table.paths) != list(emb.paths):
            raise RuntimeError("internal error: score rows do not follow the dataset order")
    keep = ~emb.failed
    result = run_studies({label: s.table.quality[keep] for label, s in scored.items()}, emb.embeddings[keep],
                         emb.identities[keep], config, say, checkpoint_dir=context.cache_dir / "studies")
    return EVRCRun(protocol, dataset, rows, deployed_model, emb, scored, result, config, scoring.note)


def evaluate(specs: Sequence[MethodSpec], *, protocol: str, dataset: Dataset, scoring: Scoring, context: RunContext,
             out_dir: Path, quality_model: str, deployed_model: str, config: StudyConfig) -> Path:
    """:func:`study`, then the results folder written (see the module docstring); returns its path."""
    started = provenance()  # the code as the run starts, before any output (which could mark the tree dirty)
    run = study(specs, protocol=protocol, dataset=dataset, scoring=scoring, context=context,
                quality_models=[quality_model], deployed_model=deployed_model, config=config)
    return write_run(run, Path(out_dir), started, context)


def write_run(run: EVRCRun, out_dir: Path, started: dict, context: RunContext) -> Path:
    """The results folder of one EVRC run.

    Every file is written whole or not at all (:func:`fiqa_bench.pipeline.cache.atomic_write`); the hidden
    temporaries a run killed while writing this folder left are removed (a results folder has one writer).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    score_files = [f"{file_name(label)}.csv" for label in run.scored]
    remove_temporaries(out_dir, ["scores.csv", "study.json", "table.md", "provenance.json",
                                 *(f"evrc-{policy}.png" for policy in run.config.policies)])
    remove_temporaries(out_dir / "scores", score_files)
    if len(run.entries) == 1:
        run.scored[run.entries[0].label].table.write_csv(out_dir / "scores.csv")
    else:
        for name, scored in zip(score_files, run.scored.values()):
            scored.table.write_csv(out_dir / "scores" / name)
    write_text_atomic(out_dir / "study.json", json.dumps(run.result.to_dict()) + "\n")
    write_text_atomic(out_dir / "table.md", header(run) + studies_markdown(run.result))
    figures = plot_run(run, out_dir)
    stamp = started | run_provenance(run)
    write_text_atomic(out_dir / "provenance.json", json.dumps(stamp, indent=2, sort_keys=True) + "\n")
    written = ["table.md", *figures, "scores.csv" if len(run.entries) == 1 else "scores/", "study.json",
               "provenance.json"]
    context_say(context)(f"wrote {out_dir}/: {', '.join(written)}")
    return out_dir


def run_provenance(run: EVRCRun) -> dict:
    """What a run's provenance records beyond the code: protocol, data, models, scorers, settings."""
    emb = run.embeddings
    return dict(
        protocol=run.protocol, methods=[e.label for e in run.entries], deployed_model=run.deployed_model,
        quality_models={e.label: e.quality_model for e in run.entries}, deployed_model_fingerprint=emb.meta["model_fingerprint"],
        scorers={label: s.scorers for label, s in run.scored.items()}, dataset=run.dataset.name,
        dataset_list_sha256=sha256_json(emb.image_sha256.tolist()), alignment=emb.meta["alignment"],
        study=asdict(run.config), scoring=run.scoring_note,
    )


def header(run: EVRCRun) -> str:
    """The table's title and what was evaluated: images, models, detector, fallbacks, who scored what."""
    emb, keep = run.embeddings, run.keep
    title = ", ".join(e.label for e in run.entries)
    others = [m for m in run.quality_models if m != run.deployed_model]
    models = (f"deployed model {run.deployed_model}" if not others else
              f"quality from methods built on {', '.join(run.quality_models)}, errors of the deployed model "
              f"{run.deployed_model} (cross-model for {', '.join(others)})")
    lines = [f"# {title} on {run.protocol}", "",
             f"{len(run.dataset)} images of {run.dataset.name}, {models}; the deployed model's faces detected by "
             f"{emb.meta['detector']}; {int(emb.failed.sum())} images failed upstream and were left out; "
             f"{emb.meta['n_fallback_box']} had no face found and were aligned on the fallback box.", ""]
    if run.scoring_note:
        lines += [run.scoring_note, ""]
    for entry in run.entries:
        scored = run.scored[entry.label]
        used = "; ".join(f"{s['images']} with {s['checkpoint'] or 'no checkpoint'}"
                         + (f" (sha256 {s['checkpoint_sha256'][:12]}...)" if s["checkpoint_sha256"] else "")
                         for s in scored.scorers)
        missing = int(np.isnan(scored.table.quality[keep]).sum())
        lines.append(f"* {entry.label}: scored {used}; {missing} without a quality.")
    return "\n".join(lines) + "\n\n"


def plot_run(run: EVRCRun, out_dir: Path) -> list[str]:
    """``evrc-<policy>.png`` per threshold policy: a curve per method and the random band."""
    result, config = run.result, run.config
    first = result.studies[result.labels[0]]
    discard = np.asarray(first.curves.curves[0].discard_requested)
    names = []
    for policy in config.policies:
        fnmr = {label: {f: result.studies[label].curves.get(policy, f).fnmr for f in config.fmrs}
                for label in result.labels}
        with warnings.catch_warnings():  # where no random seed's FNMR is defined, the band is NaN: a gap
            warnings.filterwarnings("ignore", "All-NaN slice encountered", RuntimeWarning)
            band = {f: tuple(np.nanpercentile(first.random_fnmr[(policy, f)], q, axis=0) for q in (5, 50, 95))
                    for f in config.fmrs}
        names.append(f"evrc-{policy}.png")
        plot_evrc(out_dir / names[-1], discard, fnmr, band,
                  title=f"EVRC on {run.dataset.name} ({run.protocol}; "
                        f"{first.comparisons.get('n_genuine')} genuine comparisons), "
                        f"{run.direction}, {policy} threshold")
    return names


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


def context_say(context: RunContext):  # noqa: ANN201 - a print function
    """A progress printer to stderr, silent when the context draws no progress."""
    if not context.progress:
        return lambda message: None
    return lambda message: print(f"[fiqa-bench] {message}", file=sys.stderr, flush=True)
