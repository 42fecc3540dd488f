"""The figures: every curve of a comparison can be told from every other."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fiqa_bench.report.plots import line_styles, plot_evrc


def test_line_styles_are_distinct_beyond_ten_curves():
    styles = line_styles(14)
    assert len(set(styles)) == 14
    assert styles[0] == ("C0", "-") and styles[10] == ("C0", "--")
    with pytest.raises(ValueError, match="at most 40"):
        line_styles(41)


def test_plot_evrc_draws_every_method_once_per_panel(tmp_path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    discard = np.linspace(0, 0.95, 20)
    curves = {f"m{i}": {1e-2: np.full(20, 0.01 * i), 1e-3: np.full(20, 0.02 * i)} for i in range(12)}
    band = {f: (np.zeros(20), np.full(20, 0.05), np.full(20, 0.1)) for f in (1e-2, 1e-3)}
    drawn = []
    original = plt.Axes.plot

    def spy(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        drawn.append((kwargs.get("label"), kwargs.get("color"), kwargs.get("ls")))
        return original(self, *args, **kwargs)

    plt.Axes.plot = spy
    try:
        plot_evrc(tmp_path / "evrc.png", discard, curves, band, title="t")
    finally:
        plt.Axes.plot = original
    methods = [d for d in drawn if d[0] in curves]
    assert len(methods) == 24 and len({(c, s) for _, c, s in methods}) == 12
    assert (tmp_path / "evrc.png").stat().st_size > 10_000
