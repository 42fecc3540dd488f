"""A methods x factors heatmap of one statistic (e.g. the degradation study's Spearman rho), written as a figure.

Rows are methods, columns factors, in the DataFrame's order.  The colour
scale is fixed (``vmin``..``vmax``, default -1..1 for a correlation, with a
diverging map so 0 is neutral) so figures of different runs compare; a value
outside it takes the end colour and keeps its number.  Missing values (NaN)
are drawn grey and written "n/a".  Matplotlib on the Agg backend
(:func:`fiqa_bench.report.plots.pyplot`), saved whole or not at all
(:func:`fiqa_bench.report.plots.save_figure`), figure closed afterwards.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fiqa_bench.report.plots import pyplot, save_figure

__all__ = ["MISSING_COLOUR", "MISSING_LABEL", "cell_labels", "plot_heatmap"]

#: Colour of a NaN cell (matplotlib grey level) and the text written in it.
MISSING_COLOUR = "0.75"
MISSING_LABEL = "n/a"


def _as_matrix(values: pd.DataFrame) -> np.ndarray:
    if not isinstance(values, pd.DataFrame):
        raise TypeError(f"values must be a pandas DataFrame (rows methods, columns factors), got {type(values)}")
    if values.shape[0] == 0 or values.shape[1] == 0:
        raise ValueError(f"values is empty (shape {values.shape}); nothing to plot")
    try:
        return values.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"values must be numeric (NaN for missing): {exc}") from None


def cell_labels(values: pd.DataFrame, fmt: str = "{:.2f}") -> list[list[str]]:
    """The text of each cell: ``fmt.format(value)``, or ``"n/a"`` where the value is NaN.

    >>> cell_labels(pd.DataFrame([[0.5, float("nan")]], columns=["blur", "jpeg"]))
    [['0.50', 'n/a']]
    """
    matrix = _as_matrix(values)
    return [[MISSING_LABEL if np.isnan(v) else fmt.format(v) for v in row] for row in matrix]


def plot_heatmap(
    values: pd.DataFrame,
    path: Path,
    title: str,
    vmin: float = -1.0,
    vmax: float = 1.0,
    cmap: str = "RdBu",
    annotate: bool = True,
    fmt: str = "{:.2f}",
) -> None:
    """Draw ``values`` (rows methods, columns factors) as a coloured grid with a colour bar and write it to ``path``.

    Args:
        values: numeric DataFrame; index = row labels (methods), columns = column labels (factors); NaN = missing.
        path: figure to write (format from the suffix, PNG by default).
        title: figure title ("" for none).
        vmin, vmax: the ends of the colour scale (``vmin < vmax``).
        cmap: a matplotlib colour-map name.
        annotate: write each cell's value (``fmt``) in it; NaN cells read "n/a" whatever this says.
        fmt: ``str.format`` pattern of the cell values.
    """
    matrix = _as_matrix(values)
    if not (np.isfinite(vmin) and np.isfinite(vmax) and vmin < vmax):
        raise ValueError(f"the colour scale needs finite vmin < vmax, got vmin={vmin!r}, vmax={vmax!r}")
    plt = pyplot()
    import matplotlib

    colours = matplotlib.colormaps[cmap].with_extremes(bad=MISSING_COLOUR)
    n_rows, n_cols = matrix.shape
    row_labels = [str(label) for label in values.index]
    col_labels = [str(label) for label in values.columns]
    # room per cell for "-0.00" at 8 pt, plus the row labels on the left and the turned column labels below
    label_width = 0.075 * max(len(label) for label in row_labels)
    label_height = 0.065 * max(len(label) for label in col_labels)
    fig, ax = plt.subplots(figsize=(1.6 + label_width + 0.62 * n_cols, 1.0 + label_height + 0.36 * n_rows))
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap=colours, vmin=vmin, vmax=vmax, aspect="auto",
                      interpolation="nearest")
    ax.set_xticks(range(n_cols), col_labels, rotation=40, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(range(n_rows), row_labels, fontsize=8)
    # thin white lines between the cells
    ax.set_xticks(np.arange(n_cols + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(n_rows + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=1)
    ax.tick_params(which="minor", length=0)
    for side in ax.spines.values():
        side.set_visible(False)

    labels = cell_labels(values, fmt)
    for r in range(n_rows):
        for c in range(n_cols):
            value = matrix[r, c]
            if np.isnan(value):
                ax.text(c, r, MISSING_LABEL, ha="center", va="center", fontsize=7, color="0.3")
            elif annotate:
                red, green, blue, _ = image.cmap(image.norm(value))
                dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
                ax.text(c, r, labels[r][c], ha="center", va="center", fontsize=7, color="white" if dark else "black")
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=150)
    plt.close(fig)
