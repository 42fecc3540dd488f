"""``cross-model``: quality from methods built on one recognition model, errors of another (SDD-FIQA
Sec. 4.2.2, Tables 3 and 4), every direction the two models allow, in one table.

``fiqa-bench compare --protocol cross-model --methods sdd,pcnet,brisque --model dlib-resnet
--deployed-model mobilefacenet-512`` runs the ``lfw`` study (all 13,233 images, cross-fitted) once
per deployed model.  In each, every method that reads a recognition model is scored twice, on its
quality model's own features and shipped heads (``sdd on dlib-resnet``, ``sdd on
mobilefacenet-512``); a method that reads none (BRISQUE, pose ...) once.  All rows of one deployed
model share its comparisons, random band and bootstrap replicates, so the table gives the four
directions A -> A, A -> B, B -> A, B -> B and, with paired intervals, whether the quality a method
learnt from one model serves the other as well as the other's own (the paired difference of
``M on A`` and ``M on B`` under the same deployed model).

Any registered model (``lbp``) and any user checkpoint (``iresnet@/path/ckpt.pt``) can take either
place; a learned method needs a shipped (or user-trained) head for the quality model.

Output: ``table.md`` (the summary: Avg AOC per direction and policy, the transfer differences, then
each deployed model's full Table 1 layout), one folder per deployed model
(``deployed-<model>/``: the ``lfw`` results folder of that study) and ``provenance.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from fiqa_bench.method import MethodSpec
from fiqa_bench.pipeline.cache import write_text_atomic
from fiqa_bench.protocol import PROTOCOLS, Protocol, Request
from fiqa_bench.protocol.evrc import EVRCProtocol, EVRCRun, run_provenance, write_run
from fiqa_bench.protocol.scoring import file_name, progress
from fiqa_bench.protocols.lfw import LFW
from fiqa_bench.recognition import model_reference
from fiqa_bench.report.provenance import provenance
from fiqa_bench.report.tables import aoc_table


@dataclass(frozen=True)
class CrossModelProtocol(Protocol):
    """Every direction between two recognition models, on one LFW protocol."""

    base: EVRCProtocol
    name: str = "cross-model"
    description: str = ("SDD-FIQA Tables 3/4: methods built on --model and on --deployed-model, errors of each, "
                        "all four directions in one table (LFW, cross-fitted)")

    def compare(self, methods: Sequence[MethodSpec], request: Request) -> Path:
        """The four directions for several methods; see the module docstring."""
        if request.dataset not in (None, self.base.dataset):
            raise ValueError(f"protocol {self.name!r} runs on LFW (its trained methods are cross-fitted there); "
                             f"got --dataset {request.dataset!r}")
        if not request.deployed_model or model_reference(request.deployed_model) == model_reference(request.model):
            raise ValueError(f"protocol {self.name!r} needs two recognition models: --model A --deployed-model B "
                             f"(got {request.model!r} and {request.deployed_model!r})")
        started = provenance()
        models = [model_reference(request.model), model_reference(request.deployed_model)]
        out_dir = request.out_dir
        runs = []
        for deployed in models:
            run = self.base.study(methods, replace(request, deployed_model=deployed), models)
            write_run(run, out_dir / f"deployed-{file_name(deployed)}", started, request.context)
            runs.append(run)
        write_text_atomic(out_dir / "table.md", summary_markdown(runs, self.name))
        stamp = started | {"protocol": self.name, "models": models,
                           "studies": {f"deployed-{file_name(r.deployed_model)}": run_provenance(r) for r in runs}}
        write_text_atomic(out_dir / "provenance.json", json.dumps(stamp, indent=2, sort_keys=True) + "\n")
        progress(request.context)(f"wrote {out_dir}/: table.md, deployed-*/, provenance.json")
        return out_dir


def direction_frame(runs: list[EVRCRun], policy: str) -> pd.DataFrame:
    """Rows: a method; columns ``quality model -> deployed model``: the Avg AOC over the study's FMRs
    (``*`` marks an AOC above the random band's 95th percentile at every FMR)."""
    table: dict[str, dict[str, str]] = {}
    for run in runs:
        fmrs = run.config.fmrs
        for entry in run.entries:
            study = run.result.studies[entry.label]
            avg = float(np.mean([study.aoc[(policy, f)] for f in fmrs]))
            mark = "*" if all(study.above_random(policy, f) for f in fmrs) else ""
            column = f"{entry.source} -> {run.deployed_model}"
            table.setdefault(entry.spec.label, {})[column] = "n/a" if np.isnan(avg) else f"{avg:.4f}{mark}"
    columns = sorted({c for row in table.values() for c in row}, key=lambda c: (c.split(" -> ")[1], c))
    return pd.DataFrame([[method, *(row.get(c, "") for c in columns)] for method, row in table.items()],
                        columns=["method", *columns])


def transfer_frame(runs: list[EVRCRun], policy: str) -> pd.DataFrame:
    """Per deployed model, method and FMR: AOC(method on the other model) - AOC(method on the deployed
    model itself), with the paired bootstrap interval (negative: the quality transfers worse)."""
    rows = []
    for run in runs:
        own = {e.spec.label: e.label for e in run.entries if e.quality_model == run.deployed_model}
        for entry in run.entries:
            if entry.quality_model == run.deployed_model or entry.spec.label not in own or entry.label == entry.spec.label:
                continue
            for fmr in run.config.fmrs:
                ci = run.result.differences.get((policy, fmr), {}).get((entry.label, own[entry.spec.label]))
                if ci is None:
                    continue
                rows.append({"deployed": run.deployed_model, "method": entry.spec.label, "quality from":
                             entry.quality_model, "FMR": f"{fmr:g}", "AOC(cross) - AOC(same)":
                             f"{ci.estimate:+.4f} [{ci.low:+.4f}, {ci.high:+.4f}]",
                             "significant": "yes" if ci.low > 0 or ci.high < 0 else "no"})
    return pd.DataFrame(rows)


def summary_markdown(runs: list[EVRCRun], name: str) -> str:
    """The cross-model table: directions, transfers, then each deployed model's Table 1 layout."""
    config = runs[0].config
    n_images = len(runs[0].dataset)
    out = [f"# Cross-model EVRC on LFW ({n_images} images, cross-fitted): {', '.join(r.deployed_model for r in runs)}",
           "",
           "Quality from methods built on the model left of the arrow, errors of the deployed model right of it "
           "(SDD-FIQA Tables 3, 4). Avg AOC over FMR " + "/".join(f"{f:g}" for f in config.fmrs)
           + "; `*`: above the random band's 95th percentile at every FMR. Each deployed model's full table, "
           "figures and scores are in `deployed-<model>/`.", ""]
    for policy in config.policies:
        out += [f"## Avg AOC by direction, {policy} threshold", "",
                direction_frame(runs, policy).to_markdown(index=False, disable_numparse=True), ""]
    if config.n_boot:
        for policy in config.policies:
            frame = transfer_frame(runs, policy)
            if len(frame):
                out += [f"## Does the quality transfer? {policy} threshold ({config.confidence:.0%} paired intervals)",
                        "", frame.to_markdown(index=False, disable_numparse=True), ""]
    for run in runs:
        for policy in config.policies:
            out += [f"## Deployed {run.deployed_model}: AOC, {policy} threshold", "", aoc_table(run.result, policy), ""]
    return "\n".join(out)


CROSS_MODEL = CrossModelProtocol(LFW)
PROTOCOLS.add(CROSS_MODEL.name, CROSS_MODEL, description=CROSS_MODEL.description)
