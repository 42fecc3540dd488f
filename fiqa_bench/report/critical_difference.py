"""Critical difference diagram of a Friedman-Nemenyi verdict (Demšar, JMLR 2006, Fig. 1), drawn with matplotlib.

An axis of mean ranks from 1 (best, left) to ``k``; every method hangs from its mean rank by a line that
leads to its name (the better half on the left, the worse half on the right); a bar above the axis is one
critical difference long; thick lines under the axis join the methods that are not significantly different
(:attr:`fiqa_bench.metrics.ranking.Verdict.groups`).  Drawn from the :class:`Verdict` alone, so it works for
every verdict whichever engine computed it; nothing random, so the same verdict gives the same PNG bytes
with the same matplotlib.
"""

from __future__ import annotations

import math
from pathlib import Path

from fiqa_bench.metrics.ranking import Verdict
from fiqa_bench.report.plots import pyplot

#: Vertical layout, in row units (one row = 0.25 inch).
_ROW_INCHES = 0.25
_TICK = 0.25
_GROUP_STEP = 0.5
_NAME_STEP = 0.9


def plot_critical_difference(verdict: Verdict, path: Path, title: str = "", *, dpi: int = 150) -> None:
    """Write the CD diagram of ``verdict`` to ``path`` (a PNG, written whole or not at all); closes its figure.

    Args:
        verdict: from :func:`fiqa_bench.metrics.ranking.friedman_nemenyi`.
        path: file to write; the format is its suffix's (``.png``).
        title: drawn above the diagram, followed by the Friedman p-value and N.
        dpi: resolution.
    """
    from fiqa_bench.pipeline.cache import atomic_write

    plt = pyplot()
    k = verdict.n_methods
    ranks = [float(rank) for rank in verdict.mean_ranks]
    names = [f"{method} ({rank:.2f})" for method, rank in verdict.mean_ranks.items()]
    half = math.ceil(k / 2)
    cd = verdict.critical_difference

    # y grows downwards: the CD bar, the axis, the group bars, then one row per name on each side.
    y_cd, y_axis = 0.0, 1.4
    y_groups = [y_axis + 0.7 + _GROUP_STEP * i for i in range(len(verdict.groups))]
    y_names0 = (y_groups[-1] if y_groups else y_axis) + 0.9
    bottom = y_names0 + _NAME_STEP * (max(half, k - half) - 1) + 0.6
    low, high = 1.0, float(k)
    margin = 0.15 * (high - low)

    fig, ax = plt.subplots(figsize=(7.0, _ROW_INCHES * (bottom + 1.5)))
    ax.set_axis_off()
    ax.set_xlim(low - margin, high + margin)
    ax.set_ylim(bottom, y_cd - 1.2)
    line = {"color": "black", "linewidth": 0.8, "solid_capstyle": "butt", "clip_on": False}

    # the rank axis, ticks at every half rank, labels at integers
    ax.plot([low, high], [y_axis, y_axis], **line)
    for step in range(2 * (k - 1) + 1):
        x = low + step / 2
        tick = _TICK if step % 2 == 0 else _TICK / 2
        ax.plot([x, x], [y_axis, y_axis - tick], **line)
        if step % 2 == 0:
            ax.text(x, y_axis - tick - 0.1, f"{x:g}", ha="center", va="bottom", fontsize=9)

    # one critical difference, from rank 1
    end = min(low + cd, high + margin)
    ax.plot([low, end], [y_cd, y_cd], **{**line, "linewidth": 1.2})
    for x in (low, end):
        ax.plot([x, x], [y_cd - _TICK / 2, y_cd + _TICK / 2], **line)
    beyond = " (longer than the axis)" if low + cd > end else ""
    ax.text((low + end) / 2, y_cd - 0.2, f"CD = {cd:.2f}{beyond}", ha="center", va="bottom", fontsize=9)

    # methods not significantly different
    spread = 0.02 * (high - low)
    for y, group in zip(y_groups, verdict.groups):
        first, last = float(verdict.mean_ranks[group[0]]), float(verdict.mean_ranks[group[-1]])
        ax.plot([first - spread, last + spread], [y, y], color="black", linewidth=3.0, solid_capstyle="round")

    # names: the better half to the left (best nearest the axis), the worse half to the right (worst nearest)
    for i in range(half):
        y = y_names0 + _NAME_STEP * i
        ax.plot([ranks[i], ranks[i], low - 0.3 * margin], [y_axis, y, y], **line)
        ax.text(low - 0.4 * margin, y, names[i], ha="right", va="center", fontsize=9)
    for i in range(half, k):
        y = y_names0 + _NAME_STEP * (k - 1 - i)
        ax.plot([ranks[i], ranks[i], high + 0.3 * margin], [y_axis, y, y], **line)
        ax.text(high + 0.4 * margin, y, names[i], ha="left", va="center", fontsize=9)

    caption = (f"Friedman p = {verdict.p_value:.3g}, N = {verdict.n_blocks} blocks, "
               f"Nemenyi alpha = {verdict.alpha:g}")
    ax.set_title(f"{title}\n{caption}" if title else caption, fontsize=9)

    path = Path(path)
    try:
        with atomic_write(path, "wb") as fh:
            fig.savefig(fh, dpi=dpi, format=path.suffix.lstrip(".") or "png", bbox_inches="tight",
                        facecolor="white")
    finally:
        plt.close(fig)
