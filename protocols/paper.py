"""``fiqa-bench paper``: SDD-FIQA's Tables 1-4 and Figures 4-7 regenerated from the data available, with the
paper's published numbers beside ours (the paper itself is ``protocols/paper.py``'s specification).

What each item runs (every one a registered protocol, so each number can be rerun alone):

* Tables 1, 3, 4 and Figure 4: the ``cross-model`` protocol on LFW with the two real recognition models
  (default ``dlib-resnet`` and ``mobilefacenet-512``) and the paper's contestants that can be made real
  here.  Table 1 (same model) reads the rows ``M on A`` under deployed ``A``, for both models; Tables 3
  and 4 (cross model) read ``M on A`` under deployed ``B``.  The paper's quality model is ResNet50-MS1M
  and its deployed models ResNet101-MS1M (Table 3) and ResNet101-CASIA (Table 4); ours are the two
  models we have, in both directions.  Figure 4 is each study's ``evrc-*.png``.
* Table 2: ``set-tar`` on LFW's real sets (SER-FIQ, PCNet, SDD-FIQA weighting vs the baseline), and on
  IJB-C when it is found.
* Figure 5: ``bias`` on UTKFace (age group, race, gender: the paper's rows and more) for SDD-FIQA,
  SER-FIQ and PCNet, and on LFW with its gender labels (per-group errors, which the paper does not show).
* Figures 6 and 7: ``ablation`` (label variants; m and K sweeps).

Adience and IJB-C are not shipped: their cells say "dataset not found at PATH" unless they are under the
data root (``adience/``, ``ijbc/``), in which case Table 1's rows for them come from the ``evrc``
protocol (trained methods: shipped models, no cross-fitting) and Table 2's from ``set-tar``.
BLIINDS-II and PQR are not registered (they need models trained on IQA data we do not have): their
rows say so.

Everything goes to ``results/paper/`` (``--out``): one folder per protocol run, ``table<N>.md`` and
``figure<N>.md`` beside them with the paper's numbers, ``README.md`` indexing it all, and each folder's
``provenance.json``.  The published numbers are data (``fiqa_bench/report/published/``) with their source.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from fiqa_bench.pipeline.cache import write_text_atomic
from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.protocol.study import StudyConfig
from fiqa_bench.method import MethodSpec
from fiqa_bench.protocol import Request
from fiqa_bench.protocol.scoring import file_name, progress
from fiqa_bench.report.provenance import provenance

#: The paper's rows -> our registered method (None: not registered, with the reason).
PAPER_METHODS: dict[str, str | None] = {
    "BRISQUE": "brisque", "BLIINDS-II": None, "PQR": None, "FaceQnet-V0": "faceqnet-v0",
    "FaceQnet-V1": "faceqnet-v1", "PFE": "pfe", "SER-FIQ": "serfiq", "PCNet": "pcnet", "SDD-FIQA": "sdd",
}
NOT_REGISTERED = "BLIINDS-II and PQR are not registered here: they need models trained on IQA data that is not available"
#: Table 2's and Figure 5's methods.
SET_METHODS = ("serfiq", "pcnet", "sdd")
ITEMS = ("table1", "table2", "table3", "table4", "figure4", "figure5", "figure6", "figure7")
DATASETS = ("LFW", "Adience", "IJB-C")


def published() -> dict:
    """The paper's Tables 1-4 as printed, with their source (``fiqa_bench/report/published/``)."""
    text = resources.files("fiqa_bench.report").joinpath("published/sdd_fiqa_cvpr2021.json").read_text()
    return json.loads(text)


def parse_items(table: list[int] | None, figure: list[int] | None, everything: bool) -> list[str]:
    """The items asked for: ``--table N`` / ``--figure N`` (repeatable) or ``--all``."""
    items = [f"table{n}" for n in table or []] + [f"figure{n}" for n in figure or []]
    if everything:
        items = list(ITEMS)
    unknown = [i for i in items if i not in ITEMS]
    if unknown or not items:
        raise ValueError(f"the paper has Tables 1-4 and Figures 4-7; asked for {unknown or 'nothing'} "
                         f"(use --table N, --figure N or --all)")
    return [i for i in ITEMS if i in items]


@dataclass
class PaperRun:
    """Where the items go, what they need and what was done."""

    context: RunContext
    out_dir: Path
    models: tuple[str, str]
    config: StudyConfig
    started: dict = field(default_factory=provenance)  # the code as the run starts
    done: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def request(self, folder: str, **changes: object) -> Request:
        """A protocol request writing to ``out_dir/folder`` with the first model and this run's settings."""
        return Request(self.context, self.out_dir / folder, model=self.models[0], config=self.config, **changes)

    def once(self, key: str, make) -> Path:  # noqa: ANN001 - a callable returning the folder
        """Run ``make`` once per key (several items share one protocol run)."""
        if key not in self.done:
            start = time.perf_counter()
            self.done[key] = make()
            self.timings[key] = time.perf_counter() - start
        return self.done[key]


def regenerate(items: list[str], *, context: RunContext, out_dir: Path, models: tuple[str, str] = (
        "dlib-resnet", "mobilefacenet-512"), config: StudyConfig = StudyConfig()) -> Path:
    """Regenerate ``items`` into ``out_dir``; returns it.  See the module docstring."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = PaperRun(context, out_dir, models, config)
    say = progress(context)
    for item in items:
        say(f"paper: {item}")
        ITEM_WRITERS[item](run)
    write_index(run)
    return out_dir


def _cross_model(run: PaperRun) -> Path:
    from fiqa_bench.protocols.cross_model import CROSS_MODEL

    specs = [MethodSpec.named(m) for m in PAPER_METHODS.values() if m]
    return run.once("cross-model", lambda: CROSS_MODEL.compare(
        specs, run.request("cross-model", deployed_model=run.models[1])))


def _study(folder: Path, deployed: str) -> dict:
    return json.loads((folder / f"deployed-{file_name(deployed)}" / "study.json").read_text())


def _aoc_rows(study: dict, quality_model: str, policy: str, fmrs: tuple[float, ...]) -> dict[str, list[float]]:
    """Paper row -> our AOCs at each FMR and their mean, from the label ``M on quality_model`` (or ``M``)."""
    rows = {}
    for paper_name, method in PAPER_METHODS.items():
        if method is None:
            continue
        for label in (f"{method} on {quality_model}", method):
            if label in study["studies"]:
                aoc = study["studies"][label]["aoc"]
                values = [aoc.get(f"{policy}@{f:g}") for f in fmrs]
                values = [np.nan if v is None else v for v in values]
                rows[paper_name] = [*values, float(np.mean(values))]
                break
    return rows


def _dataset_root(run: PaperRun, name: str) -> Path:
    return run.context.data_root / {"Adience": "adience", "IJB-C": "ijbc"}[name]


def _shown(path: Path) -> str:
    """A path as the results may show it: relative to the working folder (no machine-specific prefix)."""
    return os.path.relpath(path)


def aoc_table_markdown(paper: dict, ours: dict[str, dict[str, list[float]]], caption: str) -> str:
    """Rows: the paper's methods; per FMR and Avg: ``ours (recomputed) / ours (fixed) / paper``."""
    columns = ["FMR=1e-2", "FMR=1e-3", "FMR=1e-4", "Avg"]
    rows = []
    for name, published_values in paper.items():
        if PAPER_METHODS.get(name) is None:  # BLIINDS-II, PQR: see NOT_REGISTERED
            rows.append([f"{name} (not registered)", *(f"n/a / n/a / {v:.4f}" for v in published_values)])
            continue
        rec = ours.get("recomputed", {}).get(name)
        fix = ours.get("fixed", {}).get(name)
        cells = []
        for k, value in enumerate(published_values):
            a = "n/a" if rec is None or np.isnan(rec[k]) else f"{rec[k]:.4f}"
            b = "n/a" if fix is None or np.isnan(fix[k]) else f"{fix[k]:.4f}"
            cells.append(f"{a} / {b} / {value:.4f}")
        rows.append([name, *cells])
    frame = pd.DataFrame(rows, columns=["method", *columns])
    return (f"{caption}\n\nEach cell: ours with the recomputed threshold / ours with the fixed threshold / the "
            f"paper's. {NOT_REGISTERED}.\n\n" + frame.to_markdown(index=False, disable_numparse=True)
            + "\n")


def _same_or_cross_table(run: PaperRun, number: int) -> None:
    """Tables 1, 3 and 4 from the cross-model run; Adience and IJB-C as found (Table 1) or not."""
    folder = _cross_model(run)
    a, b = run.models
    paper = published()["tables"][str(number)]
    directions = {1: [(a, a), (b, b)], 3: [(a, b)], 4: [(b, a)]}[number]
    lines = [f"# Table {number}: {paper['caption']} (paper) — ours on LFW with {a} and {b}", "",
             f"Source of the paper's numbers: {published()['source']}.", "",
             f"Ours: `{folder.relative_to(run.out_dir)}/` (the `cross-model` protocol: all 13,233 LFW images, "
             "trained methods cross-fitted over the View 1 people split, 95% identity-bootstrap intervals and the "
             "random band in each `deployed-*/table.md`).", ""]
    for quality, deployed in directions:
        study = _study(folder, deployed)
        ours = {p: _aoc_rows(study, quality, p, run.config.fmrs) for p in run.config.policies}
        caption = f"## LFW: quality from {quality}, deployed {deployed}"
        lines.append(aoc_table_markdown(paper["data"]["LFW"], ours, caption))
    for name in ("Adience", "IJB-C"):
        root = _dataset_root(run, name)
        if not root.is_dir():
            lines += [f"## {name}", "", f"dataset not found at {_shown(root)}: the paper's rows are kept below, ours are "
                      "empty.", "", aoc_table_markdown(paper["data"][name], {}, f"### {name} (paper only)")]
        elif number == 1:
            lines += [f"## {name}", "", aoc_table_markdown(paper["data"][name], _evrc_rows(run, name), f"### {name}")]
        else:
            lines += [f"## {name}", "", f"found at {_shown(root)}, but the cross-model protocol runs on LFW (where trained "
                      "methods can be cross-fitted); Table 1 has its same-model rows.", ""]
    write_text_atomic(run.out_dir / f"table{number}.md", "\n".join(lines))


def _evrc_rows(run: PaperRun, name: str) -> dict[str, dict[str, list[float]]]:
    from fiqa_bench.protocols.evrc import EVRC

    dataset = {"Adience": "adience", "IJB-C": "ijbc"}[name]
    specs = [MethodSpec.named(m) for m in PAPER_METHODS.values() if m]
    folder = run.once(f"evrc-{dataset}", lambda: EVRC.compare(
        specs, run.request(f"evrc-{dataset}", dataset=dataset)))
    study = json.loads((folder / "study.json").read_text())
    return {p: _aoc_rows(study, run.models[0], p, run.config.fmrs) for p in run.config.policies}


def _table2(run: PaperRun) -> None:
    from fiqa_bench.protocols.set_tar import SET_TAR

    specs = [MethodSpec.named(m) for m in SET_METHODS]
    paper = published()["tables"]["2"]
    lines = ["# Table 2: set-based verification TAR with quality-weighted templates", "",
             f"Paper: {paper['caption']}; source: {published()['source']}.", ""]
    for name, dataset in (("LFW", "lfw"), ("IJB-C", "ijbc")):
        if name == "IJB-C" and not _dataset_root(run, name).is_dir():
            lines += ["## IJB-C", "", f"dataset not found at {_shown(_dataset_root(run, name))}.", ""]
        else:
            folder = run.once(f"set-tar-{dataset}", lambda: SET_TAR.compare(
                specs, run.request(f"set-tar-{dataset}", dataset=dataset)))
            lines += [f"## {name}, ours (`{folder.relative_to(run.out_dir)}/`)", "",
                      (folder / "table.md").read_text().split("\n", 2)[2], ""]
    names = {"Baseline": "baseline (unweighted)", "SER-FIQ": "serfiq", "PCNet": "pcnet", "SDD-FIQA": "sdd"}
    frame = pd.DataFrame([[k, *(f"{v:.4f}" for v in values)] for k, values in paper["data"]["IJB-C"].items()],
                         columns=["weighting (paper, IJB-C, ResNet50-MS1M)", "FMR=1e-2", "FMR=1e-3", "FMR=1e-4",
                                  "Avg"])
    lines += ["## The paper's Table 2", "", frame.to_markdown(index=False, disable_numparse=True), "",
              "Our rows: " + ", ".join(f"{k} = `{v}`" for k, v in names.items()) + " (each with the minmax and "
              "rank weightings).", ""]
    write_text_atomic(run.out_dir / "table2.md", "\n".join(lines))


def _figure4(run: PaperRun) -> None:
    folder = _cross_model(run)
    lines = ["# Figure 4: EVRC (FNMR against the ratio of unconsidered images) at FMR 1e-2, 1e-3, 1e-4", ""]
    for deployed in run.models:
        sub = folder / f"deployed-{file_name(deployed)}"
        for policy in run.config.policies:
            png = sub / f"evrc-{policy}.png"
            lines += [f"## Deployed {deployed}, {policy} threshold (methods on both models)", "",
                      f"![]({png.relative_to(run.out_dir)})", ""]
    write_text_atomic(run.out_dir / "figure4.md", "\n".join(lines))


def _figure5(run: PaperRun) -> None:
    from fiqa_bench.protocols.bias import BIAS

    specs = [MethodSpec.named(m) for m in SET_METHODS]
    lines = ["# Figure 5: quality distributions by demographic group", ""]
    for dataset in ("utkface", "lfw"):
        folder = run.once(f"bias-{dataset}", lambda: BIAS.compare(
            specs, run.request(f"bias-{dataset}", dataset=dataset)))
        table = (folder / "table.md").read_text()
        summary = table.split("## Which score depends most on the attribute?", 1)[1].split("\n## ", 1)[0]
        lines += [f"## {dataset} (`{folder.relative_to(run.out_dir)}/`)", "",
                  f"![]({(folder / 'fig5.png').relative_to(run.out_dir)})", "",
                  "Which score depends most on the attribute?" + summary, ""]
        for png in sorted(folder.glob("group-errors-*.png")):
            lines += [f"![]({png.relative_to(run.out_dir)})", ""]
    lines += ["The paper reports (UTKFace, age and race rows) that SDD-FIQA's scores depend less on the group than "
              "SER-FIQ's and PCNet's; it prints no numbers, so compare the rank-percentile distances above.", ""]
    write_text_atomic(run.out_dir / "figure5.md", "\n".join(lines))


def _ablation(run: PaperRun) -> Path:
    from fiqa_bench.protocols.ablation import ABLATION

    return run.once("ablation", lambda: ABLATION.run(MethodSpec.named("sdd"), run.request("ablation")))


def _figure6(run: PaperRun) -> None:
    folder = _ablation(run) / "variants"
    table = (folder / "table.md").read_text()
    lines = ["# Figure 6: Pos-Only, Neg-Only (and signed) against SDD-FIQA", "",
             f"![]({(folder / 'evrc-recomputed.png').relative_to(run.out_dir)})", "",
             f"![]({(folder / 'evrc-fixed.png').relative_to(run.out_dir)})", "",
             "The paper: SDD-FIQA > Pos-Only > Neg-Only, and Neg-Only still lowers the FNMR. Ours:", "",
             table.split("\n", 2)[2]]
    write_text_atomic(run.out_dir / "figure6.md", "\n".join(lines))


def _figure7(run: PaperRun) -> None:
    folder = _ablation(run) / "sensitivity"
    lines = ["# Figure 7: sensitivity to m (K = 1) and K (m = 24), AOC at FMR 1e-2", "",
             f"![]({(folder / 'sensitivity.png').relative_to(run.out_dir)})", "",
             "The paper: the AOC grows with m and K and converges at m = 24 and K = 12.", "",
             (folder / "sweep.md").read_text()]
    write_text_atomic(run.out_dir / "figure7.md", "\n".join(lines))


ITEM_WRITERS = {"table1": lambda r: _same_or_cross_table(r, 1), "table2": _table2,
                "table3": lambda r: _same_or_cross_table(r, 3), "table4": lambda r: _same_or_cross_table(r, 4),
                "figure4": _figure4, "figure5": _figure5, "figure6": _figure6, "figure7": _figure7}


def write_index(run: PaperRun) -> None:
    """``README.md``: what is in the folder, how it was made, and how long each protocol run took."""
    stamp = run.started
    present = [i for i in ITEMS if (run.out_dir / f"{i}.md").is_file()]
    lines = ["# SDD-FIQA (CVPR 2021) regenerated", "",
             f"Made by `fiqa-bench paper` at commit {stamp['git'].get('commit', '?')[:12]}"
             + (" (with uncommitted changes)" if stamp["git"].get("dirty") else "")
             + f", models {run.models[0]} and {run.models[1]}.", ""]
    lines += [f"* [{i}]({i}.md)" for i in present]
    if run.timings:
        lines += ["", "Seconds each protocol run took in this invocation (steps found in the cache are read, not "
                  "recomputed, so a rerun is much faster than a cold run):", "",
                  "| protocol run | folder | seconds |", "|---|---|---:|"]
        lines += [f"| {key} | `{run.done[key].relative_to(run.out_dir)}/` | {sec:.0f} |"
                  for key, sec in run.timings.items()]
    lines.append("")
    write_text_atomic(run.out_dir / "README.md", "\n".join(lines))
