"""Provenance stamps: what produced a result, so that it can be reproduced."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import fiqa_bench
from fiqa_bench.pipeline.paths import REPO_ROOT


def git_commit() -> dict:
    """The checkout's commit and whether it has uncommitted changes ("unknown" outside git).

    Changes under ``results/`` do not count: that is where runs write, so the
    second protocol of one ``fiqa-bench paper`` invocation would otherwise
    call the code dirty because the first had written its tables.
    """
    def run(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()

    try:
        return {"commit": run("rev-parse", "HEAD"), "dirty": bool(run("status", "--porcelain", "--untracked-files=no",
                                                                     "--", ".", ":(exclude)results"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}


#: Distributions whose version decides a result's last bits besides numpy and torch (decoding, warps, dlib).
IMAGE_LIBRARIES = ("opencv-contrib-python-headless", "dlib-bin", "pillow")


def image_library_versions() -> dict[str, str]:
    """Installed version of each of :data:`IMAGE_LIBRARIES` (``"not installed"`` where absent)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in IMAGE_LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def provenance(**extra: object) -> dict:
    """A JSON-safe stamp: code version, library versions, time, plus ``extra``."""
    import torch

    return {
        "fiqa_bench": fiqa_bench.__version__,
        "git": git_commit(),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "image_libraries": image_library_versions(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
        **extra,
    }
