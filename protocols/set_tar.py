"""``set-tar``: set-based verification with quality weighting (SDD-FIQA Sec. 4.2.3, Table 2, after PCNet).

A template (a set of images of one person) is described by the quality-weighted mean of its images'
embeddings, ``f(x) = 1/n sum_i phi(x_i) f(x_i)`` (L2-normalised embeddings and descriptor,
:func:`fiqa_bench.metrics.templates.template_descriptors`); templates are compared by cosine and TAR is
read at FMR 1e-2/1e-3/1e-4 at the exact threshold of the impostor template pairs.  The baseline weighs
every image alike.  A quality becomes a non-negative weight by a monotone map
(:func:`~fiqa_bench.metrics.templates.quality_weights`): ``minmax`` (affine to [0, 1] over the dataset)
and ``rank`` (normalised rank, scale-free) are both reported, since the paper does not say how its
qualities were turned into weights and the answer can depend on it.

Data (``--dataset``, asked for its templates, never by name):

* a dataset with identities (default ``lfw``; any ``folder:PATH``): real sets: every person with at
  least 4 usable images (610 people of LFW) has their images shuffled (seeded per person) and split
  into two templates; the genuine pairs are each person's two templates, the impostor pairs every pair
  of templates of different people (about 743,000 on LFW).  Trained methods are scored as the dataset
  allows (LFW: cross-fitted over the View 1 people split as in ``lfw``).  Intervals: identity
  bootstrap (a person's genuine pair and all their impostor pairs move together), paired across rows,
  so each row's gain over the baseline has its own interval.
* a dataset with templates of its own (:attr:`fiqa_bench.data.Dataset.templates`): ``--dataset ijbc``
  (``<data root>/ijbc``) or ``ijbc:PATH``, IJB-C's 1:1 template protocol in the insightface metadata
  layout (:func:`fiqa_bench.data.ijbc.load_ijbc`).  The loose crops are aligned by the deployed model's
  own detector (the metadata's five points are read and checked, not used), and trained methods use
  their shipped models (no cross-fitting possible).  The metadata does not say which subject a
  template shows, so the bootstrap resamples templates (intervals somewhat narrow).

Output: ``table.md`` (Table 2 layout with intervals and the gain over the baseline), ``study.json``,
``scores/<method>.csv`` and ``provenance.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from fiqa_bench.data import Dataset, load_dataset
from fiqa_bench.method import MethodSpec
from fiqa_bench.metrics.templates import (
    TemplatePairs,
    bootstrap_set_tar,
    quality_weights,
    set_verification,
    split_identity_templates,
    template_descriptors,
)
from fiqa_bench.pipeline.cache import write_text_atomic
from fiqa_bench.pipeline.embedding import embed_dataset
from fiqa_bench.pipeline.hashing import sha256_json
from fiqa_bench.protocol import PROTOCOLS, Protocol, Request
from fiqa_bench.protocol.scoring import Scoring, entries, file_name, progress, score_spec
from fiqa_bench.protocol.study import StudyConfig
from fiqa_bench.recognition import model_reference
from fiqa_bench.report.provenance import provenance

#: The weighting schemes reported for every method (see the module docstring).
SCHEMES = ("minmax", "rank")
#: Templates split from a dataset's people: people with at least this many images, split in two.
MIN_IMAGES = 4


@dataclass(frozen=True)
class TemplateSet:
    """Which images form which template, the template pairs, and the bootstrap unit of each template."""

    template_of_image: np.ndarray
    pairs: TemplatePairs
    subjects: np.ndarray | None
    description: str
    record: dict


def split_templates(dataset: Dataset, usable: np.ndarray, seed: int) -> TemplateSet:
    """Real sets from a dataset's people: each person with >= :data:`MIN_IMAGES` usable images split into two
    seeded templates (the genuine pair); every two templates of different people are an impostor pair."""
    identities = np.array(dataset.identities, dtype=object)
    identities[~usable] = None  # an image the deployed model could not embed joins no template
    kept = np.flatnonzero(usable)
    split = split_identity_templates(identities[kept].astype(str), min_images=MIN_IMAGES, seed=seed)
    template_of_image = np.full(len(dataset), -1, dtype=np.int64)
    template_of_image[kept] = split.template_of_image
    return TemplateSet(template_of_image, split.pairs, split.template_subjects,
                       f"{dataset.name} people with >= {MIN_IMAGES} usable images, each split into two templates "
                       f"(seed {seed}): {split.n_templates} templates, {split.pairs.n_genuine} genuine and "
                       f"{split.pairs.n_impostor} impostor template pairs", {})


def own_templates(dataset: Dataset) -> TemplateSet:
    """The template protocol the dataset comes with (IJB-C's 1:1 templates)."""
    templates = dataset.templates()
    return TemplateSet(templates.template_of_image, templates.pairs, templates.bootstrap_subjects,
                       f"{dataset.name}'s own templates: {templates.n_templates} templates, "
                       f"{templates.pairs.n_genuine} genuine and {templates.pairs.n_impostor} impostor pairs; "
                       f"bootstrap over {'subjects' if templates.subjects_known else 'templates'}",
                       {"template_protocol": templates.to_dict()})


@dataclass(frozen=True)
class SetTARProtocol(Protocol):
    """Table 2: TAR of quality-weighted template descriptors against the unweighted baseline."""

    name: str = "set-tar"
    description: str = ("SDD-FIQA Table 2: set-based TAR@FMR with quality-weighted templates vs unweighted "
                        "(LFW real sets, any dataset's people split in two, or IJB-C's own templates)")

    def compare(self, methods: Sequence[MethodSpec], request: Request) -> Path:
        """Several methods against the baseline on the same templates, pairs and bootstrap replicates."""
        started = provenance()
        context, config, out_dir = request.context, request.config, request.out_dir
        say = progress(context)
        deployed = model_reference(request.deployed)
        data = load_dataset(request.dataset or "lfw", context.data_root, cache_dir=context.cache_dir)
        scoring = Scoring.of(data)
        deployed_context = context.for_model(deployed)
        say(f"{self.name}: embedding {len(data)} images of {data.name} with {deployed}")
        emb = embed_dataset(data, deployed_context.model(deployed), deployed_context)
        templates = own_templates(data) if data.templates else split_templates(data, ~emb.failed, config.seed)
        template_of_image = np.where(emb.failed, -1, templates.template_of_image)
        rows = entries(methods, [model_reference(request.model)], deployed)
        qualities, scorers = {}, {}
        for entry in rows:
            say(f"scoring with {entry.label}")
            scored = score_spec(entry.spec, data, scoring, context, entry.quality_model)
            qualities[entry.label] = scored.table.quality
            scorers[entry.label] = scored.scorers
            scored.table.write_csv(out_dir / "scores" / f"{file_name(entry.label)}.csv")
        say(f"{self.name}: {templates.pairs.n_genuine} genuine and {templates.pairs.n_impostor} impostor template pairs")
        table = set_tar_study(emb.embeddings, template_of_image, templates.pairs, templates.subjects, qualities,
                              config)
        description = f"{templates.description}; {scoring.note}"
        write_text_atomic(out_dir / "study.json", json.dumps(table, default=float) + "\n")
        write_text_atomic(out_dir / "table.md", table_markdown(table, f"# Set-based verification ({self.name}) on "
                                                                f"{data.name}, deployed {deployed}",
                                                         description, emb.meta, config))
        stamp = started | dict(protocol=self.name, methods=[e.label for e in rows], deployed_model=deployed,
                               deployed_model_fingerprint=emb.meta["model_fingerprint"], scorers=scorers,
                               dataset=data.name, dataset_list_sha256=sha256_json(emb.image_sha256.tolist()),
                               alignment=emb.meta["alignment"], study=asdict(config), templates=description,
                               weight_schemes=list(SCHEMES), **templates.record)
        write_text_atomic(out_dir / "provenance.json", json.dumps(stamp, indent=2, sort_keys=True) + "\n")
        say(f"wrote {out_dir}/: table.md, study.json, scores/, provenance.json")
        return out_dir


def set_tar_study(embeddings: np.ndarray, template_of_image: np.ndarray, pairs: TemplatePairs,
                  subjects: np.ndarray | None, qualities: Mapping[str, np.ndarray], config: StudyConfig) -> dict:
    """TAR at each FMR for the baseline and every (method, scheme), with bootstrap intervals and the paired
    interval of each row's gain over the baseline (the same replicates for every row)."""
    n_templates = int(max(template_of_image.max(initial=-1), pairs.first.max(initial=-1),
                          pairs.second.max(initial=-1))) + 1
    embeddings = np.where(np.isfinite(embeddings), embeddings, 0.0)  # rows of failed images join no template
    rows: dict[str, np.ndarray | None] = {"baseline (unweighted)": None}
    for label, quality in qualities.items():
        for scheme in SCHEMES:
            rows[f"{label} ({scheme})"] = quality_weights(quality, scheme)
    out: dict = {"fmrs": list(config.fmrs), "n_boot": config.n_boot, "seed": config.seed,
                 "confidence": config.confidence, "n_genuine": pairs.n_genuine, "n_impostor": pairs.n_impostor,
                 "rows": {}}
    baseline_reps = None
    for label, weights in rows.items():
        desc = template_descriptors(embeddings, template_of_image, weights, n_templates=n_templates)
        ver = set_verification(desc.descriptors, pairs.first, pairs.second, pairs.genuine, config.fmrs)
        row = {"tar": [float(x) for x in ver.tar], "n_fallback_unweighted": desc.n_fallback_unweighted}
        if config.n_boot:
            boot = bootstrap_set_tar(desc.descriptors, pairs.first, pairs.second, pairs.genuine, subjects, config.fmrs,
                                     n_boot=config.n_boot, confidence=config.confidence, seed=config.seed)
            row |= {"low": boot.low.tolist(), "high": boot.high.tolist()}
            if baseline_reps is None:
                baseline_reps = boot.replicates
            else:
                gain = boot.replicates - baseline_reps
                alpha = (1 - config.confidence) / 2
                row |= {"gain": (ver.tar - np.asarray(out["rows"]["baseline (unweighted)"]["tar"])).tolist(),
                        "gain_low": np.nanquantile(gain, alpha, axis=0).tolist(),
                        "gain_high": np.nanquantile(gain, 1 - alpha, axis=0).tolist()}
        out["rows"][label] = row
    return out


def table_markdown(study: dict, title: str, description: str, meta: dict, config: StudyConfig) -> str:
    """Table 2 layout: a row per weighting, TAR per FMR with its interval, the Avg, then the gains."""
    fmrs = study["fmrs"]
    lines = [title, "", description + f"; faces of the deployed model detected by {meta['detector']}, "
             f"{meta['n_fallback_box']} images aligned on the fallback box, {meta['n_failed']} failed (in no template).",
             ""]
    table = []
    for label, row in study["rows"].items():
        cells = [f"{t:.4f}" + (f" [{lo:.4f}, {hi:.4f}]" if "low" in row else "") if np.isfinite(t) else "n/a"
                 for t, lo, hi in zip(row["tar"], row.get("low", row["tar"]), row.get("high", row["tar"]))]
        table.append([label, *cells, f"{np.mean(row['tar']):.4f}"])
    frame = pd.DataFrame(table, columns=["weighting", *(f"TAR@FMR={f:g}" for f in fmrs), "Avg"])
    lines += [frame.to_markdown(index=False, disable_numparse=True), ""]
    gains = [[label, *(f"{g:+.4f} [{lo:+.4f}, {hi:+.4f}]" + (" **" if lo > 0 or hi < 0 else "")
                       for g, lo, hi in zip(row["gain"], row["gain_low"], row["gain_high"]))]
             for label, row in study["rows"].items() if "gain" in row]
    if gains:
        lines += [f"Gain over the baseline, TAR(row) - TAR(baseline), with its {config.confidence:.0%} paired "
                  f"bootstrap interval (`**`: the interval excludes 0):", "",
                  pd.DataFrame(gains, columns=["weighting", *(f"FMR={f:g}" for f in fmrs)]).to_markdown(
                      index=False, disable_numparse=True), ""]
    lines += [f"{study['n_genuine']} genuine and {study['n_impostor']} impostor template pairs; descriptor = "
              "L2-normalised weighted mean of L2-normalised embeddings; accept if cosine > the highest rejected "
              f"impostor score; intervals: {config.n_boot} bootstrap replicates (seed {config.seed}).", ""]
    return "\n".join(lines)


SET_TAR = SetTARProtocol()
PROTOCOLS.add(SET_TAR.name, SET_TAR, description=SET_TAR.description)
