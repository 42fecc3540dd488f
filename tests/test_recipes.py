"""The README's recipes for extending fiqa-bench, each run as written, in a fresh registry, through the command line.

``README.md``'s section "Extending fiqa-bench" has one complete file per extension point under a
``### A ...`` heading (the first fenced ``python`` block after it).  Each test executes that block with
the registry it extends swapped for an empty one (the real registry is left as it was), checks that
exactly the documented entry was registered, and uses it the way the README says users do.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import fiqa_bench.data as data_package
import fiqa_bench.data.base as data_base
import fiqa_bench.method as method_module
import fiqa_bench.protocol as protocol_module
from fiqa_bench.cli import main
from fiqa_bench.method import MethodSpec
from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.protocol import PROTOCOLS, Request
from fiqa_bench.protocol.study import StudyConfig
from fiqa_bench.registry import Registry

README = Path(__file__).resolve().parents[1] / "README.md"
QUICK = ["--random-seeds", "2", "--n-boot", "0"]


def recipe(heading: str) -> str:
    """The first ```python block after ``### <heading>`` in the README's "Extending fiqa-bench" section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Extending fiqa-bench", 1)[1].split("\n## ", 1)[0]
    match = re.search(rf"^### {re.escape(heading)}\n(.*?)^```python\n(.*?)^```$", section, re.M | re.S)
    assert match, f"README has no python recipe under '### {heading}'"
    return match.group(2)


def install_recipe(monkeypatch: pytest.MonkeyPatch, heading: str, file_name: str, kind: str, holders: tuple,
                   name: str, listing: str) -> Registry:
    """Execute the recipe under ``### <heading>`` as the module ``file_name`` would be imported, with the
    registry every module of ``holders`` holds by ``name`` swapped for an empty one of ``kind``; check that
    exactly one entry was registered and that ``fiqa-bench list <listing>`` shows it."""
    registry: Registry = Registry(kind)
    for module in holders:
        monkeypatch.setattr(module, name, registry)
    exec(compile(recipe(heading), file_name, "exec"), {"__name__": Path(file_name).stem})
    assert len(registry) == 1, registry.names()
    assert main(["list", listing]) == 0
    return registry


@pytest.fixture()
def fresh_methods(monkeypatch: pytest.MonkeyPatch) -> Registry:
    registry = install_recipe(monkeypatch, "A method", "methods/rms_contrast.py", "method", (method_module,),
                              "METHODS", "methods")
    assert registry.names() == ["rms-contrast"]
    return registry


def test_a_method_scores_a_folder_and_refuses_weights(fresh_methods: Registry, small_folder: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture):
    out = tmp_path / "scores.csv"
    assert main(["score", "--method", "rms-contrast", "--dataset", f"folder:{small_folder}", "--out", str(out),
                 "--cache-dir", str(tmp_path / "c"), "--quiet", "--workers", "1"]) == 0, capsys.readouterr().err
    rows = out.read_text().splitlines()
    assert rows[0].startswith("path,identity,quality") and len(rows) == 1 + 18
    qualities = [float(r.split(",")[2]) for r in rows[1:] if r.split(",")[2]]
    assert len(qualities) == 17 and all(0 < q < 0.5 for q in qualities)  # the zero-byte file has none
    code = main(["score", "--method", "rms-contrast", "--weights", "model.pt", "--dataset", f"folder:{small_folder}",
                 "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "not trained and takes no weights" in err and len(err.strip().splitlines()) == 1


def test_a_method_runs_an_lfw_protocol(fresh_methods: Registry, lfw_root: Path, lfw_devtest_cache: Path,
                                       tmp_path: Path):
    context = RunContext(lfw_devtest_cache, lfw_root, progress=False)
    out = PROTOCOLS.get("lfw-devtest").run(
        MethodSpec.named("rms-contrast"),
        Request(context, tmp_path / "res", config=StudyConfig(fmrs=(1e-2,), random_seeds=2, n_boot=0)))
    assert "rms-contrast" in (out / "table.md").read_text()


def test_a_protocol_is_listed_with_its_option_and_compares_methods(monkeypatch: pytest.MonkeyPatch,
                                                                   small_folder: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture):
    registry = install_recipe(monkeypatch, "A protocol", "protocols/agreement.py", "protocol", (protocol_module,),
                              "PROTOCOLS", "protocols")
    assert registry.names() == ["agreement"] and "--digits VALUE" in capsys.readouterr().out
    out = tmp_path / "agree"
    assert main(["compare", "--methods", "sharpness,random,pose", "--protocol", "agreement", "--dataset",
                 f"folder:{small_folder}", "--digits", "2", "--out", str(out), "--cache-dir", str(tmp_path / "c"),
                 "--quiet", "--workers", "1"]) == 0, capsys.readouterr().err
    table = (out / "table.md").read_text()
    assert "No cross-fitting was possible" in table
    diagonal = re.findall(r"^\| (\w+)\s*\|(.*)\|$", table, re.M)
    assert [name for name, _ in diagonal] == ["sharpness", "random", "pose"]
    for k, (_, cells) in enumerate(diagonal):
        values = [float(c) for c in cells.split("|")]
        assert values[k] == 1 and all(-1 <= v <= 1 for v in values)


def test_a_dataset_kind_is_named_on_the_command_line(monkeypatch: pytest.MonkeyPatch, small_folder: Path,
                                                     tmp_path: Path, capsys: pytest.CaptureFixture):
    registry = install_recipe(monkeypatch, "A dataset", "fiqa_bench/data/image_list.py", "dataset",
                              (data_base, data_package), "DATASETS", "datasets")
    assert registry.names() == ["list"] and "list:FILE" in capsys.readouterr().out
    listed = sorted(p for p in small_folder.rglob("*.jpg") if p.stat().st_size)
    image_list = small_folder / "faces.txt"
    image_list.write_text("".join(f"{p.relative_to(small_folder).as_posix()} {p.parent.name}\n" for p in listed))
    out = tmp_path / "res"
    assert main(["run", "--method", "sharpness", "--protocol", "evrc", "--dataset", f"list:{image_list}", *QUICK,
                 "--out", str(out), "--cache-dir", str(tmp_path / "c"), "--quiet", "--workers", "1"]) == 0, \
        capsys.readouterr().err
    stamp = json.loads((out / "provenance.json").read_text())
    assert stamp["dataset"] == "list:faces.txt" and "No cross-fitting was possible" in stamp["scoring"]
    assert f"{len(listed)} images of list:faces.txt" in (out / "table.md").read_text()
    assert main(["run", "--method", "sharpness", "--protocol", "evrc", "--dataset", f"list:{tmp_path / 'none.txt'}",
                 "--quiet"]) == 2
    assert "image list" in capsys.readouterr().err


def test_a_recognition_model_is_listed_embeds_and_is_deployed(monkeypatch: pytest.MonkeyPatch, small_folder: Path,
                                                              tmp_path: Path, capsys: pytest.CaptureFixture):
    import numpy as np

    import fiqa_bench.recognition as recognition
    import fiqa_bench.recognition.registry as model_registry

    registry = install_recipe(monkeypatch, "A recognition model", "fiqa_bench/recognition/pixels.py",
                              "recognition model", (model_registry, recognition), "MODELS", "models")
    assert registry.names() == ["pixels"] and "pixels" in capsys.readouterr().out
    common = ["--cache-dir", str(tmp_path / "c"), "--quiet", "--workers", "1"]
    assert main(["embed", "--model", "pixels", "--dataset", f"folder:{small_folder}", "--out",
                 str(tmp_path / "pixels.npz"), *common]) == 0, capsys.readouterr().err
    with np.load(tmp_path / "pixels.npz") as saved:
        embeddings, failed = saved["embeddings"], saved["failed"]
    assert embeddings.shape == (18, 784) and failed.sum() == 1
    assert np.allclose(np.linalg.norm(embeddings[~failed], axis=1), 1, atol=1e-5)
    out = tmp_path / "res"
    assert main(["run", "--method", "sharpness", "--protocol", "evrc", "--model", "pixels", "--dataset",
                 f"folder:{small_folder}", *QUICK, "--out", str(out), *common]) == 0, capsys.readouterr().err
    assert json.loads((out / "provenance.json").read_text())["deployed_model"] == "pixels"


def test_a_face_detector_is_listed_and_cuts_the_chips(monkeypatch: pytest.MonkeyPatch, small_folder: Path,
                                                      tmp_path: Path, capsys: pytest.CaptureFixture):
    import numpy as np

    import fiqa_bench.cli as cli
    import fiqa_bench.faces.align as align
    import fiqa_bench.faces.detector as detector

    registry = install_recipe(monkeypatch, "A face detector", "fiqa_bench/faces/detectors/dlib_mmod.py",
                              "face detector", (detector, align, cli), "DETECTORS", "detectors")
    assert registry.names() == ["dlib-mmod"] and "dlib-mmod" in capsys.readouterr().out
    assert main(["embed", "--model", "dlib-resnet", "--detector", "dlib-mmod", "--dataset", f"folder:{small_folder}",
                 "--out", str(tmp_path / "e.npz"), "--cache-dir", str(tmp_path / "c"), "--quiet", "--workers",
                 "1"]) == 0, capsys.readouterr().err
    with np.load(tmp_path / "e.npz") as saved:
        face, meta = saved["face"].tolist(), json.loads(str(saved["meta"]))
    assert meta["detector"] == "dlib-mmod" and meta["alignment"]["detector"] == "dlib-mmod"
    # LFW's deep-funneled images each hold a centred, frontal face: the CNN finds nearly all of them
    assert sum(f == "found by dlib-mmod" for f in face) >= 15 and face.count("not analysed") == 1
