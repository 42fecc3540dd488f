"""The protocols beyond LFW's own: ``evrc`` on any dataset, ``cross-model``, ``ablation``, ``set-tar``, ``bias``."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from fiqa_bench.data import CrossFitting, Dataset, DatasetError, identity_subset
from fiqa_bench.data.lfw import load_lfw
from fiqa_bench.method import MethodSpec
from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.protocol import PROTOCOLS, Request
from fiqa_bench.protocol.evrc import EVRCProtocol
from fiqa_bench.protocol.scoring import Scoring
from fiqa_bench.protocol.study import StudyConfig

QUICK = StudyConfig(fmrs=(1e-1,), random_seeds=2, n_boot=4)


def _protocol(name: str):  # noqa: ANN202
    return PROTOCOLS.get(name)


def test_evrc_runs_on_a_folder_with_shipped_models_and_says_it_could_not_cross_fit(small_folder: Path, tmp_path: Path):
    out = _protocol("evrc").compare(
        [MethodSpec.named("sdd"), MethodSpec.named("sharpness")],
        Request(RunContext(progress=False, workers=1), tmp_path / "res", dataset=f"folder:{small_folder}",
                config=QUICK))
    stamp = json.loads((out / "provenance.json").read_text())
    assert stamp["protocol"] == "evrc" and "No cross-fitting was possible" in stamp["scoring"]
    assert stamp["scorers"]["sdd"][0]["checkpoint"] == "sdd-dlib-resnet-head-lfw-devtrain.pt"
    assert "no cross-fitting" in stamp["scorers"]["sdd"][0]["images"]
    table = (out / "table.md").read_text()
    assert "No cross-fitting was possible" in table and "images failed upstream" in table
    # 17 images were listed, the zero-byte one fails upstream and is left out of the comparisons
    assert "18 images of folder:" in table and "1 images failed upstream" in table
    assert {p.name for p in (out / "scores").iterdir()} == {"sdd.csv", "sharpness.csv"}


def test_evrc_refuses_what_it_cannot_study(small_folder: Path, tmp_path: Path):
    evrc, context = _protocol("evrc"), RunContext(progress=False, workers=1)
    sharpness = MethodSpec.named("sharpness")
    with pytest.raises(DatasetError, match="needs --dataset"):
        evrc.run(sharpness, Request(context, tmp_path))
    singles = tmp_path / "singles"
    for person in ("A", "B"):
        (singles / person).mkdir(parents=True)
        shutil.copy(next((small_folder / "Tony_Blair").glob("*.jpg")), singles / person / "x.jpg")
    with pytest.raises(DatasetError, match="none of its 2 identities has two or more images"):
        evrc.run(sharpness, Request(context, tmp_path, dataset=f"folder:{singles}"))
    with pytest.raises(DatasetError, match="runs on lfw only"):
        _protocol("lfw").run(sharpness, Request(context, tmp_path, dataset=f"folder:{singles}"))


def test_protocols_ask_the_dataset_how_to_score_it(lfw_root: Path, small_folder: Path):
    """LFW cross-fits over its View 1 people split, whichever protocol reads it; a folder cannot."""
    context = RunContext(data_root=lfw_root, progress=False)
    for protocol, dataset in (("lfw", None), ("evrc", "lfw"), ("lfw-devtest", None)):
        data = _protocol(protocol).load(Request(context, Path("unused"), dataset=dataset))
        scoring = Scoring.of(data)
        assert "cross-fitted over LFW's identity-disjoint View 1 people split" in scoring.note
        parts = {part.name: trained_on for part, trained_on in scoring.folds}
        assert parts == ({"lfw:devtest": "lfw:devtrain"} if protocol == "lfw-devtest" else
                         {"lfw:devtest": "lfw:devtrain", "lfw:devtrain": "lfw:devtest"})
        assert sum(len(part) for part, _ in scoring.folds) == len(data)
    folder = _protocol("evrc").load(Request(context, Path("unused"), dataset=f"folder:{small_folder}"))
    assert Scoring.of(folder).folds == () and "No cross-fitting was possible" in Scoring.of(folder).note


def test_entries_score_model_readers_once_per_model_and_the_rest_once():
    from fiqa_bench.protocol.scoring import entries

    specs = [MethodSpec.named("sdd"), MethodSpec.named("sharpness"), MethodSpec.named("sdd", {"model": "lbp"})]
    rows = entries(specs, ["dlib-resnet", "lbp"], "lbp")
    assert [(e.label, e.quality_model, e.source) for e in rows] == [
        ("sdd on dlib-resnet", "dlib-resnet", "dlib-resnet"), ("sdd on lbp", "lbp", "lbp"),
        ("sharpness", "lbp", "(no model)"), ("sdd[model=lbp]", "dlib-resnet", "lbp")]
    assert [e.label for e in entries(specs[:2], ["dlib-resnet"], "dlib-resnet")] == ["sdd", "sharpness"]


def test_cross_model_needs_two_models(tmp_path: Path):
    with pytest.raises(ValueError, match="needs two recognition models"):
        _protocol("cross-model").run(MethodSpec.named("sdd"), Request(RunContext(progress=False), tmp_path,
                                                                      model="dlib-resnet", deployed_model="dlib"))


@dataclass(frozen=True)
class DevtestSubset(EVRCProtocol):
    """Every 10th LFW devtest person with two or more images, at most 6 each: a quick base study."""

    name: str = "lfw-devtest-subset"
    description: str = "a quick base study"
    dataset: str | None = "lfw"

    def load(self, request: Request) -> Dataset:
        return identity_subset(load_lfw(request.context.data_root, "devtest"), every=10, min_images=2,
                               max_per_identity=6)


def test_cross_model_gives_every_direction_and_the_transfer(lfw_root: Path, tmp_path: Path):
    from fiqa_bench.protocols.cross_model import CrossModelProtocol

    protocol = CrossModelProtocol(DevtestSubset())
    out = protocol.compare([MethodSpec.named("feature-norm"), MethodSpec.named("sharpness")],
                           Request(RunContext(data_root=lfw_root, progress=False, workers=1), tmp_path / "x",
                                   model="dlib", deployed_model="mobilefacenet", config=QUICK))
    table = (out / "table.md").read_text()
    a, b = "dlib-resnet", "mobilefacenet-512"
    for direction in (f"{a} -> {a}", f"{b} -> {a}", f"{a} -> {b}", f"{b} -> {b}", f"(no model) -> {a}",
                      f"(no model) -> {b}"):
        assert direction in table
    assert "Does the quality transfer?" in table
    assert sorted(p.name for p in out.iterdir()) == [f"deployed-{a}", f"deployed-{b}", "provenance.json", "table.md"]
    study = json.loads((out / f"deployed-{b}" / "study.json").read_text())
    assert study["labels"] == [f"feature-norm on {a}", f"feature-norm on {b}", "sharpness"]
    stamp = json.loads((out / "provenance.json").read_text())
    deployed_b = stamp["studies"][f"deployed-{b}"]
    assert deployed_b["quality_models"][f"feature-norm on {a}"] == a
    assert deployed_b["alignment"]["detector"] == "retinaface"  # each model on its own detector's chips


@dataclass(frozen=True)
class InSampleDevtest(EVRCProtocol):
    """LFW devtest scored by heads trained on devtest itself: quick for a test, never for a result."""

    name: str = "lfw-devtest-in-sample"
    description: str = "in sample"
    dataset: str | None = "lfw"

    def load(self, request: Request) -> Dataset:
        data = load_lfw(request.context.data_root, "devtest")
        return replace(data, cross_fitting=lambda: CrossFitting(((data, "lfw:devtest"),), "in sample"))


def test_ablation_trains_missing_heads_once_and_draws_the_sweeps(lfw_root: Path, lfw_devtest_cache: Path,
                                                                 tmp_path: Path):
    from fiqa_bench.protocols.ablation import AblationProtocol

    # K = 1 at m = 24 is in both sweeps: one head serves both (three trainings, not four)
    protocol = AblationProtocol(InSampleDevtest(), m_values=(6, 24), k_values=(1, 12), variants=("sdd", "neg-only"))
    context = RunContext(lfw_devtest_cache, lfw_root, progress=False)
    out = protocol.run(MethodSpec.named("sdd"), Request(context, tmp_path / "abl",
                                                        config=StudyConfig(fmrs=(1e-2,), random_seeds=2, n_boot=4)))
    trained = sorted(p.name.split("-lfw-devtest-")[0] for p in (lfw_devtest_cache / "trained").glob("*.pt"))
    # m=6,K=1; m=24,K=1 (the m sweep's and the K sweep's); neg-only: trained here; sdd (m=24, K=12) is the
    # shipped devtest head
    assert trained == ["sdd-dlib-resnet"] * 2 + ["sdd-neg-only-dlib-resnet"]
    stamp = json.loads((out / "provenance.json").read_text())
    scorers = stamp["studies"]["sensitivity"]["scorers"]
    assert scorers["sdd[repetitions=12]"][0]["checkpoint"] == "sdd-dlib-resnet-head-lfw-devtest.pt"
    assert "trained here on first use" in scorers["sdd[m=6,repetitions=1]"][0]["images"]
    assert (out / "sensitivity" / "sensitivity.png").stat().st_size > 10_000
    assert (out / "variants" / "evrc-recomputed.png").is_file()
    sweep = (out / "table.md").read_text()
    lines = [line for line in sweep.splitlines() if line.startswith("| m ") or line.startswith("| K ")]
    assert len(lines) == 8  # 2 values x 2 sweeps x 2 policies
    assert sum("·" in line for line in lines) == 4  # the paper's setting in each sweep, both policies
    # a second run trains nothing and gives the same table
    before = {p: p.stat().st_mtime_ns for p in (lfw_devtest_cache / "trained").glob("*.pt")}
    again = protocol.run(MethodSpec.named("sdd"), Request(context, tmp_path / "abl2",
                                                          config=StudyConfig(fmrs=(1e-2,), random_seeds=2, n_boot=4)))
    assert {p: p.stat().st_mtime_ns for p in (lfw_devtest_cache / "trained").glob("*.pt")} == before
    assert (again / "table.md").read_text() == sweep


def test_ablation_is_for_sdd_alone(tmp_path: Path):
    with pytest.raises(ValueError, match="ablates SDD-FIQA"):
        _protocol("ablation").run(MethodSpec.named("pcnet"), Request(RunContext(progress=False), tmp_path))


def _lfw_people(lfw_root: Path, n_people: int, per_person: int) -> list[tuple[str, list[Path]]]:
    """The first ``n_people`` LFW people (by name) with at least ``per_person`` images, and those images."""
    images = lfw_root / "lfw" / "images_deepfunneled"
    people = []
    for folder in sorted(images.iterdir()):
        files = sorted(folder.glob("*.jpg"))
        if len(files) >= per_person:
            people.append((folder.name, files[:per_person]))
        if len(people) == n_people:
            return people
    raise AssertionError("not enough LFW people")


def test_set_tar_on_ijbc_layout_weights_templates_and_reports_gains(lfw_root: Path, tmp_path: Path):
    """IJB-C's metadata layout filled with LFW faces: 12 people, two templates of two images each."""
    root = tmp_path / "IJBC"
    (root / "meta").mkdir(parents=True)
    (root / "loose_crop").mkdir()
    lines, points, templates = [], [], []
    for p, (_, files) in enumerate(_lfw_people(lfw_root, 12, 4)):
        for k, file in enumerate(files):
            name = f"{p * 4 + k}.jpg"
            shutil.copy(file, root / "loose_crop" / name)
            lines.append(f"{name} {100 + 2 * p + k // 2} {p * 4 + k}")
            points.append(f"{name} " + " ".join(["100 100"] * 5) + " 0.99")
        templates += [100 + 2 * p, 101 + 2 * p]
    pairs = [f"{a} {b} {int(b == a + 1 and a % 2 == 0)}" for i, a in enumerate(templates) for b in templates[i + 1:]]
    (root / "meta" / "ijbc_face_tid_mid.txt").write_text("\n".join(lines) + "\n")
    (root / "meta" / "ijbc_name_5pts_score.txt").write_text("\n".join(points) + "\n")
    (root / "meta" / "ijbc_template_pair_label.txt").write_text("\n".join(pairs) + "\n")
    out = _protocol("set-tar").compare([MethodSpec.named("sharpness")],
                                       Request(RunContext(progress=False, workers=1), tmp_path / "tar",
                                               dataset=f"ijbc:{root}", config=StudyConfig(fmrs=(1e-1,), n_boot=20)))
    study = json.loads((out / "study.json").read_text())
    assert study["n_genuine"] == 12 and study["n_impostor"] == 264
    assert list(study["rows"]) == ["baseline (unweighted)", "sharpness (minmax)", "sharpness (rank)"]
    for row in study["rows"].values():
        assert 0 <= row["tar"][0] <= 1 and row["low"][0] <= row["tar"][0] <= row["high"][0]
    assert "gain" in study["rows"]["sharpness (rank)"] and "gain" not in study["rows"]["baseline (unweighted)"]
    table = (out / "table.md").read_text()
    assert "Gain over the baseline" in table and "bootstrap over templates" in table
    with pytest.raises(DatasetError, match="dataset not found at"):
        _protocol("set-tar").run(MethodSpec.named("sharpness"), Request(RunContext(progress=False), tmp_path / "x",
                                                                        dataset=f"ijbc:{tmp_path / 'nowhere'}"))


def test_bias_on_utkface_names_gives_distributions_tests_and_fig5(lfw_root: Path, tmp_path: Path):
    images = tmp_path / "root" / "utkface" / "images"
    images.mkdir(parents=True)
    names = ["25_0_0_20170101000000001", "30_0_1_20170101000000002", "70_1_0_20170101000000003",
             "8_1_2_20170101000000004", "45_0_3_20170101000000005", "61_1_20170109142408075"]
    sources = [f for _, files in _lfw_people(lfw_root, 3, 2) for f in files]
    for name, source in zip(names, sources):
        shutil.copy(source, images / f"{name}.jpg.chip.jpg")
    out = _protocol("bias").compare([MethodSpec.named("sharpness"), MethodSpec.named("pose")],
                                    Request(RunContext(data_root=tmp_path / "root", progress=False, workers=1),
                                            tmp_path / "bias", config=QUICK))
    table = (out / "table.md").read_text()
    assert "attributes age_group, race, gender" in table and "missing-field" in table
    assert "## sharpness: race" in table and "KS p" in table
    assert (out / "fig5.png").stat().st_size > 20_000
    assert not list(out.glob("group-errors-*.png"))  # no identities: no error study
    study = json.loads((out / "study.json").read_text())
    assert set(study["distributions"]) == {"age_group", "race", "gender"}


def test_bias_with_an_attribute_csv_studies_errors_per_group(small_folder: Path, tmp_path: Path):
    rows = ["path,gender"] + [f"{p.relative_to(small_folder).as_posix()},{'f' if 'Tony' in p.name else 'm'}"
                              for p in sorted(small_folder.rglob("*.jpg")) if p.stat().st_size]
    csv = tmp_path / "labels.csv"
    csv.write_text("\n".join(rows) + "\n")
    out = _protocol("bias").run(MethodSpec.named("sharpness"),
                                Request(RunContext(progress=False, workers=1), tmp_path / "b",
                                        dataset=f"folder:{small_folder}", options={"attributes": csv}, config=QUICK))
    table = (out / "table.md").read_text()
    assert "Errors per gender group, sharpness, global threshold at FMR 0.1" in table
    assert (out / "group-errors-fmr0.1.png").is_file()
    with pytest.raises(DatasetError, match="needs labels"):
        _protocol("bias").run(MethodSpec.named("sharpness"), Request(RunContext(progress=False), tmp_path / "c",
                                                                     dataset=f"folder:{small_folder}"))


def test_a_protocols_own_options_come_after_the_others_and_others_refuse_them(small_folder: Path, tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture):
    from fiqa_bench.cli import main

    assert main(["list", "protocols"]) == 0
    listed = capsys.readouterr().out
    assert "bias" in listed and "--attributes VALUE" in listed
    code = main(["run", "--method", "sharpness", "--protocol", "evrc", "--dataset", f"folder:{small_folder}",
                 "--attributes", str(tmp_path / "labels.csv"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "protocol 'evrc' takes no option --attributes; its options: none" in err
    assert len(err.strip().splitlines()) == 1
    assert _protocol("bias").parse_options({"attributes": "x.csv"}) == {"attributes": Path("x.csv")}
