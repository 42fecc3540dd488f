"""``fiqa-bench paper``: item selection, the published numbers, and the side-by-side tables."""

from __future__ import annotations

import re

import numpy as np
import pytest

from fiqa_bench.pipeline.paths import default_data_root
from fiqa_bench.protocols.paper import ITEMS, PAPER_METHODS, _aoc_rows, aoc_table_markdown, parse_items, published


def test_items_are_chosen_by_number_or_all():
    assert parse_items([3, 1], [7], False) == ["table1", "table3", "figure7"]
    assert parse_items(None, None, True) == list(ITEMS)
    with pytest.raises(ValueError, match="Tables 1-4 and Figures 4-7"):
        parse_items([5], None, False)
    with pytest.raises(ValueError, match="nothing"):
        parse_items(None, None, False)


def test_published_numbers_carry_their_source_and_every_row():
    data = published()
    assert "CVPR 2021" in data["source"]
    for number in ("1", "3", "4"):
        for dataset in ("LFW", "Adience", "IJB-C"):
            rows = data["tables"][number]["data"][dataset]
            assert list(rows) == list(PAPER_METHODS)
            for values in rows.values():  # the Avg column is the mean of the three FMRs
                assert abs(np.mean(values[:3]) - values[3]) < 1e-4  # the paper rounds its own Avg (Adience BLIINDS-II: 0.1640)
    assert data["tables"]["1"]["data"]["LFW"]["SDD-FIQA"] == [0.8284, 0.7993, 0.8170, 0.8149]
    assert data["tables"]["2"]["data"]["IJB-C"]["Baseline"] == [0.9715, 0.9512, 0.9191, 0.9473]


def test_published_numbers_match_the_paper_text():
    paper = default_data_root().parent / "paper" / "sdd-fiqa-cvpr2021.md"
    if not paper.is_file():
        pytest.skip(f"the paper is not at {paper}")
    text = re.sub(r"</?b>", "", paper.read_text())
    numbers = [float(x) for x in re.findall(r"\t(-?\d\.\d{4})", text)]
    ours = [v for t in ("1", "2", "3", "4") for rows in published()["tables"][t]["data"].values()
            for values in rows.values() for v in values]
    assert sorted(ours) == sorted(numbers)


def test_side_by_side_table_reads_our_study_and_marks_what_is_missing():
    study = {"studies": {"sdd on dlib-resnet": {"aoc": {"recomputed@0.01": 0.5, "recomputed@0.001": 0.25,
                                                        "recomputed@0.0001": None}},
                         "brisque": {"aoc": {"recomputed@0.01": 0.1, "recomputed@0.001": 0.2,
                                             "recomputed@0.0001": 0.3}}}}
    rows = _aoc_rows(study, "dlib-resnet", "recomputed", (1e-2, 1e-3, 1e-4))
    assert rows["BRISQUE"] == pytest.approx([0.1, 0.2, 0.3, 0.2])
    assert rows["SDD-FIQA"][:2] == [0.5, 0.25] and np.isnan(rows["SDD-FIQA"][2])
    md = aoc_table_markdown(published()["tables"]["1"]["data"]["LFW"], {"recomputed": rows}, "## LFW")
    assert "| SDD-FIQA | 0.5000 / n/a / 0.8284 |" in md.replace("  ", " ").replace("  ", " ") or "0.5000 / n/a / 0.8284" in md
    assert "BLIINDS-II (not registered)" in md and "PFE" in md and "n/a / n/a / 0.4814" in md
