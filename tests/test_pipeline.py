"""End to end: a folder dataset with bad images -> chips -> embeddings, through the cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import random_texture
from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.pipeline import embedding as pipeline
from fiqa_bench.faces import batch
from fiqa_bench.cli import main
from fiqa_bench.data import load_dataset
from fiqa_bench.pipeline.embedding import Embeddings, embed_dataset
from fiqa_bench.recognition import create_model

LFW_PICKS = {"Aaron_Eckhart": ["Aaron_Eckhart_0001.jpg"],
             "Colin_Powell": ["Colin_Powell_0001.jpg", "Colin_Powell_0002.jpg"]}


@pytest.fixture()
def messy_folder(tmp_path: Path, lfw_root: Path) -> Path:
    """Real faces plus a corrupt JPEG, a zero-byte file, grayscale, RGBA and a face-less image."""
    root = tmp_path / "faces"
    images = lfw_root / "lfw" / "images_deepfunneled"
    for person, files in LFW_PICKS.items():
        (root / person).mkdir(parents=True)
        for name in files:
            shutil.copy(images / person / name, root / person / name)
    odd = root / "Odd_Person"
    odd.mkdir()
    face = np.asarray(Image.open(images / "Colin_Powell" / "Colin_Powell_0003.jpg").convert("RGB"))
    (odd / "a_corrupt.jpg").write_bytes((images / "Colin_Powell" / "Colin_Powell_0004.jpg").read_bytes()[:2500])
    (odd / "b_empty.jpg").write_bytes(b"")
    Image.fromarray(face.mean(2).astype(np.uint8)).save(odd / "c_grey.png")
    Image.fromarray(np.dstack([face, np.full(face.shape[:2], 200, np.uint8)])).save(odd / "d_rgba.png")
    Image.fromarray(random_texture(3, 200)).save(odd / "e_noface.png")
    return root


def by_name(result: Embeddings) -> dict[str, int]:
    return {Path(p).name: i for i, p in enumerate(result.paths)}


def test_bad_images_are_recorded_never_fatal(messy_folder: Path, tmp_path: Path):
    dataset = load_dataset(f"folder:{messy_folder}", tmp_path)
    model = create_model("lbp")
    result = embed_dataset(dataset, model, RunContext(tmp_path / "cache", workers=2, progress=False))
    row = by_name(result)
    assert len(result.paths) == 8 and result.embeddings.shape == (8, model.card.embedding_dim)
    assert result.failed.tolist().count(True) == 2
    assert result.reasons[row["a_corrupt.jpg"]].startswith("corrupt image")
    assert result.reasons[row["b_empty.jpg"]].startswith("empty file")
    assert np.isnan(result.embeddings[row["b_empty.jpg"]]).all()
    assert "grayscale" in result.reasons[row["c_grey.png"]]
    assert "alpha" in result.reasons[row["d_rgba.png"]]
    assert "no face detected" in result.reasons[row["e_noface.png"]]
    assert result.meta["n_failed"] == 2 and result.meta["n_fallback_box"] == 1
    assert result.face[row["e_noface.png"]] == "not found by hog: fallback box" and result.meta["detector"] == "hog"
    ok = ~result.failed
    assert np.allclose(np.linalg.norm(result.embeddings[ok], axis=1), 1, atol=1e-5)
    assert result.reasons[row["Aaron_Eckhart_0001.jpg"]] == ""


def test_second_call_reads_the_cache(messy_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    dataset = load_dataset(f"folder:{messy_folder}", tmp_path)
    model = create_model("lbp")
    first = embed_dataset(dataset, model, RunContext(tmp_path / "cache", workers=1, progress=False))

    def boom(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(batch, "_work", boom)
    monkeypatch.setattr(model, "embed", boom)
    second = embed_dataset(dataset, model, RunContext(tmp_path / "cache", workers=1, progress=False))
    assert np.array_equal(first.embeddings, second.embeddings, equal_nan=True)
    assert first.reasons.tolist() == second.reasons.tolist()


def test_stage_features_are_cached_per_output(messy_folder: Path, tmp_path: Path):
    dataset = load_dataset(f"folder:{messy_folder}", tmp_path)
    model = create_model("dlib-resnet")
    stages = embed_dataset(dataset, model, RunContext(tmp_path / "cache", workers=1, progress=False), output="stages")
    backbone = embed_dataset(dataset, model, RunContext(tmp_path / "cache", workers=1, progress=False), output="backbone")
    assert stages.embeddings.shape == (8, 736) and stages.meta["output"] == "stages"
    assert np.isnan(stages.embeddings[stages.failed]).all() and stages.failed.sum() == 2
    ok = ~stages.failed
    np.testing.assert_allclose(stages.embeddings[ok][:, -256:], backbone.embeddings[ok], rtol=1e-5, atol=1e-6)
    assert (tmp_path / "cache" / "stages").is_dir() and (tmp_path / "cache" / "backbone").is_dir()
    with pytest.raises(ValueError, match="'stages'.*lbp"):
        embed_dataset(dataset, create_model("lbp"), RunContext(tmp_path / "cache", workers=1, progress=False), output="stages")


def test_embedding_stages_and_backbone_share_one_forward_pass(messy_folder: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch):
    """A cold embedding pass stores the stage features and the backbone output too; asking for them next runs
    no network; each equals what separate passes give, bit for bit (same machine, same batches)."""
    dataset = load_dataset(f"folder:{messy_folder}", tmp_path)
    model = create_model("dlib-resnet")
    context = RunContext(tmp_path / "cache", workers=1, progress=False)
    passes = []
    one_pass = model.embed_in_one_pass
    monkeypatch.setattr(model, "embed_in_one_pass",
                        lambda chips, outputs: passes.append((len(chips), tuple(outputs))) or one_pass(chips, outputs))
    assert pipeline.shared_outputs(model) == ("embedding", "stages", "backbone")
    shared = {output: embed_dataset(dataset, model, context, output=output).embeddings
              for output in ("embedding", "stages", "backbone")}
    assert passes == [(6, ("embedding", "stages", "backbone"))]  # the 6 readable images, once
    apart = RunContext(tmp_path / "apart", workers=1, progress=False)
    monkeypatch.setattr(pipeline, "shared_outputs", lambda model: ())
    for output, rows in shared.items():
        np.testing.assert_array_equal(rows, embed_dataset(dataset, model, apart, output=output).embeddings)
    assert len(passes) == 1


def test_interrupted_run_resumes(messy_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    dataset = load_dataset(f"folder:{messy_folder}", tmp_path)
    model = create_model("lbp")
    monkeypatch.setattr(pipeline, "CHUNK", 3)
    real_embed = model.embed
    calls: list[int] = []
    fail_on_call = [2]

    class Interrupted(Exception):
        """Stands in for Ctrl-C or a killed process mid-run."""

    def flaky(chips):
        calls.append(len(chips))
        if len(calls) == fail_on_call[0]:
            raise Interrupted
        return real_embed(chips)

    monkeypatch.setattr(model, "embed", flaky)
    with pytest.raises(Interrupted):
        embed_dataset(dataset, model, RunContext(tmp_path / "cache", workers=1, progress=False))
    done = calls[0]
    calls.clear()
    fail_on_call[0] = -1
    result = embed_dataset(dataset, model, RunContext(tmp_path / "cache", workers=1, progress=False))
    assert sum(calls) == 6 - done  # 6 usable images; the first shard was kept
    reference = embed_dataset(dataset, create_model("lbp"), RunContext(tmp_path / "fresh", workers=1, progress=False))
    assert np.array_equal(result.embeddings, reference.embeddings, equal_nan=True)


def test_cli_embed_and_errors(messy_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    out = tmp_path / "e.npz"
    code = main(["embed", "--model", "lbp", "--dataset", f"folder:{messy_folder}", "--out", str(out),
                 "--cache-dir", str(tmp_path / "c"), "--quiet", "--workers", "1"])
    assert code == 0
    saved = Embeddings.load(out)
    assert len(saved.paths) == 8 and saved.meta["model"] == "lbp"
    captured = capsys.readouterr()
    assert "2 failed" in captured.out and "b_empty.jpg" in captured.err

    code = main(["embed", "--model", "lbp", "--dataset", "lfw", "--data-root", str(tmp_path / "none"),
                 "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and str(tmp_path / "none" / "lfw") in err and "expected" in err

    code = main(["embed", "--model", "dlib-resnett", "--dataset", f"folder:{messy_folder}", "--out", str(out)])
    assert code == 2 and "did you mean 'dlib-resnet'" in capsys.readouterr().err


def test_cli_list_models(capsys: pytest.CaptureFixture):
    assert main(["list", "models"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert {"dlib-resnet", "iresnet50", "iresnet100", "lbp"} <= set(names)


def test_chips_carry_the_upstream_reason_to_chip_reading_methods(messy_folder: Path, tmp_path: Path):
    from fiqa_bench.method import MethodCard, QualityMethod
    from fiqa_bench.pipeline.embedding import dataset_chips
    from fiqa_bench.pipeline.scoring import score_dataset

    dataset = load_dataset(f"folder:{messy_folder}", tmp_path)
    chips, failed, reasons = dataset_chips(dataset, "dlib150", RunContext(tmp_path / "cache", workers=1, progress=False))
    row = {Path(p).name: i for i, p in enumerate(dataset.paths)}
    assert chips.shape == (8, 150, 150, 3) and failed.sum() == 2
    assert reasons[row["a_corrupt.jpg"]].startswith("corrupt image") and not chips[row["a_corrupt.jpg"]].any()
    assert "no face detected" in reasons[row["e_noface.png"]] and not failed[row["e_noface.png"]]

    class MeanGrey(QualityMethod):
        card = MethodCard(name="mean-grey", paper="test", higher_is_better=True, needs="chips:dlib150",
                          trained=False, weights="none")

        def native_score(self, inputs: np.ndarray) -> np.ndarray:
            return inputs.reshape(len(inputs), -1).mean(axis=1)

    table = score_dataset(MeanGrey(), dataset, RunContext(tmp_path / "cache", workers=1, progress=False))
    assert table.reasons[row["a_corrupt.jpg"]].startswith("upstream failure: corrupt image")
    assert table.reasons[row["b_empty.jpg"]].startswith("upstream failure: empty file")
    assert np.isnan(table.quality[row["b_empty.jpg"]]) and np.isfinite(table.quality[row["e_noface.png"]])
    # A scored image says how its face was found: a user must tell a fallback-box score from a real face.
    assert table.face[row["e_noface.png"]] == "not found by hog: fallback box"
    assert table.reasons[row["e_noface.png"]] == "no face detected: fallback box"
    assert "grayscale" in table.reasons[row["c_grey.png"]]
    assert table.face[row["b_empty.jpg"]] == "not analysed"
    assert table.face[row["Aaron_Eckhart_0001.jpg"]] == "found by hog"
    again = score_dataset(MeanGrey(), dataset, RunContext(tmp_path / "cache", workers=1, progress=False))
    assert again.reasons.tolist() == table.reasons.tolist() and again.face.tolist() == table.face.tolist()


def test_chips_without_their_face_rows_are_aligned_again(messy_folder: Path, tmp_path: Path):
    """Deleting faces/ by hand (chips kept) once made every later call fail with a KeyError."""
    from fiqa_bench.pipeline.embedding import dataset_chips

    dataset = load_dataset(f"folder:{messy_folder}", tmp_path)
    cache = tmp_path / "cache"
    chips, failed, reasons = dataset_chips(dataset, "dlib150", RunContext(cache, workers=1, progress=False))
    shutil.rmtree(cache / "faces")
    again, failed_again, reasons_again = dataset_chips(dataset, "dlib150", RunContext(cache, workers=1, progress=False))
    np.testing.assert_array_equal(again, chips)
    np.testing.assert_array_equal(failed_again, failed)
    assert reasons_again.tolist() == reasons.tolist()


def test_retinaface_faces_are_cached_with_their_points(small_folder: Path, tmp_path: Path, retinaface_weights: Path):
    """RetinaFace's ArcFace points go into the faces store and come back for templates cut later."""
    from fiqa_bench.faces.align import AlignmentSettings, FaceAligner, process_image
    from fiqa_bench.faces.templates import get_template
    from fiqa_bench.pipeline.embedding import count_fallbacks, dataset_chips

    dataset = load_dataset(f"folder:{small_folder}", tmp_path)
    context = RunContext(tmp_path / "cache", alignment=AlignmentSettings(detector="retinaface"), workers=2,
                         progress=False)
    arcface, failed, reasons = dataset_chips(dataset, "arcface112", context)
    later, _, _ = dataset_chips(dataset, "lightqnet96", context)  # faces read back from the store
    aligner = FaceAligner(context.alignment)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the pool's workers: the points' last bits may depend on the thread count
    try:
        for i, path in enumerate(dataset.paths):
            if failed[i]:
                continue
            direct = process_image(aligner, path, (get_template("arcface112"), get_template("lightqnet96")))
            np.testing.assert_array_equal(arcface[i], direct.chips["arcface112"])
            np.testing.assert_array_equal(later[i], direct.chips["lightqnet96"])
    finally:
        torch.set_num_threads(threads)
    assert failed.sum() == 1 and count_fallbacks(reasons) == 0
    emb = embed_dataset(dataset, create_model("lbp"), context)
    assert set(emb.face[~emb.failed]) == {"found by retinaface"} and emb.meta["detector"] == "retinaface"
