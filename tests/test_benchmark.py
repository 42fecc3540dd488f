"""``fiqa-bench benchmark``: each dataset studied as it asks (all against all, or its pairs), then one verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fiqa_bench.cli import main
from fiqa_bench.method import MethodSpec
from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.protocol.benchmark import Block, run_benchmark, score_table
from fiqa_bench.protocol.study import StudyConfig

PEOPLE = ("Colin_Powell", "Donald_Rumsfeld", "George_W_Bush", "Gerhard_Schroeder", "Tony_Blair", "Ariel_Sharon")
OTHERS = ("Jacques_Chirac", "Jean_Chretien", "John_Ashcroft", "Junichiro_Koizumi", "Serena_Williams", "Vladimir_Putin")


@pytest.fixture()
def three_sets(tmp_path: Path, lfw_root: Path) -> tuple[Path, Path, Path]:
    """A folder of 6 people x 6 LFW images (an identity set), a CSV pair list over other images of them, and a
    pair list in LFW's format over 6 other people."""
    images = lfw_root / "lfw" / "images_deepfunneled"
    folder = tmp_path / "folder"
    for person in PEOPLE:
        (folder / person).mkdir(parents=True)
        for k in range(1, 7):
            (folder / person / f"{person}_{k:04d}.jpg").symlink_to(images / person / f"{person}_{k:04d}.jpg")
    rows, lines = [], []
    for group, people in ((rows, PEOPLE), (lines, OTHERS)):
        for person in people:
            for k in range(7, 15, 2):
                group.append(f"{person}/{person}_{k:04d}.jpg,{person}/{person}_{k + 1:04d}.jpg,1" if group is rows
                             else f"{person}\t{k}\t{k + 1}")
        for a, b in zip(people, people[1:] + people[:1]):
            for k in range(7, 15):
                group.append(f"{a}/{a}_{k:04d}.jpg,{b}/{b}_{k:04d}.jpg,0" if group is rows else f"{a}\t{k}\t{b}\t{k}")
    csv, lfw_format = tmp_path / "pairs.csv", tmp_path / "others.txt"
    csv.write_text("path1,path2,same\n" + "\n".join(rows) + "\n")
    lfw_format.write_text(f"{len(lines)}\n" + "\n".join(lines) + "\n")
    return folder, csv, lfw_format


def test_a_benchmark_studies_each_set_as_it_asks_and_ranks_across_them(three_sets, lfw_root: Path,
                                                                        tmp_path: Path) -> None:
    folder, csv, lfw_format = three_sets
    images = lfw_root / "lfw" / "images_deepfunneled"
    out = tmp_path / "bench"
    specs = [MethodSpec("sharpness"), MethodSpec("pose"), MethodSpec("random")]
    # lbp, a classical recognizer, errs on these pairs where dlib-resnet would not (FNMR 0: no AOC)
    config = StudyConfig(fmrs=(0.05,), random_seeds=2, n_boot=0, min_false_matches=1)
    run_benchmark(specs, datasets=[f"folder:{folder}", f"pairs:{csv}@{images}", f"pairs:{lfw_format}@{images}"],
                  models=["lbp"], context=RunContext(tmp_path / "cache", data_root=lfw_root, progress=False),
                  out_dir=out, config=config)
    record = json.loads((out / "verdict.json").read_text())
    assert [b["protocol"] for b in record["blocks"]] == ["evrc", "pairs", "pairs"]
    assert "Compared: the 72 listed pairs only (24 genuine and 48 impostor pairs kept)" in \
        (out / record["blocks"][1]["folder"] / "table.md").read_text()
    assert "36 images of folder:" in (out / record["blocks"][0]["folder"] / "table.md").read_text()
    verdict = record["verdicts"]["fixed"]
    assert len(verdict["blocks"]) >= 2  # the pair lists (a block where a method has no AOC sits out, said)
    assert sorted(verdict["mean_ranks"]) == ["pose", "random", "sharpness"]
    assert sum(verdict["mean_ranks"].values()) == pytest.approx(6.0)  # ranks 1..3 on each block
    assert (out / "cd-fixed.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    readme = (out / "README.md").read_text()
    assert "## Verdict, fixed threshold" in readme and "Kendall" in readme


def test_block_scores_use_only_fmrs_every_method_has() -> None:
    blocks = [Block("a", "m", "evrc", "a-m", {"fixed": {"x": 0.2, "y": 0.1}}, {"fixed": [0.01]}, {}),
              Block("b", "m", "pairs", "b-m", {}, {"fixed": []}, {"fixed": "too few impostors for every FMR"})]
    table = score_table(blocks, "fixed")
    assert list(table.index) == ["a on m"] and table.loc["a on m", "x"] == 0.2
    assert score_table(blocks, "recomputed").empty


def test_the_command_refuses_one_method(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["benchmark", "--methods", "sharpness", "--datasets", "faces94", "--cache-dir", str(tmp_path)])
    assert code == 2
    assert "at least two" in capsys.readouterr().err
