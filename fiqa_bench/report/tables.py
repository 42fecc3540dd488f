"""Markdown tables of EVRC studies (tabulate, through pandas): the paper's Table 1 layout and a
matrix of paired differences."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fiqa_bench.metrics.summaries import edc_pauc
from fiqa_bench.metrics.thresholds import false_matches_allowed
from fiqa_bench.protocol.study import StudySet


def _fmt(x: float) -> str:
    return "n/a" if np.isnan(x) else f"{x:.4f}"


def _cell(value: float, low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return _fmt(value)
    return f"{_fmt(value)} [{_fmt(low)}, {_fmt(high)}]"


def aoc_table(result: StudySet, policy: str) -> str:
    """SDD-FIQA Table 1 layout for one threshold policy: a row per measure, AOC per FMR (with the
    bootstrap interval) and their average, then the random band's mean ± sd and 95th percentile."""
    config = result.studies[result.labels[0]].config
    fmr_columns = [f"FMR={f:g}" for f in config.fmrs]
    rows = []
    for label in result.labels:
        study = result.studies[label]
        values = [study.aoc[(policy, f)] for f in config.fmrs]
        cis = [study.ci.get((policy, f)) for f in config.fmrs]
        rows.append([label, *(_cell(v, ci.low if ci else None, ci.high if ci else None) for v, ci in zip(values, cis)),
                     _fmt(float(np.mean(values)))])
    first = result.studies[result.labels[0]]
    means, sds, p95 = zip(*(first.random_stats(policy, f) for f in config.fmrs))
    rows.append([f"random, mean ± sd over {config.random_seeds} seeds",
                 *("n/a" if np.isnan(m) else f"{m:.4f} ± {s:.4f}" for m, s in zip(means, sds)),
                 _fmt(float(np.mean(means)))])
    rows.append(["random, 95th percentile", *(_fmt(p) for p in p95), _fmt(float(np.mean(p95)))])
    frame = pd.DataFrame(rows, columns=["quality", *fmr_columns, "Avg"])
    return frame.to_markdown(index=False, disable_numparse=True)


#: The discard limit of the ISO/IEC 29794-1 partial area under the EDC reported beside the AOC.
PAUC_LIMIT = 0.20


def _pauc_or_nan(curve: object) -> float:
    try:
        return edc_pauc(curve, PAUC_LIMIT)  # type: ignore[arg-type]
    except ValueError:  # undefined: too few impostors for the FMR somewhere below the limit
        return float("nan")


def pauc_table(result: StudySet, policy: str) -> str:
    """ISO/IEC 29794-1 pAUC: the area under the EDC (FNMR against the fraction of genuine comparisons
    discarded, step rule) from 0 to :data:`PAUC_LIMIT`, per measure and FMR (lower = better)."""
    config = result.studies[result.labels[0]].config
    rows = [[label, *(_fmt(_pauc_or_nan(result.studies[label].curves.get(policy, f))) for f in config.fmrs)]
            for label in result.labels]
    frame = pd.DataFrame(rows, columns=["quality", *(f"FMR={f:g}" for f in config.fmrs)])
    return frame.to_markdown(index=False, disable_numparse=True)


def difference_table(result: StudySet, policy: str, fmr: float) -> str:
    """Row ``a``, column ``b``: AOC(a) - AOC(b) with its paired bootstrap interval, in bold where a
    beats b with the study's confidence (the interval lies above 0)."""
    pairs = result.differences[(policy, fmr)]
    rows = []
    for a in result.labels:
        cells = []
        for b in result.labels:
            if a == b:
                cells.append("·")
                continue
            ci = pairs[(a, b)]
            text = f"{ci.estimate:+.3f} [{ci.low:+.3f}, {ci.high:+.3f}]" if np.isfinite(ci.low) else "n/a"
            cells.append(f"**{text}**" if result.beats(a, b, policy, fmr) else text)
        rows.append([a, *cells])
    frame = pd.DataFrame(rows, columns=["AOC(row) - AOC(column)", *result.labels])
    return frame.to_markdown(index=False, disable_numparse=True)


def studies_markdown(result: StudySet) -> str:
    """Every table of a study set: per policy the AOC table and the verdict against the random band,
    then (with several measures and intervals) the matrix of paired differences per policy and FMR."""
    first = result.studies[result.labels[0]]
    config = first.config
    out: list[str] = []
    for policy in config.policies:
        out += [f"### AOC, {policy} threshold ({config.axis} axis)", "", aoc_table(result, policy), ""]
        for label in result.labels:
            study = result.studies[label]
            verdict = ", ".join(f"FMR={f:g}: " + ("n/a" if np.isnan(study.aoc[(policy, f)]) else
                                                 "yes" if study.above_random(policy, f) else "NO")
                                for f in config.fmrs)
            out.append(f"{label} above the random band's 95th percentile: {verdict}.")
        out.append("")
        if config.axis == "comparisons":
            out += [f"ISO/IEC 29794-1 pAUC, {policy} threshold: area under the EDC up to {PAUC_LIMIT:.0%} of the "
                    f"genuine comparisons discarded (lower = better)", "", pauc_table(result, policy), ""]
    if len(result.labels) > 1 and result.differences:
        out += [f"### Which method beats which ({config.confidence:.0%} paired bootstrap intervals)", "",
                "Each cell is AOC(row) - AOC(column) on the same identity resamples, with its interval; "
                "**bold**: the row's method is better with that confidence.", ""]
        for policy in config.policies:
            for fmr in config.fmrs:
                out += [f"#### {policy} threshold, FMR={fmr:g}", "", difference_table(result, policy, fmr), ""]
    c = first.comparisons
    notes = [f"AOC = 1 - mean over discard ratio in [0, 0.95] of FNMR / FNMR(0) (paper-compatible Eq. 13); "
             f"{c.get('n_genuine')} genuine and {c.get('n_impostor')} impostor comparisons; "
             f"pair quality = min of the two images; accept if score >= t."]
    if first.ci:
        notes.append(f"Brackets: {config.confidence:.0%} percentile bootstrap intervals over {config.n_boot} "
                     f"identity resamples (all comparisons of each resample).")
    rule = config.min_false_matches
    undefined = [result.studies[label].curves.get(policy, fmr) for label in result.labels
                 for (policy, fmr), value in result.studies[label].aoc.items() if np.isnan(value)]
    if any(curve.insufficient.any() for curve in undefined):
        notes.append(f"n/a: undefined, because fewer than {rule}/FMR impostor comparisons remain at high discard "
                     f"ratios for that FMR (the threshold would rest on fewer than {rule} false matches).")
    no_error = sorted({f"{curve.policy} at FMR {curve.fmr_target:g}" for curve in undefined
                       if not curve.insufficient[0] and curve.fnmr[0] == 0})
    if no_error:
        notes.append(f"n/a ({'; '.join(no_error)}): the deployed model rejects no genuine comparison before any "
                     f"discard, so there is no error for a quality score to remove and the AOC, relative to that "
                     f"FNMR, is undefined.")
    short = [f for f in config.fmrs if false_matches_allowed(f, c.get("n_impostor", 0)) < rule]
    if short:
        allowed = "; ".join(f"FMR={f:g}: {false_matches_allowed(f, c.get('n_impostor', 0))}" for f in config.fmrs)
        notes.append(f"False matches a threshold may rest on among the {c.get('n_impostor')} impostor comparisons "
                     f"before any discard: {allowed}.  Below the rule's {rule} "
                     f"({', '.join(f'{f:g}' for f in short)}) the threshold is a few impostors' scores and the "
                     f"AOC is not reported (n/a); more impostor pairs, or --min-false-matches, would give one.")
    for label in result.labels:
        if result.studies[label].n_nan_qualities:
            notes.append(f"{label}: {result.studies[label].n_nan_qualities} images had no quality and were "
                         "discarded first.")
    return "\n".join(out + notes) + "\n"
