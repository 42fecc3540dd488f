"""EVRC figures (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


LINE_STYLES = ("-", "--", ":", "-.")


def line_styles(n: int) -> list[tuple[str, str]]:
    """``n`` distinct (colour, line style) pairs: the ten tab10 colours solid, then dashed, dotted, dash-dotted."""
    if n > 10 * len(LINE_STYLES):
        raise ValueError(f"at most {10 * len(LINE_STYLES)} curves can be told apart in one figure, got {n}")
    return [(f"C{i % 10}", LINE_STYLES[i // 10]) for i in range(n)]


def plot_evrc(
    path: Path,
    discard: np.ndarray,
    curves: dict[str, dict[float, np.ndarray]],
    band: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
    title: str = "",
) -> None:
    """One panel per FMR: FNMR against the ratio of unconsidered images (like SDD-FIQA Fig. 4).

    Args:
        path: PNG to write.
        discard: ``(P,)`` discard fractions.
        curves: method label -> {FMR: ``(P,)`` FNMR}.
        band: FMR -> (low, mean, high) FNMR of the random-quality reference.
        title: figure title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fmrs = sorted({fmr for per in curves.values() for fmr in per}, reverse=True)
    fig, axes = plt.subplots(1, len(fmrs), figsize=(4.2 * len(fmrs), 3.6), squeeze=False)
    for ax, fmr in zip(axes[0], fmrs):
        if band and fmr in band:
            low, mean, high = band[fmr]
            ax.fill_between(discard, low, high, color="0.85", label="random (5-95%)")
            ax.plot(discard, mean, color="0.5", lw=1, ls="--", label="random (mean)")
        for (label, per), (colour, style) in zip(curves.items(), line_styles(len(curves))):
            if fmr in per:
                ax.plot(discard, per[fmr], lw=1.6, color=colour, ls=style, label=label)
        ax.set_title(f"FMR = {fmr:g}")
        ax.set_xlabel("ratio of unconsidered images")
        ax.set_ylabel("FNMR")
        ax.set_xlim(0, float(discard.max()))
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    if len(curves) <= 3:
        axes[0][0].legend(fontsize=8)
        bottom = 0.0
    else:  # many methods: one legend under the panels
        handles, labels = axes[0][0].get_legend_handles_labels()
        columns = min(len(labels), 5)
        fig.legend(handles, labels, loc="lower center", ncol=columns, fontsize=8, frameon=False)
        bottom = 0.06 * -(-len(labels) // columns)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
