"""Pure-numpy metrics: no I/O, arrays in, small dataclasses out."""

from fiqa_bench.metrics.bias import (
    GroupDistribution,
    GroupDistributions,
    GroupErrorCurve,
    GroupErrorRates,
    GroupPairTest,
    PairwiseGroupTests,
    group_distributions,
    group_error_rates,
    pairwise_group_tests,
    rank_percentiles,
    wasserstein_1d,
)
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
from fiqa_bench.metrics.curves import DiscardCurve, EDCSteps
from fiqa_bench.metrics.discard import (
    DEFAULT_DISCARD_FRACTIONS,
    EVRCResult,
    edc_steps,
    edc_steps_from_samples,
    evrc,
)
from fiqa_bench.metrics.summaries import aoc, edc_pauc, edc_theoretical_best_area, fnmr_area
from fiqa_bench.metrics.templates import (
    TABLE2_FMRS,
    WEIGHT_SCHEMES,
    IdentityTemplates,
    SetTARBootstrap,
    SetVerification,
    TemplateDescriptors,
    TemplatePairs,
    bootstrap_set_tar,
    pair_scores,
    quality_weights,
    set_verification,
    split_identity_templates,
    template_descriptors,
)
from fiqa_bench.metrics.thresholds import ROC, FMRThreshold, TARAtFMR, roc, tar_at_fmr, threshold_at_fmr

__all__ = [
    "GroupDistribution", "GroupDistributions", "GroupErrorCurve", "GroupErrorRates", "GroupPairTest",
    "PairwiseGroupTests", "group_distributions", "group_error_rates", "pairwise_group_tests", "rank_percentiles",
    "wasserstein_1d",
    "BootstrapCI", "BootstrapReplicates", "bootstrap_ci", "bootstrap_difference", "bootstrap_replicates",
    "Comparisons", "ImpostorSampling", "all_vs_all", "comparisons_from_pairs", "comparisons_from_scores",
    "DEFAULT_DISCARD_FRACTIONS", "DiscardCurve", "EDCSteps", "EVRCResult", "edc_steps", "edc_steps_from_samples", "evrc",
    "aoc", "edc_pauc", "edc_theoretical_best_area", "fnmr_area",
    "TABLE2_FMRS", "WEIGHT_SCHEMES", "IdentityTemplates", "SetTARBootstrap", "SetVerification", "TemplateDescriptors",
    "TemplatePairs", "bootstrap_set_tar", "pair_scores", "quality_weights", "set_verification",
    "split_identity_templates", "template_descriptors",
    "ROC", "FMRThreshold", "TARAtFMR", "roc", "tar_at_fmr", "threshold_at_fmr",
]
