"""Pure-numpy metrics: no I/O, arrays in, small dataclasses out."""

from fiqa_bench.metrics.bootstrap import (
    BootstrapCI,
    BootstrapReplicates,
    bootstrap_ci,
    bootstrap_difference,
    bootstrap_replicates,
)
from fiqa_bench.metrics.comparisons import (
    Comparisons,
    ImpostorSampling,
    all_vs_all,
    comparisons_from_pairs,
    comparisons_from_scores,
)
from fiqa_bench.metrics.discard import (
    DEFAULT_DISCARD_FRACTIONS,
    DiscardCurve,
    EDCSteps,
    EVRCResult,
    edc_steps,
    edc_steps_from_samples,
    evrc,
)
from fiqa_bench.metrics.summaries import aoc, edc_pauc, edc_theoretical_best_area, fnmr_area
from fiqa_bench.metrics.thresholds import ROC, FMRThreshold, TARAtFMR, roc, tar_at_fmr, threshold_at_fmr

__all__ = [
    "BootstrapCI", "BootstrapReplicates", "bootstrap_ci", "bootstrap_difference", "bootstrap_replicates",
    "Comparisons", "ImpostorSampling", "all_vs_all", "comparisons_from_pairs", "comparisons_from_scores",
    "DEFAULT_DISCARD_FRACTIONS", "DiscardCurve", "EDCSteps", "EVRCResult", "edc_steps", "edc_steps_from_samples", "evrc",
    "aoc", "edc_pauc", "edc_theoretical_best_area", "fnmr_area",
    "ROC", "FMRThreshold", "TARAtFMR", "roc", "tar_at_fmr", "threshold_at_fmr",
]
