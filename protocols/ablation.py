"""``ablation``: SDD-FIQA's ablations on LFW: Pos-Only / Neg-Only / signed vs SDD (Fig. 6) and the
sensitivity to m and K (Fig. 7, Sec. 4.2.5).

``fiqa-bench run --method sdd --protocol ablation [--model M]`` writes two results folders:

* ``variants/``: the ``lfw`` study (all images, cross-fitted, FMR 1e-2/1e-3/1e-4, both threshold
  policies) of SDD's regressor trained on each pseudo-label variant: ``sdd`` (the paper's WD of Pos-Sim
  and Neg-Sim, Eq. 8), ``pos-only`` (Neg-Sim replaced by 1), ``neg-only`` (Pos-Sim replaced by -1) and
  ``signed`` (WD with the sign of mean(Pos-Sim) - mean(Neg-Sim)); EVRC figures in Fig. 6's layout and the
  matrix of paired differences (which variant beats which).
* ``sensitivity/``: the regressor trained on labels with m in 6..54 at K = 1 and with K in 2..40 at
  m = 24 (Eq. 10), each setting cross-fitted like the shipped model and evaluated at FMR 1e-2 (as the
  paper's Fig. 7), both policies, each AOC with its identity-bootstrap interval; ``sensitivity.png``
  draws AOC against m and against K (Fig. 7 layout) with the random band's 95th percentile, and
  ``table.md`` says whether the AOC still grows past the paper's m = 24 and K = 12: the paired
  difference of each setting with m = 24, K = 12 (or K = 1 in the m sweep's panel: m = 24, K = 1).

Heads that are not shipped are trained on first use and kept in the cache
(:func:`fiqa_bench.method.learned.learned_checkpoint`), each with the shipped model's training configuration;
the provenance names each checkpoint by sha256.  On 2 cores a cold run trains 2 x (9 + 8 + 2) heads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from fiqa_bench.method import MethodSpec, method_class
from fiqa_bench.pipeline.cache import write_text_atomic
from fiqa_bench.protocol import PROTOCOLS, Protocol, Request
from fiqa_bench.protocol.evrc import EVRCProtocol, EVRCRun, run_provenance, write_run
from fiqa_bench.protocol.scoring import progress
from fiqa_bench.protocols.lfw import LFW
from fiqa_bench.report.plots import plot_sensitivity
from fiqa_bench.report.provenance import provenance

#: The paper's sweeps (Sec. 4.2.5): m from 6 to 54 at K = 1, K from 2 to 40 at m = 24.
M_VALUES = (6, 12, 18, 24, 30, 36, 42, 48, 54)
K_VALUES = (2, 4, 8, 12, 16, 20, 30, 40)
VARIANTS = ("sdd", "pos-only", "neg-only", "signed")
#: Fig. 7's FMR.
SENSITIVITY_FMR = 1e-2


def m_spec(m: int) -> MethodSpec:
    return MethodSpec("sdd", {"m": str(m), "repetitions": "1"})


def k_spec(k: int) -> MethodSpec:
    return MethodSpec("sdd", {"repetitions": str(k)})


@dataclass(frozen=True)
class AblationProtocol(Protocol):
    """SDD-FIQA's Figs. 6 and 7 on one LFW protocol."""

    base: EVRCProtocol
    m_values: tuple[int, ...] = M_VALUES
    k_values: tuple[int, ...] = K_VALUES
    variants: tuple[str, ...] = VARIANTS
    name: str = "ablation"
    description: str = ("SDD-FIQA Figs. 6, 7 on LFW: Pos-Only/Neg-Only/signed vs SDD, and AOC as m (K=1) and "
                        "K (m=24) vary, cross-fitted, with intervals")

    def run(self, method: MethodSpec, request: Request) -> Path:
        """Both ablations for SDD-FIQA; see the module docstring."""
        if method_class(method.name) is not method_class("sdd") or method.weights is not None or method.settings:
            raise ValueError(f"protocol {self.name!r} ablates SDD-FIQA's own labels: --method sdd, without "
                             f"--weights or --set (got {method.label!r})")
        if request.dataset not in (None, self.base.dataset):
            raise ValueError(f"protocol {self.name!r} runs on LFW; got --dataset {request.dataset!r}")
        started = provenance()
        model, deployed = request.model, request.deployed
        out_dir = request.out_dir
        say = progress(request.context)
        say(f"{self.name}: label variants {', '.join(self.variants)}")
        variants = self.base.study([MethodSpec("sdd", {"variant": v}) for v in self.variants], request, [model])
        write_run(variants, out_dir / "variants", started, request.context)
        say(f"{self.name}: m in {self.m_values} (K = 1), K in {self.k_values} (m = 24)")
        sweep = [m_spec(m) for m in self.m_values] + [k_spec(k) for k in self.k_values]
        sensitivity = self.base.study(sweep, replace(request, config=replace(request.config,
                                                                             fmrs=(SENSITIVITY_FMR,))), [model])
        folder = write_run(sensitivity, out_dir / "sensitivity", started, request.context)
        self._sensitivity_outputs(sensitivity, folder, model, deployed)
        stamp = started | {"protocol": self.name, "m_values": list(self.m_values), "k_values": list(self.k_values),
                           "studies": {"variants": run_provenance(variants), "sensitivity": run_provenance(sensitivity)}}
        write_text_atomic(out_dir / "provenance.json", json.dumps(stamp, indent=2, sort_keys=True) + "\n")
        write_text_atomic(out_dir / "table.md",
            f"# SDD-FIQA ablations on {self.base.name}, {model}" + (f" -> {deployed}" if deployed != model else "")
            + "\n\nSee `variants/table.md` (Fig. 6: label variants) and `sensitivity/table.md` (Fig. 7: m and K).\n\n"
            + (folder / "sweep.md").read_text())
        say(f"wrote {out_dir}/: table.md, variants/, sensitivity/, provenance.json")
        return out_dir

    def compare(self, methods: Sequence[MethodSpec], request: Request) -> Path:
        """The ablation concerns one method: ``run --method sdd``."""
        raise ValueError(f"protocol {self.name!r} ablates SDD-FIQA alone: use 'fiqa-bench run --method sdd "
                         f"--protocol {self.name}'")

    def _sensitivity_outputs(self, run: EVRCRun, folder: Path, model: str, deployed: str) -> None:
        """``sensitivity.png`` (Fig. 7 layout) and ``sweep.md``: AOC per setting and against the paper's choice."""
        frame = sweep_frame(run, self.m_values, self.k_values)
        panels = []
        for sweep, xs, xlabel in (("m", self.m_values, "m, similarities per draw (K = 1)"),
                                  ("K", self.k_values, "K, draws averaged (m = 24)")):
            series = {}
            for policy in run.config.policies:
                rows = frame[(frame.sweep == sweep) & (frame.policy == policy)].set_index("value").loc[list(xs)]
                series[f"{policy} threshold"] = (rows.aoc.to_numpy(), rows.ci_low.to_numpy(), rows.ci_high.to_numpy())
            panels.append((xlabel, list(xs), series))
        first = run.result.studies[run.result.labels[0]]
        reference = {f"random p95, {p}": first.random_stats(p, SENSITIVITY_FMR)[2] for p in run.config.policies}
        plot_sensitivity(folder / "sensitivity.png", panels, ylabel=f"AOC at FMR = {SENSITIVITY_FMR:g}",
                         title=f"SDD-FIQA sensitivity to m and K on {self.base.name}, {model}"
                               + (f" -> {deployed}" if deployed != model else "") + " (cross-fitted, 95% intervals)",
                         reference=reference)
        shown = frame.assign(AOC=[f"{a:.4f} [{lo:.4f}, {hi:.4f}]" for a, lo, hi in
                                  zip(frame.aoc, frame.ci_low, frame.ci_high)])
        lines = [f"## Fig. 7: AOC at FMR {SENSITIVITY_FMR:g} as m and K vary", "",
                 shown[["sweep", "value", "policy", "AOC", "vs paper's choice"]].to_markdown(index=False,
                                                                                           disable_numparse=True),
                 "", "`vs paper's choice`: AOC(setting) - AOC(m = 24) on the same bootstrap replicates, with its "
                 "95% paired interval; the m sweep (K = 1) is compared with m = 24, K = 1, the K sweep with "
                 "m = 24, K = 12. An interval that holds 0 means the data cannot tell the two apart.", ""]
        write_text_atomic(folder / "sweep.md", "\n".join(lines))
        with open(folder / "table.md", "a") as fh:
            fh.write("\n" + "\n".join(lines))


def sweep_frame(run: EVRCRun, m_values: tuple[int, ...], k_values: tuple[int, ...]) -> pd.DataFrame:
    """One row per (sweep, value, policy): AOC at the sensitivity FMR, its interval, and the paired
    difference with the paper's setting (m = 24 at the same K for the m sweep; K = 12 for the K sweep)."""
    result, fmr = run.result, SENSITIVITY_FMR
    rows = []
    for sweep, values, spec_of, reference in (("m", m_values, m_spec, m_spec(24)), ("K", k_values, k_spec, k_spec(12))):
        for value in values:
            label = spec_of(value).label
            study = result.studies[label]
            for policy in run.config.policies:
                ci = study.ci.get((policy, fmr))
                diff = result.differences.get((policy, fmr), {}).get((label, reference.label))
                if label == reference.label:
                    versus = "·"
                elif diff is None:  # no bootstrap, or the paper's setting is not in the sweep
                    versus = "n/a"
                else:
                    versus = f"{diff.estimate:+.4f} [{diff.low:+.4f}, {diff.high:+.4f}]"
                rows.append({"sweep": sweep, "value": value, "policy": policy, "aoc": study.aoc[(policy, fmr)],
                             "ci_low": ci.low if ci else np.nan, "ci_high": ci.high if ci else np.nan,
                             "vs paper's choice": versus})
    return pd.DataFrame(rows)


ABLATION = AblationProtocol(LFW)
PROTOCOLS.add(ABLATION.name, ABLATION, description=ABLATION.description)
