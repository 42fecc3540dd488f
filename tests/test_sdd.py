"""SDD-FIQA end to end: training, checkpoints, scoring, the shipped models, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.cli import main
from fiqa_bench.data import load_dataset
from fiqa_bench.pipeline.hashing import sha256_file
from fiqa_bench.method import METHODS, create_method
from fiqa_bench.pipeline.embedding import embed_dataset
from fiqa_bench.recognition import create_model
from fiqa_bench.pipeline.scoring import score_dataset

def test_train_and_score_a_folder(small_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    cache, ckpt = tmp_path / "cache", tmp_path / "sdd.pt"
    code = main(["train", "--method", "sdd", "--dataset", f"folder:{small_folder}", "--out", str(ckpt),
                 "--cache-dir", str(cache), "--quiet", "--workers", "1", "--set", "m=3", "--set", "repetitions=4"])
    assert code == 0, capsys.readouterr().err
    record = json.loads(ckpt.with_suffix(".json").read_text())
    assert record["sha256"] == sha256_file(ckpt)
    assert record["n_images"] == 18 and record["n_failed_images"] == 1
    assert record["n_labelled"] == 16  # one identity has a single image: no label
    assert record["labels"] == {"m": 3, "repetitions": 4, "label_seed": 0, "variant": "sdd"}
    assert record["method"] == "sdd" and record["head"]["kind"] == "regression"
    assert "git" in record["provenance"]

    out = tmp_path / "scores.csv"
    assert main(["score", "--method", "sdd", "--weights", str(ckpt), "--dataset", f"folder:{small_folder}",
                 "--out", str(out), "--cache-dir", str(cache), "--quiet", "--workers", "1"]) == 0
    text = out.read_bytes().decode()
    assert "\r" not in text  # plain newlines: grep and awk read it
    lines = text.splitlines()
    assert lines[0] == "path,identity,quality,native,face,reason" and len(lines) == 19
    broken = [ln for ln in lines if "broken.jpg" in ln][0]
    assert ",,,not analysed,upstream failure: empty file" in broken
    assert sum(",found by hog," in ln for ln in lines) == 17
    assert "1 without a quality score" in capsys.readouterr().out


def test_full_mode_checkpoint_scores_chips(small_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    cache, ckpt = tmp_path / "cache", tmp_path / "full.pt"
    code = main(["train", "--method", "sdd", "--dataset", f"folder:{small_folder}", "--out", str(ckpt),
                 "--cache-dir", str(cache), "--quiet", "--workers", "1", "--set", "mode=full", "--set", "epochs=1",
                 "--set", "batch_size=8", "--set", "m=3", "--set", "repetitions=2"])
    assert code == 0, capsys.readouterr().err
    record = json.loads(ckpt.with_suffix(".json").read_text())
    assert (record["mode"], record["features"], record["ensemble"], record["hidden"]) == ("full", "chips", 1, 0)
    method = create_method("sdd", weights=ckpt)
    assert method.card.needs == "chips:dlib150"
    table = score_dataset(method, load_dataset(f"folder:{small_folder}", tmp_path), RunContext(cache, workers=1,
                          progress=False))
    broken = [i for i, p in enumerate(table.paths) if p.endswith("broken.jpg")][0]
    assert np.isfinite(np.delete(table.quality, broken)).all()
    assert table.reasons[broken] == "upstream failure: empty file"


def test_training_options_are_checked(small_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    code = main(["train", "--method", "sdd", "--dataset", f"folder:{small_folder}", "--out",
                 str(tmp_path / "x.pt"), "--quiet", "--workers", "1", "--set", "colour=blue"])
    assert code == 2 and "colour" in capsys.readouterr().err
    assert main(["train", "--method", "sdd", "--dataset", f"folder:{small_folder}", "--set", "novalue"]) == 2


def test_shipped_models_are_what_their_records_say():
    from fiqa_bench.method.learned import shipped_checkpoint, weights_dir
    from fiqa_bench.methods.sdd import SDDLabels

    shipped = sorted(weights_dir().glob("sdd*.pt"))
    models = ("dlib-resnet", "mobilefacenet-512")
    assert len(shipped) == 8  # sdd and pos-only labels, each cross-fitted over LFW View 1, for both models
    for model in models:
        for variant in ("sdd", "pos-only"):
            for trained_on in ("lfw:devtrain", "lfw:devtest"):
                path = shipped_checkpoint(SDDLabels(variant=variant).stem, trained_on, model)
                assert path in shipped
                record = json.loads(path.with_suffix(".json").read_text())
                assert record["sha256"] == sha256_file(path) and record["trained_on"] == trained_on
                assert record["labels"]["variant"] == variant and record["provenance"]["git"]["dirty"] is False
                assert record["model"] == model and path.stat().st_size < 5 * 2**20
                method = create_method("sdd", trained_on=trained_on, settings={"variant": variant, "model": model})
                assert method.card.weights_sha256 == record["sha256"]
                assert method.card.needs == f"stages:{model}" and method.card.higher_is_better
    with pytest.raises(FileNotFoundError, match="shipped"):
        create_method("sdd", trained_on="lfw:everything")
    with pytest.raises(ValueError, match="not both"):
        METHODS.get("sdd").create(weights=Path("a.pt"), trained_on="lfw:devtest")
    with pytest.raises(FileNotFoundError, match="neg-only"):
        create_method("sdd", settings={"variant": "neg-only"})
    with pytest.raises(ValueError, match="variant must be one of"):
        create_method("sdd", settings={"variant": "best"})


#: What a retrained model must share with the shipped one on held-out people (the
#: ``lfw_heldout`` fixture, 1,318 images).  Measured (BENCHMARKS.md, "Reproducing the
#: shipped models"): the shipped model, trained on an Intel Xeon, against retrainings on
#: an AMD EPYC gave Spearman >= 0.9993 and AOC differences of at most 0.033 at FMR 1e-2
#: and 0.007 at 1e-3.  The AOC tolerance is a quarter of the standard deviation of a
#: random quality's AOC on the same comparisons (20 seeds; about 0.30 at FMR 1e-2 and
#: 0.13 at 1e-3 here): a difference below it cannot move a method across the random
#: band, which is the verdict the suite reports.
MIN_SPEARMAN = 0.99
AOC_TOLERANCE_IN_RANDOM_SD = 0.25
REPRODUCED_AOCS = (("recomputed", 1e-2), ("fixed", 1e-2), ("fixed", 1e-3))


@pytest.mark.reference
def test_shipped_devtest_model_is_reproduced(lfw_root: Path, lfw_devtest_cache: Path, lfw_heldout,
                                             tmp_path: Path):
    """Retraining on LFW peopleDevTest with the documented command reproduces the shipped model.

    Bitwise only where that can hold: two trainings on one machine (same CPU,
    same library versions) give identical files.  Across CPU families MKL and
    oneDNN choose other kernels, the last bits of features and gradients
    differ and 30 epochs amplify them, so against the shipped file what is
    compared is what the model is for: how it ranks the images of people it
    never saw, and the AOC that ranking gives.
    """
    from scipy.stats import spearmanr

    from fiqa_bench.metrics import all_vs_all, evrc
    from fiqa_bench.metrics.summaries import aoc_or_nan

    from fiqa_bench.method.learned import shipped_checkpoint, train_method
    from fiqa_bench.methods.sdd import SDDFIQA, SDDLabels

    devtest = load_dataset("lfw", lfw_root, "devtest")
    context = RunContext(lfw_devtest_cache, progress=False)
    records = [train_method(SDDLabels(), devtest, "dlib-resnet", context, tmp_path / f"retrained-{i}.pt")
               for i in range(2)]
    first, second = (torch.load(tmp_path / f"retrained-{i}.pt", weights_only=True) for i in range(2))
    assert first["meta"] == second["meta"]
    for key, value in first["state_dict"].items():  # (the files differ: torch names the archive after the file)
        assert torch.equal(value, second["state_dict"][key]), f"two trainings on one machine differ in {key}"
    shipped_path = shipped_checkpoint("sdd", "lfw:devtest")
    shipped = torch.load(shipped_path, weights_only=True)
    assert shipped["meta"]["n_labelled"] == records[0]["n_labelled"] == 2493

    heldout, cache = lfw_heldout
    model = create_model("dlib-resnet")
    emb = embed_dataset(heldout, model, RunContext(cache, progress=False))
    stages = embed_dataset(heldout, model, RunContext(cache, progress=False), output="stages")
    assert not emb.failed.any()
    ours = SDDFIQA(tmp_path / "retrained-0.pt").score(stages.embeddings)
    theirs = SDDFIQA(shipped_path).score(stages.embeddings)
    rho = spearmanr(ours, theirs)[0]
    assert rho >= MIN_SPEARMAN, f"retrained and shipped rank held-out images with Spearman {rho:.4f}"

    comparisons = all_vs_all(emb.embeddings, emb.identities)
    policies, fmrs = ("recomputed", "fixed"), (1e-2, 1e-3)

    def aocs(quality: np.ndarray) -> dict[tuple[str, float], float]:
        curves = evrc(comparisons, quality, fmrs=fmrs, policies=policies)
        return {(p, f): aoc_or_nan(curves.get(p, f)) for p, f in REPRODUCED_AOCS}

    rng = np.random.default_rng(0)
    random_aocs = [aocs(rng.random(len(ours))) for _ in range(20)]
    retrained, reference = aocs(ours), aocs(theirs)
    for key in REPRODUCED_AOCS:
        tolerance = AOC_TOLERANCE_IN_RANDOM_SD * np.std([r[key] for r in random_aocs])
        assert abs(retrained[key] - reference[key]) <= tolerance, (
            f"AOC {key[0]} @ FMR {key[1]:g}: retrained {retrained[key]:.4f}, shipped {reference[key]:.4f}, "
            f"tolerance {tolerance:.4f}")


def test_scores_are_cached(small_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    method = create_method("sdd", trained_on="lfw:devtest")
    dataset = load_dataset(f"folder:{small_folder}", tmp_path)
    first = score_dataset(method, dataset, RunContext(tmp_path / "c", workers=1, progress=False))
    assert np.isnan(first.quality).sum() == 1 and np.isfinite(first.quality).sum() == 17

    def boom(*args, **kwargs):
        raise AssertionError("scored again although cached")

    monkeypatch.setattr(method, "native_score", boom)
    second = score_dataset(method, dataset, RunContext(tmp_path / "c", workers=1, progress=False))
    assert np.array_equal(first.quality, second.quality, equal_nan=True)
