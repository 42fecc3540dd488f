"""Provenance stamps call the code dirty for changed code, not for the results runs write."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from fiqa_bench.report import provenance


def test_results_written_into_the_checkout_do_not_make_the_code_dirty(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "table.md").write_text("old\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "start")
    monkeypatch.setattr(provenance, "REPO_ROOT", tmp_path)
    assert provenance.git_commit()["dirty"] is False
    (tmp_path / "results" / "table.md").write_text("new\n")  # a run rewrote its committed table
    assert provenance.git_commit()["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert provenance.git_commit()["dirty"] is True
    monkeypatch.setattr(provenance, "REPO_ROOT", tmp_path / "nowhere")
    assert provenance.git_commit() == {"commit": "unknown", "dirty": None}


def test_the_image_libraries_versions_are_stamped():
    """Decoding, warps and dlib decide a result's last bits: every stamp names their versions."""
    stamp = provenance.provenance()
    assert set(stamp["image_libraries"]) == set(provenance.IMAGE_LIBRARIES)
    assert all(v and v[0].isdigit() for v in stamp["image_libraries"].values()), stamp["image_libraries"]
