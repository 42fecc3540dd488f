"""``bias``: does a quality score depend on who is in the picture, and whom does rejecting by it help?
(SDD-FIQA Sec. 4.2.4, Fig. 5, after Terhörst et al. 2020.)

Two questions, on real labels:

1. **Distributions** (every dataset with labels): per attribute (UTKFace: age group, race, gender;
   LFW: gender; Adience: age, gender; any dataset: a CSV ``path,<attribute>...``) the distribution of
   each method's quality per group, and for every pair of groups the Wasserstein distance and the
   two-sample KS test with its p-value (:mod:`fiqa_bench.metrics.bias`).  The paper's Fig. 5 draws
   raw score distributions, whose distances only compare groups *within* a method; to compare methods,
   the table also gives the distance of the qualities' rank percentiles over all images (scale-free,
   in [0, 1)): the larger it is, the more the score depends on the attribute.  ``fig5.png`` draws the
   distributions in the paper's layout (a row per attribute, a column per method).
2. **Errors** (datasets with identities: LFW with its gender labels, Adience, a labelled folder):
   per group, FNMR of the deployed model at the global threshold of each FMR (set once on all
   impostor comparisons), as the lowest-quality images of *all* groups are discarded, and the share of
   each group's images discarded: does rejection remove one group more than the other, and whose errors
   fall?  ``group-errors-fmr<F>.png`` draws both.  UTKFace has no identities, so only question 1.

Datasets (``--dataset``; the labels are the dataset's own, :attr:`fiqa_bench.data.Dataset.attributes`):
``utkface`` (default; ``<data root>/utkface``), ``lfw`` (with ``lfw/gender/``), ``adience`` (``<data
root>/adience``, the aligned release with its fold files), or any dataset with ``--attributes CSV``
(which replaces a dataset's own labels).  Labels that cannot be read (malformed names, conflicting
lists) are counted in the table and never guessed.  Trained methods are scored as the dataset allows
(LFW: cross-fitted as in ``lfw``; elsewhere their shipped model trained on LFW peopleDevTrain, and the
table says so).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from fiqa_bench.data import Dataset, DatasetError, load_dataset
from fiqa_bench.data.attributes import AttributeTable, load_attribute_csv
from fiqa_bench.method import MethodSpec
from fiqa_bench.metrics import all_vs_all, threshold_at_fmr
from fiqa_bench.metrics.bias import group_distributions, group_error_rates, pairwise_group_tests
from fiqa_bench.metrics.discard import DEFAULT_DISCARD_FRACTIONS
from fiqa_bench.pipeline.cache import write_text_atomic
from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.pipeline.embedding import embed_dataset
from fiqa_bench.pipeline.hashing import sha256_json
from fiqa_bench.protocol import PROTOCOLS, Option, Protocol, Request
from fiqa_bench.protocol.scoring import Scoring, entries, file_name, progress, score_spec
from fiqa_bench.protocol.study import StudyConfig
from fiqa_bench.recognition import model_reference
from fiqa_bench.report.plots import plot_group_distributions, plot_group_errors
from fiqa_bench.report.provenance import provenance


@dataclass(frozen=True)
class LabelledData:
    """A dataset, its attribute labels, the attributes to study and how trained methods score it."""

    dataset: Dataset
    labels: AttributeTable
    attributes: tuple[str, ...]
    scoring: Scoring
    has_identities: bool


def labelled_data(spec: str | None, context: RunContext, attributes_csv: Path | None) -> LabelledData:
    """The dataset ``spec`` names (default ``utkface``) with its own labels, or those of ``attributes_csv``."""
    dataset = load_dataset(spec or "utkface", context.data_root, cache_dir=context.cache_dir)
    if attributes_csv is not None:
        table = load_attribute_csv(Path(attributes_csv), root=dataset.root)
    elif dataset.attributes is not None:
        table = dataset.attributes()
    else:
        raise DatasetError(f"protocol 'bias' needs labels: {dataset.name} has none of its own; give --attributes CSV "
                           f"(columns path,<attribute>...) or a dataset with labels (utkface, lfw, adience)")
    return LabelledData(dataset, table, table.groups_to_study, Scoring.of(dataset), dataset.has_identities)


@dataclass(frozen=True)
class BiasProtocol(Protocol):
    """Fig. 5 and the per-group error study."""

    name: str = "bias"
    description: str = ("SDD-FIQA Fig. 5: quality distributions per demographic group (UTKFace age/race/gender, "
                        "LFW gender, Adience, any CSV) with Wasserstein/KS, and per-group FNMR under rejection")
    options: tuple[Option, ...] = (Option("attributes", "CSV path,<attribute>... labelling the dataset's images "
                                          "(replaces its own labels)", Path),)

    def compare(self, methods: Sequence[MethodSpec], request: Request) -> Path:
        """Several methods on the same images and labels."""
        started = provenance()
        context, config, out_dir = request.context, request.config, request.out_dir
        say = progress(context)
        data = labelled_data(request.dataset, context, request.options.get("attributes"))
        deployed = model_reference(request.deployed)
        out_dir.mkdir(parents=True, exist_ok=True)
        rows = entries(methods, [model_reference(request.model)], deployed)
        qualities, scorers, faces = {}, {}, {}
        for entry in rows:
            say(f"{self.name}: scoring {len(data.dataset)} images of {data.dataset.name} with {entry.label}")
            scored = score_spec(entry.spec, data.dataset, data.scoring, context, entry.quality_model)
            qualities[entry.label], scorers[entry.label] = scored.table.quality, scored.scorers
            faces[entry.label] = int(sum(not f.startswith("found") for f in scored.table.face))
            scored.table.write_csv(out_dir / "scores" / f"{file_name(entry.label)}.csv")
        groups = {a: data.labels.for_dataset(data.dataset, a) for a in data.attributes}
        study: dict = {"distributions": {}, "tests": {}, "errors": {}}
        lines = [f"# Quality bias on {data.dataset.name}: {', '.join(qualities)}", "",
                 f"{len(data.dataset)} images; attributes {', '.join(data.attributes)}; "
                 + "; ".join(f"{a}: " + ", ".join(f"{g} {n}" for g, n in data.labels.counts(a).items())
                             for a in data.attributes) + ".",
                 f"Labels not read: {data.labels.issue_counts() or 'none'} (never guessed; those images are left "
                 f"out of the groups). Images without a face found (scored on the fallback box): "
                 + ", ".join(f"{k} {v}" for k, v in faces.items()) + ".", ""]
        if data.scoring.note:
            lines += [data.scoring.note, ""]
        lines += ["## Which score depends most on the attribute?", "",
                  "Largest Wasserstein distance between two groups' quality rank percentiles (scale-free, "
                  "comparable across methods; 0 = identical distributions), with that pair's KS p-value:", "",
                  summary_frame(qualities, groups).to_markdown(index=False, disable_numparse=True), ""]
        grid: dict[str, dict[str, dict[str, np.ndarray]]] = {}
        for attribute, labels in groups.items():
            order = [g for g in data.labels.orders.get(attribute, ()) if g in set(labels)] or None
            grid[attribute] = {}
            labels_array = np.array([g if g is not None else "" for g in labels], dtype=object)
            for label, quality in qualities.items():
                dist = group_distributions(quality, labels, order=order)
                tests = pairwise_group_tests(quality, labels, order=order)
                study["distributions"].setdefault(attribute, {})[label] = dist.to_dict()
                study["tests"].setdefault(attribute, {})[label] = tests.to_dict()
                lines += [f"## {label}: {attribute}", "", dist.to_markdown(), "", tests.to_markdown(), ""]
                grid[attribute][label] = {g.group: quality[(labels_array == g.group) & np.isfinite(quality)]
                                          for g in dist.groups}
        figures = ["fig5.png"]
        plot_group_distributions(out_dir / "fig5.png", grid,
                                 title=f"Quality by group on {data.dataset.name} (SDD-FIQA Fig. 5 layout)")
        if data.has_identities:
            figures += self._errors(data, groups, qualities, deployed, context, config, out_dir, study, lines)
        write_text_atomic(out_dir / "study.json", json.dumps(study, default=_plain) + "\n")
        write_text_atomic(out_dir / "table.md", "\n".join(lines))
        stamp = started | dict(protocol=self.name, methods=list(qualities), dataset=data.dataset.name,
                               attributes=list(data.attributes), scorers=scorers, deployed_model=deployed,
                               label_issues=data.labels.issue_counts(), study=asdict(config),
                               dataset_list_sha256=sha256_json(data.dataset.relative_paths()),
                               scoring=data.scoring.note)
        write_text_atomic(out_dir / "provenance.json", json.dumps(stamp, indent=2, sort_keys=True) + "\n")
        say(f"wrote {out_dir}/: table.md, {', '.join(figures)}, scores/, study.json, provenance.json")
        return out_dir

    def _errors(self, data: LabelledData, groups: dict[str, list], qualities: dict[str, np.ndarray], deployed: str,
                context: RunContext, config: StudyConfig, out_dir: Path, study: dict, lines: list[str]) -> list[str]:
        """Per-group FNMR at the global threshold of each FMR, under global rejection by quality."""
        deployed_context = context.for_model(deployed)
        emb = embed_dataset(data.dataset, deployed_context.model(deployed), deployed_context)
        keep = ~emb.failed
        comps = all_vs_all(emb.embeddings[keep], emb.identities[keep])
        discard = np.asarray(DEFAULT_DISCARD_FRACTIONS)
        figures = []
        for fmr in config.fmrs:
            threshold = threshold_at_fmr(comps.impostor_scores, fmr)
            if threshold.insufficient:
                lines += [f"## Errors per group at FMR {fmr:g}: n/a (too few impostor comparisons)", ""]
                continue
            panels: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
            for attribute, labels in groups.items():
                kept_labels = [g for g, k in zip(labels, keep) if k]
                for label, quality in qualities.items():
                    rates = group_error_rates(comps, kept_labels, quality[keep], threshold.threshold, discard)
                    study["errors"].setdefault(f"{fmr:g}", {}).setdefault(attribute, {})[label] = rates.to_dict()
                    lines += [f"## Errors per {attribute} group, {label}, global threshold at FMR {fmr:g} "
                              f"({deployed}, {comps.n_genuine} genuine comparisons)", "", rates.to_markdown(), ""]
                    panels[f"{label} ({attribute})"] = {
                        str(g.group): (g.fnmr, g.images_discarded) for g in rates.groups}
            name = f"group-errors-fmr{fmr:g}.png"
            plot_group_errors(out_dir / name, discard, panels,
                              title=f"Per-group FNMR of {deployed} at the global threshold for FMR {fmr:g}, "
                                    f"discarding by quality on {data.dataset.name}")
            figures.append(name)
        return figures


def summary_frame(qualities: Mapping[str, np.ndarray], groups: Mapping[str, list]) -> pd.DataFrame:
    """Rows: a method; columns: per attribute, the largest rank-percentile Wasserstein distance of two
    groups (which pair) and its KS p-value."""
    rows = []
    for label, quality in qualities.items():
        row = [label]
        for attribute, labels in groups.items():
            tests = pairwise_group_tests(quality, labels)
            finite = [t for t in tests.pairs if np.isfinite(t.wasserstein_rank)]
            if not finite:
                row.append("n/a")
                continue
            worst = max(finite, key=lambda t: t.wasserstein_rank)
            row.append(f"{worst.wasserstein_rank:.4f} ({worst.group_a} vs {worst.group_b}, p = {worst.ks_pvalue:.2g})")
        rows.append(row)
    return pd.DataFrame(rows, columns=["method", *groups])


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


BIAS = BiasProtocol()
PROTOCOLS.add(BIAS.name, BIAS, description=BIAS.description)
