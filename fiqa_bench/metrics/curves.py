"""The curves of error versus discarded fraction: what :mod:`~fiqa_bench.metrics.discard` computes and
:mod:`~fiqa_bench.metrics.summaries` summarises.

* :class:`DiscardCurve`: one EVRC / EDC sampled at requested discard
  fractions, for a threshold policy, a discard axis and a target FMR
  (:func:`~fiqa_bench.metrics.discard.evrc`).
* :class:`EDCSteps`: the exact EDC step curve at a fixed threshold, one point
  per quality-tie group (:func:`~fiqa_bench.metrics.discard.edc_steps`).

Plain results: arrays and counts, their JSON form and a Markdown table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fiqa_bench.metrics._common import check_discard_fractions, nan_to_none

__all__ = ["DiscardCurve", "EDCSteps"]


@dataclass(frozen=True)
class DiscardCurve:
    """One EVRC / EDC: a threshold policy, a discard axis and a target FMR.

    Attributes (arrays have one entry per discard point, shape ``(P,)``):
        policy: ``"recomputed"`` or ``"fixed"``.
        axis: ``"images"`` or ``"comparisons"`` (genuine comparisons).
        fmr_target: the target FMR.
        pair_quality: ``"min"`` or the name of the pair-quality function.
        discard_requested: requested discard fractions.
        discard_achieved: fraction actually discarded (whole tie groups, ``<=`` requested).
        fnmr: FNMR of the remaining genuine comparisons; NaN where undefined.
        fmr: achieved FMR on the remaining impostor comparisons; NaN where undefined.
        threshold: accept if ``score >= threshold`` (the next value above the
            rejected impostor order statistic, in the scores' dtype); NaN where insufficient.
        n_genuine, n_impostor: remaining comparisons.
        n_images: remaining samples (None for a custom pair-quality function).
        insufficient: True where too few impostors determine the threshold.
        n_genuine_total, n_impostor_total, n_images_total: before discarding.
        n_nan_images, n_nan_genuine, n_nan_impostor: NaN-quality samples and
            the comparisons involving them (discarded first).
        min_false_matches: the sufficiency requirement.
        impostor_sampling: provenance of the impostor comparisons.
    """

    policy: str
    axis: str
    fmr_target: float
    pair_quality: str
    discard_requested: np.ndarray
    discard_achieved: np.ndarray
    fnmr: np.ndarray
    fmr: np.ndarray
    threshold: np.ndarray
    n_genuine: np.ndarray
    n_impostor: np.ndarray
    n_images: np.ndarray | None
    insufficient: np.ndarray
    n_genuine_total: int
    n_impostor_total: int
    n_images_total: int
    n_nan_images: int
    n_nan_genuine: int
    n_nan_impostor: int
    min_false_matches: int
    impostor_sampling: dict

    @property
    def label(self) -> str:
        return f"{self.policy} threshold, {self.axis} axis, FMR={self.fmr_target:g}"

    def to_dict(self) -> dict:
        """JSON-safe dict (NaN -> None)."""
        out = {}
        for key, value in self.__dict__.items():
            if isinstance(value, np.ndarray):
                out[key] = nan_to_none(value)
            else:
                out[key] = value
        return out

    def to_markdown(self, at: Sequence[float] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 0.95)) -> str:
        """A Markdown table of the curve at the requested points present in it."""
        lines = [
            f"EVRC ({self.label}; pair quality = {self.pair_quality}; "
            f"{self.n_genuine_total} genuine / {self.n_impostor_total} impostor comparisons"
            + (f"; {self.n_nan_images} NaN-quality images discarded first" if self.n_nan_images else "")
            + ")",
            "",
            "| discard requested | discarded | FNMR | FMR | threshold | genuine | impostor |",
            "|---|---|---|---|---|---|---|",
        ]
        for phi in at:
            hit = np.flatnonzero(np.isclose(self.discard_requested, phi, rtol=0, atol=1e-12))
            if not hit.size:
                continue
            j = int(hit[0])
            if self.insufficient[j]:
                fnmr = fmr = thr = "insufficient comparisons"
            else:
                fnmr, fmr, thr = f"{self.fnmr[j]:.4f}", f"{self.fmr[j]:.3g}", f"{self.threshold[j]:.6g}"
            lines.append(
                f"| {phi:.2f} | {self.discard_achieved[j]:.4f} | {fnmr} | {fmr} | {thr} "
                f"| {int(self.n_genuine[j])} | {int(self.n_impostor[j])} |"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class EDCSteps:
    """The exact EDC step curve at a fixed threshold: one point per quality-tie group.

    Point ``i`` discards the ``discard_counts[i]`` comparisons of the lowest
    pair-quality groups; the error fraction is then constant until the next
    point (``edc.py``'s stepwise interpolation).  The curve stops at the last
    group (discarding everything leaves the error undefined; ``edc.py`` adds
    ``(1, 0)`` for plotting).

    Attributes:
        error: ``"fnmr"`` (errors: genuine ``s < t``) or ``"fmr"`` (impostor ``s >= t``).
        threshold: the decision threshold (accept if ``s >= threshold``).
        discard_fractions, error_fractions, discard_counts, error_counts: ``(K,)``.
        n_comparisons: comparisons before discarding.
        n_nan_quality: comparisons whose pair quality is NaN (the first group).
    """

    error: str
    threshold: float
    discard_fractions: np.ndarray
    error_fractions: np.ndarray
    discard_counts: np.ndarray
    error_counts: np.ndarray
    n_comparisons: int
    n_nan_quality: int

    def to_dict(self) -> dict:
        return {k: nan_to_none(v) if isinstance(v, np.ndarray) else v for k, v in self.__dict__.items()}

    def to_markdown(self, max_rows: int = 20) -> str:
        """A Markdown table of (at most ``max_rows``, evenly chosen) step points."""
        idx = np.unique(np.linspace(0, len(self.discard_fractions) - 1, min(max_rows, len(self.discard_fractions))).astype(int))
        lines = [
            f"EDC ({self.error.upper()} at fixed threshold {self.threshold:.6g}, accept if score >= threshold; "
            f"{self.n_comparisons} comparisons, {len(self.discard_fractions)} quality groups"
            + (f", {self.n_nan_quality} with NaN quality" if self.n_nan_quality else "") + ")",
            "",
            f"| discarded | {self.error.upper()} | discarded comparisons | errors remaining |",
            "|---|---|---|---|",
        ]
        for i in idx:
            lines.append(f"| {self.discard_fractions[i]:.4f} | {self.error_fractions[i]:.4f} "
                         f"| {self.discard_counts[i]} | {self.error_counts[i]} |")
        return "\n".join(lines)

    def at(self, discard_fractions: Sequence[float] | np.ndarray) -> np.ndarray:
        """The step curve read at arbitrary fractions (the last point with discard <= phi)."""
        d = check_discard_fractions(discard_fractions)
        return self.error_fractions[np.searchsorted(self.discard_fractions, d, side="right") - 1]
