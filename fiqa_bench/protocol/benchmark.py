"""``fiqa-bench benchmark``: the same methods on several datasets and models, and one verdict across them.

Every (dataset, recognition model) pair is a *block*: the methods read the model and its errors are counted
(same-model), the dataset is studied as it asks to be

* an identity set (LFW, faces94, a folder): every image against every other, the ``evrc`` study;
* a pair-list set (an insightface ``.bin``, ``lfw-view2``, ``pairs:LIST``): its listed pairs, the ``pairs``
  study (genuine-comparisons axis, thresholds from the listed impostors);

and each block's results folder is the ordinary one (``<out>/<dataset>-<model>/table.md``, figures, scores,
``study.json``, ``provenance.json``).  Then, per threshold policy, each method's *block score* is the mean of
its AOCs over the FMRs at which every method's AOC is defined on that block (a pair list of 3,000 impostor
pairs defines FMR 1e-2 only; a block where no FMR is defined for every method leaves that policy's verdict,
and the verdict says so), and :mod:`fiqa_bench.metrics.ranking` gives

* the mean rank of each method over the blocks (1 = best), the Friedman test of "all methods rank alike",
  the Nemenyi critical difference and its diagram (``cd-<policy>.png``): methods joined by a bar do not
  differ at the 5% level (Demšar, JMLR 2006);
* Kendall's tau between every two blocks' rankings: whether a verdict on one dataset carries to another.

``<out>/README.md`` holds each block's scores, the verdicts and the tau matrices; ``verdict.json`` the
numbers.  Blocks are computed one after another and each is cached as any study is, so an interrupted
benchmark resumes where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from fiqa_bench.data import Dataset, load_dataset
from fiqa_bench.method import MethodSpec
from fiqa_bench.pipeline.cache import write_text_atomic
from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.protocol import PROTOCOLS, Request
from fiqa_bench.protocol.evrc import EVRCProtocol, EVRCRun, study, write_run
from fiqa_bench.protocol.scoring import file_name, progress
from fiqa_bench.protocol.study import StudyConfig
from fiqa_bench.report.provenance import provenance


@dataclass(frozen=True)
class Block:
    """One dataset studied with one recognition model, and what it gave.

    Attributes:
        dataset: the dataset's name.
        model: the recognition model (read by the methods and deployed).
        protocol: ``"evrc"`` (all against all) or ``"pairs"`` (the listed pairs).
        folder: its results folder, relative to the benchmark's.
        aoc: ``policy -> {method: mean AOC over fmrs[policy]}`` (absent where no FMR is defined for all).
        fmrs: ``policy -> the FMRs whose AOC every method has on this block``.
        why: ``policy -> why no FMR is`` (for the policies absent from ``aoc``).
    """

    dataset: str
    model: str
    protocol: str
    folder: str
    aoc: dict[str, dict[str, float]]
    fmrs: dict[str, list[float]]
    why: dict[str, str]

    @property
    def label(self) -> str:
        return f"{self.dataset} on {self.model}"


def block_scores(run: EVRCRun) -> tuple[dict[str, dict[str, float]], dict[str, list[float]], dict[str, str]]:
    """Per policy: each method's mean AOC over the FMRs at which every method's AOC is defined, those FMRs, and,
    for a policy with none, why (no error before discard, or too few impostors)."""
    result, config = run.result, run.config
    aoc: dict[str, dict[str, float]] = {}
    fmrs: dict[str, list[float]] = {}
    why: dict[str, str] = {}
    for policy in config.policies:
        defined = [f for f in config.fmrs
                   if all(np.isfinite(result.studies[label].aoc[(policy, f)]) for label in result.labels)]
        fmrs[policy] = defined
        if defined:
            aoc[policy] = {label: float(np.mean([result.studies[label].aoc[(policy, f)] for f in defined]))
                           for label in result.labels}
            continue
        why[policy] = "; ".join(f"FMR {f:g}: {_undefined(run, policy, f)}" for f in config.fmrs)
    return aoc, fmrs, why


def _undefined(run: EVRCRun, policy: str, fmr: float) -> str:
    """Why some method's AOC at ``fmr`` is undefined on this block, in a few words."""
    curves = [run.result.studies[label].curves.get(policy, fmr) for label in run.result.labels]
    if all(c.insufficient[0] for c in curves):
        return "too few impostors"
    if any(c.fnmr[0] == 0 for c in curves):
        return "no error before discard"
    return "too few impostors at high discard"


def protocol_for(dataset: Dataset) -> EVRCProtocol:
    """``pairs`` for a pair-list set, else ``evrc``."""
    return PROTOCOLS.get("pairs" if dataset.pair_list is not None else "evrc")


def score_table(blocks: Sequence[Block], policy: str) -> pd.DataFrame:
    """Blocks (rows) x methods (columns) of one policy's block scores; blocks without them are left out."""
    rows = {b.label: b.aoc[policy] for b in blocks if policy in b.aoc}
    return pd.DataFrame.from_dict(rows, orient="index")


def run_benchmark(specs: Sequence[MethodSpec], *, datasets: Sequence[str], models: Sequence[str],
                  context: RunContext, out_dir: Path, config: StudyConfig, train_on: str | None = None) -> Path:
    """Study ``specs`` on every dataset with every model, write each block and the verdict; returns ``out_dir``.

    Raises:
        ValueError: fewer than two methods, datasets given twice, or no dataset/model.
    """
    from fiqa_bench.metrics.ranking import friedman_nemenyi, kendall_tau_matrix, verdict_markdown
    from fiqa_bench.recognition import model_reference
    from fiqa_bench.report.critical_difference import plot_critical_difference

    if len(specs) < 2:
        raise ValueError(f"a benchmark ranks methods: give at least two, got {len(specs)}")
    if not datasets or not models:
        raise ValueError("a benchmark needs at least one dataset and one model")
    if len(set(datasets)) != len(datasets) or len(set(models)) != len(models):
        raise ValueError(f"datasets {list(datasets)} and models {list(models)} must not repeat")
    out_dir = Path(out_dir)
    started = provenance()
    say = progress(context)
    loaded = [load_dataset(spec, context.data_root, cache_dir=context.cache_dir) for spec in datasets]
    blocks: list[Block] = []
    for model in (model_reference(m) for m in models):
        for spec, dataset in zip(datasets, loaded):
            protocol = protocol_for(dataset)
            folder = f"{file_name(dataset.name)}-{file_name(model)}"
            say(f"benchmark: {dataset.name} on {model} ({protocol.name}) -> {out_dir / folder}")
            request = Request(context, out_dir / folder, model=model, dataset=spec, config=config, train_on=train_on)
            dataset = protocol.checked(dataset)
            run = study(specs, protocol=protocol.name, dataset=dataset, context=context, quality_models=[model],
                        deployed_model=model, config=protocol.study_config(request),
                        pairs=protocol.pairs(dataset, request), scoring=protocol.scoring(dataset, request))
            write_run(run, out_dir / folder, started, context)
            blocks.append(Block(dataset.name, model, protocol.name, folder, *block_scores(run)))
    verdicts = {}
    lines = [f"# Benchmark: {len(specs)} methods on {len(loaded)} datasets x {len(models)} models", "",
             _blocks_markdown(blocks, config), ""]
    for policy in config.policies:
        table = score_table(blocks, policy)
        left_out = [f"{b.label} ({b.why[policy]})" for b in blocks if policy not in b.aoc]
        lines += [f"## Verdict, {policy} threshold", ""]
        if left_out:
            lines += [f"Left out, for no FMR at which every method's AOC is defined: {'; '.join(left_out)}.", ""]
        if len(table) < 2:
            lines += [f"Fewer than two blocks have {policy}-threshold scores: no verdict.", ""]
            continue
        verdict = friedman_nemenyi(table)
        tau = kendall_tau_matrix(table)
        figure = f"cd-{policy}.png"
        plot_critical_difference(verdict, out_dir / figure,
                                 title=f"{policy} threshold: mean rank over {verdict.n_blocks} blocks")
        lines += [verdict_markdown(verdict, tau), "", f"![critical difference, {policy}]({figure})", ""]
        verdicts[policy] = {"blocks": list(table.index), "scores": table.to_dict(orient="index"),
                            "mean_ranks": verdict.mean_ranks.to_dict(), "friedman_statistic": verdict.statistic,
                            "friedman_p": verdict.p_value, "critical_difference": verdict.critical_difference,
                            "kendall_tau": tau.to_dict(orient="index")}
    write_text_atomic(out_dir / "README.md", "\n".join(lines).rstrip("\n") + "\n")
    record = {"methods": [s.label for s in specs], "datasets": list(datasets), "models": list(models),
              "study": asdict(config), "train_on": train_on, "blocks": [asdict(b) for b in blocks],
              "verdicts": verdicts, "provenance": started}
    write_text_atomic(out_dir / "verdict.json", json.dumps(record, indent=2, sort_keys=True) + "\n")
    say(f"wrote {out_dir}/: README.md, verdict.json, cd-*.png and one folder per block")
    return out_dir


def _blocks_markdown(blocks: Sequence[Block], config: StudyConfig) -> str:
    """One table per policy: a row per method, a column per block, the block score (mean AOC over the FMRs
    every method has there, named in the header)."""
    out = []
    for policy in config.policies:
        table = score_table(blocks, policy)
        if table.empty:
            continue
        header = [f"{b.label} ({b.protocol}; FMR {', '.join(f'{f:g}' for f in b.fmrs[policy])})"
                  for b in blocks if policy in b.aoc]
        frame = table.T.copy()
        frame.columns = header
        frame = frame.map(lambda v: f"{v:.4f}")
        out += [f"### Mean AOC per block, {policy} threshold (higher = better; per-block tables in each folder)",
                "", frame.to_markdown(disable_numparse=True), ""]
    return "\n".join(out)
