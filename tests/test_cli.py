"""The command line: every subcommand's help, and one way to name a method in every command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fiqa_bench.cli import COMMANDS, main


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_explains_itself(command: str, capsys: pytest.CaptureFixture):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: fiqa-bench {command}") and "--help" in out and "--plugin" in out


def test_the_bracket_form_names_a_method_in_run_and_score(small_folder: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture):
    common = ["--cache-dir", str(tmp_path / "c"), "--quiet", "--workers", "1"]
    out = tmp_path / "res"
    assert main(["run", "--method", "random[seed=3]", "--protocol", "evrc", "--dataset", f"folder:{small_folder}",
                 "--random-seeds", "2", "--n-boot", "0", "--out", str(out), *common]) == 0, capsys.readouterr().err
    assert json.loads((out / "provenance.json").read_text())["methods"] == ["random[seed=3]"]
    monkeypatch.chdir(tmp_path)  # score's default output is under results/ of the working folder
    assert main(["score", "--method", "random[seed=3]", "--dataset", f"folder:{small_folder}", *common]) == 0
    written = tmp_path / "results" / "scores" / f"folder_{str(small_folder).strip('/').replace('/', '_')}-random_seed=3.csv"
    assert f"wrote results/scores/{written.name}" in capsys.readouterr().out
    bracket = [row.split(",")[2] for row in written.read_text().splitlines()[1:]]
    assert main(["score", "--method", "random", "--set", "seed=3", "--dataset", f"folder:{small_folder}",
                 "--out", str(tmp_path / "set.csv"), *common]) == 0
    assert [row.split(",")[2] for row in (tmp_path / "set.csv").read_text().splitlines()[1:]] == bracket
    assert main(["score", "--method", "random[seed=3]", "--set", "seed=4", "--dataset", f"folder:{small_folder}",
                 *common]) == 2
    assert "given twice" in capsys.readouterr().err
