"""The LFW protocols: cross-fitting and the results folder (on the 3,708 devtest images)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.protocol.study import StudyConfig
from fiqa_bench.method import METHODS, MethodSpec
from fiqa_bench.protocol import PROTOCOLS, Request
from fiqa_bench.pipeline.scoring import ScoreTable


def test_lfw_devtest_writes_a_complete_results_folder(lfw_root: Path, lfw_devtest_cache: Path, tmp_path: Path):
    out = PROTOCOLS.get("lfw-devtest").run(
        MethodSpec.named("sdd"), Request(RunContext(lfw_devtest_cache, lfw_root, progress=False), tmp_path / "res",
                                         config=StudyConfig(fmrs=(1e-2, 1e-3), random_seeds=3, n_boot=2)))
    assert {p.name for p in out.iterdir()} == {"table.md", "evrc-recomputed.png", "evrc-fixed.png", "scores.csv",
                                               "study.json", "provenance.json"}
    with open(out / "scores.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3708 and all(r["quality"] for r in rows)
    stamp = json.loads((out / "provenance.json").read_text())
    assert stamp["protocol"] == "lfw-devtest" and stamp["git"]["commit"]
    assert stamp["methods"] == ["sdd"] and len(stamp["scorers"]["sdd"]) == 1
    assert stamp["scorers"]["sdd"][0]["checkpoint"] == "sdd-dlib-resnet-head-lfw-devtrain.pt"
    table = (out / "table.md").read_text()
    assert "### AOC, recomputed threshold" in table and "### AOC, fixed threshold" in table
    assert "24620 genuine" in table and "random, 95th percentile" in table
    study = json.loads((out / "study.json").read_text())["studies"]["sdd"]
    assert set(study["aoc"]) == {"recomputed@0.01", "recomputed@0.001", "fixed@0.01", "fixed@0.001"}


def test_compare_shares_everything_and_names_no_local_path(lfw_root: Path, lfw_devtest_cache: Path, tmp_path: Path):
    from fiqa_bench.method import parse_methods

    specs = parse_methods("sdd, random,sdd[variant=sdd], sharpness")
    assert [s.label for s in specs] == ["sdd", "random", "sdd[variant=sdd]", "sharpness"]
    out = PROTOCOLS.get("lfw-devtest").compare(
        specs, Request(RunContext(lfw_devtest_cache, lfw_root, progress=False), tmp_path / "cmp",
                       config=StudyConfig(fmrs=(1e-2,), random_seeds=3, n_boot=10)))
    assert sorted(p.name for p in (out / "scores").iterdir()) == ["random.csv", "sdd.csv", "sdd_variant=sdd.csv",
                                                                  "sharpness.csv"]
    table = (out / "table.md").read_text()
    assert "Which method beats which" in table and table.count("#### ") == 2  # one matrix per policy x FMR
    study = json.loads((out / "study.json").read_text())
    assert study["labels"] == [s.label for s in specs]
    # the same method twice: identical AOC, a difference of exactly 0 on every replicate
    assert study["studies"]["sdd"]["aoc"] == study["studies"]["sdd[variant=sdd]"]["aoc"]
    same = study["differences"]["fixed@0.01"]["sdd - sdd[variant=sdd]"]
    assert same["estimate"] == 0 and set(same["replicates"]) <= {0.0, None}
    for text in ((out / "provenance.json").read_text(), table):
        assert str(tmp_path) not in text and "/work/" not in text and str(Path.home()) not in text


def test_method_lists_are_read_strictly():
    from fiqa_bench.method import parse_methods

    assert [s.name for s in parse_methods("all")] == METHODS.names()
    with pytest.raises(ValueError, match="each method once"):
        parse_methods("sdd,sdd")
    with pytest.raises(ValueError, match="key=value"):
        parse_methods("sdd[variant]")


def test_cross_fit_merge_covers_every_image_once():
    from fiqa_bench.protocol.scoring import merge_tables as _merge

    def table(paths: list[str], q: list[float]) -> ScoreTable:
        n = len(paths)
        return ScoreTable(np.array(paths), np.array(["x"] * n), np.array(q), np.array(q),
                          np.array([""] * n), np.array(["found by hog"] * n), "m")

    merged = _merge([table(["b", "d"], [2, 4]), table(["a", "c"], [1, 3])], [Path(p) for p in "abcd"])
    assert merged.paths.tolist() == ["a", "b", "c", "d"] and merged.quality.tolist() == [1, 2, 3, 4]
    with pytest.raises(RuntimeError, match="scored by no fold"):
        _merge([table(["a"], [1])], [Path("a"), Path("z")])
