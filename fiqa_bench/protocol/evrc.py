"""The EVRC study (SDD-FIQA Sec. 4.1, Table 1, Fig. 4) on one dataset: embed, score, study, write.

:class:`EVRCProtocol` is the protocol of that study on a dataset (``lfw``,
``lfw-devtest``, ``evrc`` are instances); :func:`study` and
:func:`write_run` are its two halves, which protocols that combine several
studies (``cross-model``, ``ablation``) call directly.

A study compares every image with every other, or, for a pair-list protocol
(``pairs``: LFW View 2, an insightface ``.bin``), only the listed pairs
(:func:`study`'s ``pairs``).  It says *which* images (a :class:`~fiqa_bench.data.Dataset`, which
also says how a trained method's scores are obtained for them:
:meth:`~fiqa_bench.protocol.scoring.Scoring.of`, cross-fitted over
identity-disjoint parts where the dataset has them, else the shipped model
for every image), which recognition model the methods read (the *quality
model*) and which one makes the comparisons whose errors are counted (the
*deployed model*).  When the two differ the run is a cross-model run
(SDD-FIQA Sec. 4.2.2, Tables 3, 4).

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
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from fiqa_bench.data import Dataset, DatasetError, Pair, load_dataset
from fiqa_bench.faces.detector import detector_card
from fiqa_bench.method import MethodSpec
from fiqa_bench.method.learned import training_sets_read_once
from fiqa_bench.method.parallel_training import train_missing
from fiqa_bench.metrics.thresholds import false_matches_allowed
from fiqa_bench.pipeline.cache import remove_temporaries, write_text_atomic
from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.pipeline.embedding import Embeddings, embed_dataset
from fiqa_bench.pipeline.hashing import sha256_json
from fiqa_bench.pipeline.stores import studies_dir
from fiqa_bench.protocol import Protocol, Request
from fiqa_bench.protocol.scoring import (Entry, Scored, Scoring, entries, file_name, head_jobs, progress,
                                         score_spec)
from fiqa_bench.protocol.study import PairList, StudyConfig, StudySet, run_studies
from fiqa_bench.report.plots import plot_evrc
from fiqa_bench.report.provenance import provenance
from fiqa_bench.report.tables import studies_markdown


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
    pairs_note: str = ""

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


def kept_pairs(pairs: Sequence[Pair], keep: np.ndarray) -> tuple[PairList, int]:
    """The listed pairs whose two images are both kept, renumbered into the kept images, and how many
    pairs were left out because an image failed upstream."""
    index = np.cumsum(keep) - 1
    first = np.array([p.first for p in pairs], dtype=np.int64)
    second = np.array([p.second for p in pairs], dtype=np.int64)
    genuine = np.array([p.genuine for p in pairs], dtype=bool)
    both = keep[first] & keep[second]
    return PairList(np.stack([index[first[both]], index[second[both]]], axis=1), genuine[both]), int((~both).sum())


def study(specs: Sequence[MethodSpec], *, protocol: str, dataset: Dataset, context: RunContext,
          quality_models: Sequence[str], deployed_model: str, config: StudyConfig,
          pairs: Sequence[Pair] | None = None, scoring: Scoring | None = None) -> EVRCRun:
    """Embed, score and study (nothing written): see the module docstring.

    Trained methods are scored as ``scoring`` says, by default as the dataset allows (:meth:`Scoring.of`:
    cross-fitted over its identity-disjoint parts where it has them).  With ``pairs`` only the listed pairs
    are compared (a pair-list protocol); a pair with an image that failed upstream is left out and counted.
    Crops already aligned (:attr:`Dataset.aligned_to`) are read by the detector for such crops
    (:meth:`RunContext.for_dataset`).

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
    scoring = scoring or Scoring.of(dataset)
    say = progress(context)
    say(f"{protocol}: embedding {len(dataset)} images of {dataset.name} with {deployed_model}")
    deployed_context = context.for_dataset(dataset).for_model(deployed_model)
    emb = embed_dataset(dataset, deployed_context.model(deployed_model), deployed_context)
    scored = {}
    with training_sets_read_once():  # each head is planned when trained and again when scored
        train_missing(head_jobs(rows, dataset, scoring), context, say)  # side by side, before the rows need them
        for entry in rows:
            say(f"scoring with {entry.label}")
            scored[entry.label] = score_spec(entry.spec, dataset, scoring, context, entry.quality_model)
            if list(scored[entry.label].table.paths) != list(emb.paths):
                raise RuntimeError("internal error: score rows do not follow the dataset order")
    keep = ~emb.failed
    pair_list, pairs_note = None, ""
    if pairs is not None:
        pair_list, dropped = kept_pairs(pairs, keep)
        genuine = int(pair_list.genuine.sum())
        pairs_note = (f"Compared: the {len(pairs)} listed pairs only ({genuine} genuine and "
                      f"{len(pair_list.genuine) - genuine} impostor pairs kept), genuine as the list says; "
                      f"{dropped} pairs left out because an image failed upstream.")
    result = run_studies({label: s.table.quality[keep] for label, s in scored.items()}, emb.embeddings[keep],
                         emb.identities[keep], config, say, checkpoint_dir=studies_dir(context.cache_dir),
                         pairs=pair_list, workers=context.workers)
    return EVRCRun(protocol, dataset, rows, deployed_model, emb, scored, result, config, scoring.note, pairs_note)


def evaluate(specs: Sequence[MethodSpec], *, protocol: str, dataset: Dataset, context: RunContext,
             out_dir: Path, quality_model: str, deployed_model: str, config: StudyConfig,
             pairs: Sequence[Pair] | None = None, scoring: Scoring | None = None) -> Path:
    """:func:`study`, then the results folder written (see the module docstring); returns its path."""
    started = provenance()  # the code as the run starts, before any output (which could mark the tree dirty)
    run = study(specs, protocol=protocol, dataset=dataset, context=context, quality_models=[quality_model],
                deployed_model=deployed_model, config=config, pairs=pairs, scoring=scoring)
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
    progress(context)(f"wrote {out_dir}/: {', '.join(written)}")
    return out_dir


def run_provenance(run: EVRCRun) -> dict:
    """What a run's provenance records beyond the code: protocol, data, models, scorers, settings."""
    emb = run.embeddings
    return dict(
        protocol=run.protocol, methods=[e.label for e in run.entries], deployed_model=run.deployed_model,
        quality_models={e.label: e.quality_model for e in run.entries}, deployed_model_fingerprint=emb.meta["model_fingerprint"],
        scorers={label: s.scorers for label, s in run.scored.items()}, dataset=run.dataset.name,
        **({"pairs": run.pairs_note} if run.pairs_note else {}),
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
    if run.dataset.aligned_to is not None:
        read = detector_card(emb.meta["detector"]).reads_aligned == run.dataset.aligned_to
        how = (f"chips were cut from where that template puts the face ({emb.meta['detector']}), not detected" if read
               else f"their faces were detected anew by {emb.meta['detector']}, as asked (--detector)")
        lines += [f"The images are crops already aligned to the {run.dataset.aligned_to} template; {how}.", ""]
    if run.pairs_note:
        lines += [run.pairs_note, ""]
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


#: What the discard axis of each study axis counts, for the figures.
DISCARD_AXES = {"images": "ratio of unconsidered images", "comparisons": "fraction of genuine comparisons discarded"}


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
        n_impostor = int(first.comparisons.get("n_impostor", 0))
        empty = {f: f"n/a: FMR {f:g} of {n_impostor}\nimpostors allows "
                    f"{false_matches_allowed(f, n_impostor)} false\nmatches; a threshold\nneeds "
                    f"{config.min_false_matches}"
                 for f in config.fmrs if not any(np.isfinite(per[f]).any() for per in fnmr.values())}
        names.append(f"evrc-{policy}.png")
        plot_evrc(out_dir / names[-1], discard, fnmr, band,
                  title=f"EVRC on {run.dataset.name} ({run.protocol}; "
                        f"{first.comparisons.get('n_genuine')} genuine comparisons), "
                        f"{run.direction}, {policy} threshold",
                  xlabel=DISCARD_AXES[config.axis], empty=empty)
    return names


def checked_dataset(dataset: Dataset) -> Dataset:
    """``dataset``, refused when it cannot give an EVRC study (no image, or no genuine comparison)."""
    if not len(dataset):
        raise DatasetError(f"{dataset.name} holds no image")
    counts = Counter(dataset.identities)
    if not dataset.has_identities and dataset.pair_list is not None:
        raise DatasetError(f"{dataset.name} does not say who is in its images (only whether its listed pairs show "
                           f"one person), so it cannot be compared all against all; use --protocol pairs")
    if not dataset.has_identities or not any(n >= 2 for n in counts.values()):
        raise DatasetError(f"{dataset.name}: none of its {len(counts)} identities has two or more images, so there "
                           f"is no genuine comparison to study")
    return dataset


@dataclass(frozen=True)
class EVRCProtocol(Protocol):
    """The EVRC study on one dataset: every method on the same comparisons, random band and bootstrap
    replicates; one results folder (see the module docstring).

    Attributes:
        name, description: as listed by ``fiqa-bench list protocols``.
        dataset: the dataset it runs on (a spec, e.g. ``"lfw"``); None: the request must name one.
        split: the split of :attr:`dataset` (e.g. LFW's ``"devtest"``); None: the whole dataset.
        other_datasets: whether a request may name another dataset than :attr:`dataset`.
    """

    name: str
    description: str
    dataset: str | None = None
    split: str | None = None
    other_datasets: bool = True

    def load(self, request: Request) -> Dataset:
        """The dataset of ``request``, or this protocol's own."""
        spec = request.dataset or self.dataset
        if spec is None:
            raise DatasetError(f"protocol {self.name!r} needs --dataset (e.g. folder:PATH; fiqa-bench list datasets)")
        if request.dataset not in (None, self.dataset) and not self.other_datasets:
            raise DatasetError(f"protocol {self.name!r} runs on {self.dataset} only; for {request.dataset!r} use "
                               f"--protocol evrc")
        split = self.split if spec == self.dataset else None
        return self.checked(load_dataset(spec, request.context.data_root, split, request.context.cache_dir))

    def checked(self, dataset: Dataset) -> Dataset:
        """``dataset``, refused when this protocol cannot study it (:func:`checked_dataset`)."""
        return checked_dataset(dataset)

    def pairs(self, dataset: Dataset, request: Request) -> Sequence[Pair] | None:
        """The pairs to compare; None: every image with every other (this protocol)."""
        return None

    def study_config(self, request: Request) -> StudyConfig:
        """The study's settings: the request's."""
        return request.config

    def scoring(self, dataset: Dataset, request: Request) -> Scoring:
        """How trained methods score ``dataset``: heads trained on ``request.train_on`` when it names a
        training set, else as the dataset allows (:meth:`Scoring.of`)."""
        if request.train_on is None:
            return Scoring.of(dataset)
        return Scoring.trained_on(dataset, request.train_on, request.context)

    def compare(self, methods: Sequence[MethodSpec], request: Request) -> Path:
        """Evaluate ``methods`` on the same comparisons, random band and bootstrap replicates."""
        dataset = self.load(request)
        return evaluate(methods, protocol=self.name, dataset=dataset, context=request.context,
                        out_dir=request.out_dir, quality_model=request.model, deployed_model=request.deployed,
                        config=self.study_config(request), pairs=self.pairs(dataset, request),
                        scoring=self.scoring(dataset, request))

    def study(self, methods: Sequence[MethodSpec], request: Request, quality_models: Sequence[str]) -> EVRCRun:
        """The study of :meth:`compare` with each method on each of ``quality_models``, not written (for
        protocols that combine several)."""
        dataset = self.load(request)
        return study(methods, protocol=self.name, dataset=dataset, context=request.context,
                     quality_models=quality_models, deployed_model=request.deployed,
                     config=self.study_config(request), pairs=self.pairs(dataset, request),
                     scoring=self.scoring(dataset, request))
