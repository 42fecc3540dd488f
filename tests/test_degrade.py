"""The ``degrade`` protocol on a few LFW people: its sanity anchors, its files, and the degraded set's promises."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fiqa_bench.data import load_dataset
from fiqa_bench.faces.degradations import FACTORS
from fiqa_bench.method import MethodSpec
from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.pipeline.degraded import choose_probes, make_degraded_set
from fiqa_bench.pipeline.hashing import sha256_file
from fiqa_bench.protocol import PROTOCOLS, Request
from fiqa_bench.protocol.study import StudyConfig

PEOPLE = ("Colin_Powell", "Donald_Rumsfeld", "George_W_Bush", "Gerhard_Schroeder", "Tony_Blair", "Ariel_Sharon",
          "Jacques_Chirac", "Jean_Chretien", "John_Ashcroft", "Junichiro_Koizumi", "Serena_Williams",
          "Vladimir_Putin")


@pytest.fixture(scope="module")
def people(lfw_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 12 LFW people x 2 photos (links): 12 probes, each with a clean reference."""
    images = lfw_root / "lfw" / "images_deepfunneled"
    folder = tmp_path_factory.mktemp("people")
    for person in PEOPLE:
        (folder / person).mkdir()
        for k in (1, 2):
            (folder / person / f"{person}_{k:04d}.jpg").symlink_to(images / person / f"{person}_{k:04d}.jpg")
    return folder


@pytest.fixture(scope="module")
def degraded_run(people: Path, lfw_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The protocol with sharpness and random on the 12 people, every factor."""
    cache = tmp_path_factory.mktemp("degrade-cache")
    out = tmp_path_factory.mktemp("degrade-out")
    request = Request(RunContext(cache, data_root=lfw_root, progress=False), out, dataset=f"folder:{people}",
                      config=StudyConfig(random_seeds=2, n_boot=0), options={"images": 12, "fmr": 0.1})
    return PROTOCOLS.get("degrade").compare([MethodSpec("sharpness"), MethodSpec("random")], request)


def test_sharpness_falls_with_blur_and_random_does_not(degraded_run: Path) -> None:
    result = json.loads((degraded_run / "degrade.json").read_text())
    sharpness, random = result["methods"]["sharpness"], result["methods"]["random"]
    assert sharpness["gaussian-blur"]["monotonicity"]["spearman"] < -0.9
    assert sharpness["gaussian-blur"]["monotonicity"]["clean_higher"] > 0.95
    # random: 72 points per factor (12 probes x 6 levels), so |rho| of a random ranking has sd ~0.12
    rhos = np.array([random[name]["monotonicity"]["spearman"] for name in FACTORS])
    assert np.all(np.abs(rhos) < 0.45) and abs(rhos.mean()) < 0.15


def test_the_results_folder_holds_what_the_readme_promises(degraded_run: Path) -> None:
    for name in ("table.md", "monotonicity.png", "utility.png", "degrade.json", "manifest.csv",
                 "provenance.json", "cross-quality-pairs.csv", "cross-quality/table.md"):
        assert (degraded_run / name).is_file(), name
    readme = (degraded_run / "table.md").read_text()
    for section in ("Recognition cost", "What the detector sees", "Monotonicity", "Utility",
                    "Which method against which factor"):
        assert section in readme
    pairs = (degraded_run / "cross-quality-pairs.csv").read_text().splitlines()
    assert len(pairs) - 1 == 2 * 12 * (1 + 5 * len(FACTORS))  # each probe image: one genuine, one impostor pair
    assert "Compared: the" in (degraded_run / "cross-quality" / "table.md").read_text()


def test_clean_copies_are_the_files_and_copies_are_reused(people: Path, lfw_root: Path, tmp_path: Path) -> None:
    dataset = load_dataset(f"folder:{people}", lfw_root)
    context = RunContext(tmp_path, data_root=lfw_root, progress=False)
    made = make_degraded_set(dataset, context, n_probes=3, factors=["jpeg", "rotation"])
    clean = [row for row in made.rows if row["factor"] == "clean"]
    assert len(clean) == 6  # 3 references and 3 clean probes: the dataset's own files, untouched
    assert all(Path(row["path"]).resolve().parent.parent == people.resolve() or
               Path(row["path"]).parent.parent == people for row in clean)
    copies = [row for row in made.rows if row["factor"] != "clean"]
    assert len(copies) == 3 * 2 * 5 and {row["severity"] for row in copies} == {1, 2, 3, 4, 5}
    assert all(row["value"] == level for row in copies
               for level in [FACTORS[row["factor"]].levels[row["severity"] - 1]])
    stamps = {p: p.stat().st_mtime_ns for p in made.folder.rglob("*.png")}
    again = make_degraded_set(dataset, context, n_probes=3, factors=["jpeg", "rotation"])
    assert pd.DataFrame(again.rows).equals(pd.DataFrame(made.rows))  # NaN values (clean rows) equal too
    assert {p: p.stat().st_mtime_ns for p in made.folder.rglob("*.png")} == stamps
    with (made.folder / "manifest.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == len(made.rows)
    assert sha256_file(clean[0]["path"]) == sha256_file(dataset.samples[choose_probes(dataset, 3)[0][1]].path)
