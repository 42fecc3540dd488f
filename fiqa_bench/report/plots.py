"""EVRC figures (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


LINE_STYLES = ("-", "--", ":", "-.")


def save_figure(fig, path: Path, dpi: int) -> None:  # noqa: ANN001 - a matplotlib Figure
    """``fig.savefig(path)`` whole or not at all (:func:`fiqa_bench.pipeline.cache.atomic_write`); the format
    is the suffix's."""
    from fiqa_bench.pipeline.cache import atomic_write

    path = Path(path)
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, dpi=dpi, format=path.suffix.lstrip(".") or "png")


def pyplot():  # noqa: ANN201 - the matplotlib.pyplot module
    """``matplotlib.pyplot`` on the Agg backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def finish(fig, path: Path, title: str, dpi: int) -> None:  # noqa: ANN001 - a matplotlib Figure
    """A small title over the panels, a tight layout, the figure saved (:func:`save_figure`) and closed."""
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=dpi)
    pyplot().close(fig)


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
    xlabel: str = "ratio of unconsidered images",
    empty: dict[float, str] | None = None,
) -> None:
    """One panel per FMR: FNMR against the ratio of unconsidered images (like SDD-FIQA Fig. 4).

    Args:
        path: PNG to write.
        discard: ``(P,)`` discard fractions.
        curves: method label -> {FMR: ``(P,)`` FNMR}.
        band: FMR -> (low, mean, high) FNMR of the random-quality reference.
        title: figure title.
        xlabel: what the discard axis counts.
        empty: FMR -> why its panel has no curve, written in the panel.
    """
    plt = pyplot()

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
        if empty and fmr in empty:
            ax.text(0.5, 0.5, empty[fmr], transform=ax.transAxes, ha="center", va="center", fontsize=9,
                    bbox={"facecolor": "white", "edgecolor": "0.7"})
        ax.set_xlabel(xlabel)
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
    save_figure(fig, path, dpi=120)
    plt.close(fig)


def plot_sensitivity(
    path: Path,
    panels: list[tuple[str, list[float], dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]],
    ylabel: str = "AOC",
    title: str = "",
    reference: dict[str, float] | None = None,
) -> None:
    """One panel per swept setting: a statistic (with its interval as error bars) against the setting's value,
    like SDD-FIQA Fig. 7.

    Args:
        path: PNG to write.
        panels: ``(x label, x values, {series label: (estimate, low, high)})`` per panel; each array ``(len(x),)``.
        ylabel: what the y axis shows.
        title: figure title.
        reference: series label -> a horizontal line to draw in every panel (e.g. the random band's 95th percentile).
    """
    plt = pyplot()

    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.7), squeeze=False)
    for ax, (letter, (xlabel, xs, series)) in zip(axes[0], zip("abcdefgh", panels)):
        for (label, (estimate, low, high)), (colour, style) in zip(series.items(), line_styles(len(series))):
            estimate, low, high = (np.asarray(a, float) for a in (estimate, low, high))
            # a percentile interval need not hold its estimate (few replicates): no bar below 0 length
            err = np.clip(np.nan_to_num(np.vstack([estimate - low, high - estimate]), nan=0.0), 0.0, None)
            ax.errorbar(xs, estimate, yerr=err, color=colour, ls=style, marker="o",
                        ms=4, lw=1.5, capsize=3, label=label)
        for (label, value), style in zip((reference or {}).items(), (":", "-.", "--")):
            ax.axhline(value, color="0.45", lw=1, ls=style, label=label)
        ax.set_xticks(xs)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(f"({letter}) {xlabel}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    finish(fig, path, title, dpi=150)


def plot_group_distributions(
    path: Path,
    grid: dict[str, dict[str, dict[str, np.ndarray]]],
    title: str = "",
) -> None:
    """Quality distributions per demographic group, like SDD-FIQA Fig. 5: one row per attribute, one
    column per method, a density curve (histogram outline, 40 bins over the method's range) per group.

    Args:
        path: PNG to write.
        grid: attribute -> method -> group -> ``(n,)`` finite qualities of that group's images.
        title: figure title.
    """
    plt = pyplot()

    attributes = list(grid)
    methods = list(next(iter(grid.values())))
    fig, axes = plt.subplots(len(attributes), len(methods), figsize=(3.6 * len(methods), 2.9 * len(attributes)),
                             squeeze=False)
    for r, attribute in enumerate(attributes):
        for c, method in enumerate(methods):
            ax = axes[r][c]
            groups = grid[attribute][method]
            values = [v for v in groups.values() if len(v)]
            if not values:
                ax.set_axis_off()
                continue
            lo, hi = float(min(v.min() for v in values)), float(max(v.max() for v in values))
            bins = np.linspace(lo, hi if hi > lo else lo + 1, 41)
            for (group, v), (colour, style) in zip(groups.items(), line_styles(len(groups))):
                if len(v):
                    ax.hist(v, bins=bins, density=True, histtype="step", color=colour, ls=style, lw=1.4,
                            label=f"{group} ({len(v)})")
            ax.set_title(f"{method}: {attribute}", fontsize=9)
            ax.set_xlabel("quality score")
            ax.set_ylabel("density")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6)
    finish(fig, path, title, dpi=130)


def plot_group_errors(
    path: Path,
    discard: np.ndarray,
    panels: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]],
    title: str = "",
) -> None:
    """Per method, two panels: each group's FNMR at the global threshold, and the share of each group's
    images discarded, against the ratio of unconsidered images (global discard by quality).

    Args:
        path: PNG to write.
        discard: ``(P,)`` discard fractions.
        panels: method -> group -> (``(P,)`` FNMR, ``(P,)`` share of the group's images discarded).
        title: figure title.
    """
    plt = pyplot()

    fig, axes = plt.subplots(len(panels), 2, figsize=(8.4, 3.2 * len(panels)), squeeze=False)
    for r, (method, groups) in enumerate(panels.items()):
        for (group, (fnmr, share)), (colour, style) in zip(groups.items(), line_styles(len(groups))):
            axes[r][0].plot(discard, fnmr, color=colour, ls=style, lw=1.6, label=group)
            axes[r][1].plot(discard, share, color=colour, ls=style, lw=1.6, label=group)
        axes[r][1].plot(discard, discard, color="0.5", lw=1, ls=":", label="all images")
        for ax, ylabel in zip(axes[r], ("FNMR at the global threshold", "share of the group's images discarded")):
            ax.set_title(method, fontsize=9)
            ax.set_xlabel("ratio of unconsidered images")
            ax.set_ylabel(ylabel, fontsize=8)
            ax.set_xlim(0, float(np.max(discard)))
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    finish(fig, path, title, dpi=130)
