"""LFW protocols: the SDD-FIQA paper's LFW setting (Sec. 4.1, Table 1, Fig. 4).

``lfw``: all 13,233 LFW images, every genuine (242,257) and impostor
(about 87.3 million) comparison of the deployed recognition model
(default ``dlib-resnet``), EVRC at FMR 1e-2, 1e-3 and 1e-4 with both
threshold policies, AOC per FMR (paper-compatible Eq. 13) with bootstrap
intervals, and a random-quality band over at least 20 seeds.

``lfw-devtest``: the same on the 3,708 View 1 test-people images (quick).

No image is scored by a model that saw its identity: a trained method is
**cross-fitted** over LFW's identity-disjoint View 1 people split — the model
trained on peopleDevTrain scores the peopleDevTest images and the one trained
on peopleDevTest scores the peopleDevTrain images (the two splits hold all
5,749 people).  A user checkpoint (``--weights``) is used for every image
as given, and the provenance says so.

``run`` evaluates one method and writes a results folder: ``table.md``
(Table 1 layout), ``evrc-recomputed.png`` and ``evrc-fixed.png`` (Fig. 4
layout, one per threshold policy), ``scores.csv``, ``study.json`` (curves,
AOCs, intervals, random band) and ``provenance.json``.  ``compare``
evaluates several on the same embeddings, comparisons, random band and
bootstrap replicates: ``table.md`` has a row per method and the matrix of
paired differences (which method beats which at 95%), the figures have a
curve per method, ``scores/<method>.csv`` hold each method's scores.

A method is named as on the command line, optionally with settings in
brackets: ``sdd``, ``sdd[variant=pos-only]``, ``serfiq[passes=50]``.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from fiqa_bench.context import RunContext
from fiqa_bench.data import Dataset
from fiqa_bench.data.lfw import load_lfw
from fiqa_bench.evaluation import StudyConfig, StudySet, run_studies
from fiqa_bench.hashing import sha256_json
from fiqa_bench.method import PROTOCOLS, MethodSpec, QualityMethod, create_method, settings_for_model
from fiqa_bench.pipeline import Embeddings, embed_dataset
from fiqa_bench.report.plots import plot_evrc
from fiqa_bench.report.provenance import provenance
from fiqa_bench.report.tables import studies_markdown
from fiqa_bench.scoring import ScoreTable, score_dataset

#: split scored -> the View 1 split its scoring model was trained on.
CROSS_FIT = {"devtest": "lfw:devtrain", "devtrain": "lfw:devtest"}


@dataclass(frozen=True)
class LFWProtocol:
    """Which LFW images a run evaluates, and how they are cross-fitted."""

    name: str
    split: str
    folds: tuple[str, ...]
    description: str

    def run(
        self,
        method: str,
        *,
        context: RunContext,
        out_dir: Path,
        weights: Path | None = None,
        settings: Mapping[str, str] | None = None,
        model: str = "dlib-resnet",
        config: StudyConfig = StudyConfig(),
    ) -> Path:
        """Evaluate one method and write its results folder; returns its path."""
        spec = MethodSpec.named(method, settings, weights)
        return self._evaluate([spec], context=context, out_dir=out_dir, model=model, config=config)

    def compare(
        self,
        methods: list[MethodSpec],
        *,
        context: RunContext,
        out_dir: Path,
        model: str = "dlib-resnet",
        config: StudyConfig = StudyConfig(),
    ) -> Path:
        """Evaluate several methods on the same comparisons, random band and bootstrap replicates."""
        if not methods:
            raise ValueError("compare needs at least one method")
        return self._evaluate(methods, context=context, out_dir=out_dir, model=model, config=config)

    def _evaluate(self, specs: list[MethodSpec], *, context: RunContext, out_dir: Path, model: str,
                  config: StudyConfig) -> Path:
        say = _say if context.progress else (lambda message: None)
        started = provenance()  # the code as the run starts, before any output (which could mark the tree dirty)
        dataset = load_lfw(context.data_root, self.split)
        say(f"{self.name}: embedding {len(dataset)} images with {model}")
        emb = embed_dataset(dataset, context.model(model), context)
        tables, scorers = {}, {}
        for spec in specs:
            say(f"scoring with {spec.label}")
            tables[spec.label], scorers[spec.label] = self._score(spec, dataset, context, model)
            if list(tables[spec.label].paths) != list(emb.paths):
                raise RuntimeError("internal error: score rows do not follow the dataset order")
        keep = ~emb.failed
        result = run_studies({label: t.quality[keep] for label, t in tables.items()}, emb.embeddings[keep],
                             emb.identities[keep], config, say, checkpoint_dir=context.cache_dir / "studies")
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if len(specs) == 1:
            tables[specs[0].label].write_csv(out_dir / "scores.csv")
        else:
            for label, table in tables.items():
                table.write_csv(out_dir / "scores" / f"{_file_name(label)}.csv")
        (out_dir / "study.json").write_text(json.dumps(result.to_dict()) + "\n")
        (out_dir / "table.md").write_text(self._header(specs, dataset, emb, tables, scorers, model, keep)
                                          + studies_markdown(result))
        figures = self._plots(result, out_dir, model, config)
        stamp = started | dict(
            protocol=self.name, methods=[spec.label for spec in specs], deployed_model=model,
            deployed_model_fingerprint=emb.meta["model_fingerprint"], scorers=scorers,
            dataset=dataset.name, dataset_list_sha256=sha256_json(emb.image_sha256.tolist()),
            alignment=emb.meta["alignment"], study=asdict(config),
        )
        (out_dir / "provenance.json").write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
        written = ["table.md", *figures, "scores.csv" if len(specs) == 1 else "scores/", "study.json",
                   "provenance.json"]
        say(f"wrote {out_dir}/: {', '.join(written)}")
        return out_dir

    def _header(self, specs: list[MethodSpec], dataset: Dataset, emb: Embeddings, tables: dict[str, ScoreTable],
                scorers: dict[str, list[dict]], model: str, keep: np.ndarray) -> str:
        title = specs[0].label if len(specs) == 1 else ", ".join(spec.label for spec in specs)
        lines = [f"# {title} on {self.name}", "",
                 f"{len(dataset)} LFW images ({self.split}), deployed model {model}, faces detected by "
                 f"{emb.meta['detector']}; {int(emb.failed.sum())} images failed upstream and were left out; "
                 f"{emb.meta['n_fallback_box']} had no face found and were aligned on the fallback box.", ""]
        for spec in specs:
            used = "; ".join(f"{s['images']} with {s['checkpoint'] or 'no checkpoint'}"
                             + (f" (sha256 {s['checkpoint_sha256'][:12]}...)" if s["checkpoint_sha256"] else "")
                             for s in scorers[spec.label])
            missing = int(np.isnan(tables[spec.label].quality[keep]).sum())
            lines.append(f"* {spec.label}: scored {used}; {missing} without a quality.")
        return "\n".join(lines) + "\n\n"

    def _plots(self, result: StudySet, out_dir: Path, model: str, config: StudyConfig) -> list[str]:
        first = result.studies[result.labels[0]]
        discard = np.asarray(first.curves.curves[0].discard_requested)
        names = []
        for policy in config.policies:
            fnmr = {label: {f: result.studies[label].curves.get(policy, f).fnmr for f in config.fmrs}
                    for label in result.labels}
            band = {f: tuple(np.nanpercentile(first.random_fnmr[(policy, f)], q, axis=0) for q in (5, 50, 95))
                    for f in config.fmrs}
            names.append(f"evrc-{policy}.png")
            plot_evrc(out_dir / names[-1], discard, fnmr, band,
                      title=f"EVRC on {self.name} ({first.comparisons.get('n_genuine')} genuine comparisons), "
                            f"deployed {model}, {policy} threshold")
        return names

    def _score(self, spec: MethodSpec, dataset: Dataset, context: RunContext,
               model: str) -> tuple[ScoreTable, list[dict]]:
        """Scores of every image of the protocol split, cross-fitted when the method is trained; a method
        that reads a recognition model reads the deployed ``model`` unless its settings name another."""
        settings = spec.settings if spec.weights is not None else settings_for_model(spec.name, spec.settings, model)
        probe = create_method(spec.name, weights=spec.weights, settings=settings)
        if not probe.card.trained or spec.weights is not None:
            table = score_dataset(probe, dataset, context)
            return table, [_scorer(probe, len(table.paths), "all images (no cross-fitting)")]
        parts, scorers = [], []
        for fold in self.folds:
            method = create_method(spec.name, trained_on=CROSS_FIT[fold], settings=settings)
            part = score_dataset(method, load_lfw(context.data_root, fold), context)
            parts.append(part)
            scorers.append(_scorer(method, len(part.paths), f"lfw:{fold} images"))
        return _merge(parts, dataset.paths), scorers


def _file_name(label: str) -> str:
    return re.sub(r"[^\w.=-]+", "_", label).strip("_")


def _scorer(method: QualityMethod, n: int, scope: str) -> dict:
    """Who scored which images: the weights by file name and sha256 (never a path of this machine)."""
    checkpoint = Path(method.card.weights).name if method.card.weights_sha256 else ""
    return {"images": f"{n} {scope}", "checkpoint": checkpoint, "checkpoint_sha256": method.card.weights_sha256,
            "method_fingerprint": method.fingerprint()}

def _merge(parts: list[ScoreTable], order: list[Path]) -> ScoreTable:
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


def _say(message: str) -> None:
    print(f"[fiqa-bench] {message}", file=sys.stderr, flush=True)


LFW = LFWProtocol("lfw", "all", ("devtest", "devtrain"), "SDD-FIQA's LFW setting: all 13,233 images, "
                  "all-vs-all, FMR 1e-2/1e-3/1e-4, both policies, cross-fitted")
LFW_DEVTEST = LFWProtocol("lfw-devtest", "devtest", ("devtest",),
                          "quick LFW check: the 3,708 View 1 test-people images")

for _protocol in (LFW, LFW_DEVTEST):
    PROTOCOLS.add(_protocol.name, _protocol, description=_protocol.description)
