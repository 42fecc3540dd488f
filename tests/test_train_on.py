"""Scoring with heads trained on a training set the user chose (:meth:`Scoring.trained_on`).

The refusal when the training set shares people or image files with the scored set, the note that
names the training set, what a method can train on (pseudo-identities), the cached checkpoint's file
name for any spec, and one real training on a tiny folder of LFW people scoring a folder of others.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fiqa_bench.data import Dataset, DatasetError, Sample, load_dataset
from fiqa_bench.method import MethodSpec, method_class
from fiqa_bench.method import learned
from fiqa_bench.method.learned import (
    check_trainable,
    learned_checkpoint,
    shipped_checkpoint,
    training_data_identity,
)
from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.pipeline.stores import dataset_slug, trained_checkpoint
from fiqa_bench.protocol.scoring import Scoring, score_spec, trained_on_note

SAFE_NAME = re.compile(r"[A-Za-z0-9._=+-]+\.pt")


def image_folder(root: Path, people: dict[str, int]) -> Path:
    """``root/<person>/<person>_<k>.jpg``: placeholder bytes (listing a folder reads no image), each file a
    different size so that a changed file is seen."""
    for person, count in people.items():
        (root / person).mkdir(parents=True)
        for k in range(count):
            (root / person / f"{person}_{k}.jpg").write_bytes(b"x" * (k + 1))
    return root


def context(tmp_path: Path) -> RunContext:
    return RunContext(tmp_path / "cache", progress=False, workers=1)


def folder(path: Path, ctx: RunContext) -> Dataset:
    return load_dataset(f"folder:{path}", ctx.data_root, cache_dir=ctx.cache_dir)


# --- the refusal ---------------------------------------------------------------------------------------


def test_a_training_set_with_the_scored_sets_people_is_refused(tmp_path: Path):
    ctx = context(tmp_path)
    scored = image_folder(tmp_path / "scored", {"ann": 2, "bob": 2})
    train = image_folder(tmp_path / "train", {"bob": 3, "cat": 3})
    with pytest.raises(DatasetError) as err:
        Scoring.trained_on(folder(scored, ctx), f"folder:{train}", ctx)
    message = str(err.value)
    assert f"folder:{train}" in message and f"folder:{scored}" in message
    assert "share 1 person ('bob')" in message and "image file" not in message


def test_a_training_set_with_the_scored_sets_files_is_refused(tmp_path: Path):
    """The same files under other identity names (links) are the same people."""
    ctx = context(tmp_path)
    scored = image_folder(tmp_path / "scored", {"ann": 2, "bob": 2})
    train = tmp_path / "train"
    (train / "someone").mkdir(parents=True)
    for image in sorted((scored / "ann").iterdir()):
        (train / "someone" / image.name).symlink_to(image)
    (train / "other").mkdir()
    (train / "other" / "o.jpg").write_bytes(b"o")
    with pytest.raises(DatasetError, match=r"they share 2 image files") as err:
        Scoring.trained_on(folder(scored, ctx), f"folder:{train}", ctx)
    assert "person" not in str(err.value) and "people (" not in str(err.value)


def test_a_disjoint_training_set_scores_every_image_and_the_note_names_it(tmp_path: Path):
    ctx = context(tmp_path)
    scored_root = image_folder(tmp_path / "scored", {"ann": 2, "bob": 2})
    train = image_folder(tmp_path / "train", {"cat": 3, "dan": 2, "eve": 1})
    scored = folder(scored_root, ctx)
    scoring = Scoring.trained_on(scored, f"folder:{train}", ctx)
    assert scoring.training_set == f"folder:{train}"
    assert [(part, spec) for part, spec in scoring.folds] == [(scored, f"folder:{train}")]
    assert f"heads trained on folder:{train} (6 images, 3 identities)" in scoring.note
    assert f"shares no identity and no image file with folder:{scored_root}" in scoring.note
    assert Scoring.of(scored).folds == ()  # unchanged


def test_a_training_set_without_two_images_of_anyone_is_refused(tmp_path: Path):
    ctx = context(tmp_path)
    scored = image_folder(tmp_path / "scored", {"ann": 2})
    train = image_folder(tmp_path / "train", {"cat": 1, "dan": 1})
    with pytest.raises(DatasetError, match=r"none of its 2 identities has two or more images"):
        Scoring.trained_on(folder(scored, ctx), f"folder:{train}", ctx)


def test_the_note_says_when_identities_could_not_be_compared(tmp_path: Path):
    """A pseudo-identity set (a ``.bin`` file's) has no people to compare: only files are, and the note says so."""
    ctx = context(tmp_path)
    scored = folder(image_folder(tmp_path / "scored", {"ann": 2}), ctx)
    pseudo = replace(folder(image_folder(tmp_path / "pairs", {"id00000": 2, "id00001": 2}), ctx),
                     name="bin:/data/x.bin", has_identities=False)
    note = trained_on_note(scored, pseudo, "bin:/data/x.bin")
    assert "heads trained on bin:/data/x.bin (4 images, 2 pseudo-identities)" in note
    assert "bin:/data/x.bin has no named people" in note and "fair only if" in note


def test_lfw_splits_and_faces94(lfw_root: Path, tmp_path: Path):
    """devtest with devtrain is its own cross-fitting; lfw:all with devtrain shares people; faces94 is other people."""
    ctx = RunContext(tmp_path / "cache", data_root=lfw_root, progress=False, workers=1)
    devtest = load_dataset("lfw:devtest", lfw_root, cache_dir=ctx.cache_dir)
    scoring = Scoring.trained_on(devtest, "lfw:devtrain", ctx)
    assert scoring == Scoring.of(devtest) and scoring.training_set is None
    with pytest.raises(DatasetError, match=r"lfw:devtrain cannot train the heads that score lfw:all: they share "
                                           r"4,038 people .* and 9,525 image files.*own cross-fitting"):
        Scoring.trained_on(load_dataset("lfw", lfw_root, cache_dir=ctx.cache_dir), "lfw:devtrain", ctx)
    if not (lfw_root / "faces94" / "images").is_dir():
        pytest.skip(f"faces94 not found under {lfw_root}")
    faces94 = load_dataset("faces94", lfw_root, cache_dir=ctx.cache_dir)
    scoring = Scoring.trained_on(faces94, "lfw:devtrain", ctx)
    assert scoring.folds == ((faces94, "lfw:devtrain"),)
    assert "heads trained on lfw:devtrain (9,525 images, 4,038 identities)" in scoring.note
    assert "faces94 (3,040 images, 152 identities)" in Scoring.trained_on(devtest, "faces94", ctx).note


# --- what a method trains on ---------------------------------------------------------------------------


def test_pseudo_identities_train_only_methods_that_compare_one_identity(tmp_path: Path):
    samples = tuple(Sample(tmp_path / f"{i}.jpg", f"id{i // 2:05d}") for i in range(6))
    pseudo = Dataset("bin:/data/x.bin", tmp_path, samples, has_identities=False)
    for name in ("sdd", "cr-fiqa"):
        objective = method_class(name).objective()
        with pytest.raises(DatasetError, match=rf"{name} cannot train on bin:/data/x.bin: its identities are "
                                               r"pseudo-identities.*\(faceqnet-v0, faceqnet-v1, pcnet, pfe\)"):
            check_trainable(objective, pseudo)
        check_trainable(objective, replace(pseudo, has_identities=True))
    for name in ("pcnet", "pfe", "faceqnet-v0", "faceqnet-v1"):
        check_trainable(method_class(name).objective(), pseudo)
    singletons = replace(pseudo, samples=tuple(Sample(s.path, str(i)) for i, s in enumerate(samples)))
    with pytest.raises(DatasetError, match="none of its 6 identities has two or more images"):
        check_trainable(method_class("pcnet").objective(), singletons)


def test_a_bin_file_as_the_training_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A ``.bin`` (pseudo-identities from its genuine pairs): named in the note, refused to SDD before any
    training, trained for PCNet (stood in for) under a safe name, and refused for scoring its own images."""
    cv2 = pytest.importorskip("cv2")
    from fiqa_bench.formats.insightface_bin import write_bin

    def png(seed: int) -> bytes:
        pixels = np.random.default_rng(seed).integers(0, 256, (112, 112, 3), dtype=np.uint8)
        return cv2.imencode(".png", pixels)[1].tobytes()

    (tmp_path / "d:1").mkdir()
    bin_file = tmp_path / "d:1" / "agedb_30.bin"
    write_bin(bin_file, [png(i) for i in range(8)], [True, False, True, True])
    spec = f"bin:{bin_file}"
    ctx = context(tmp_path)
    scored = folder(image_folder(tmp_path / "scored", {"ann": 2}), ctx)
    note = Scoring.trained_on(scored, spec, ctx).note
    assert f"heads trained on {spec} (8 images, 5 pseudo-identities)" in note and "fair only if" in note
    calls = []
    monkeypatch.setattr(learned, "train_method", lambda objective, *args: calls.append(objective.method))
    with pytest.raises(DatasetError, match=r"sdd cannot train on bin:agedb_30: its identities are pseudo"):
        learned_checkpoint(method_class("sdd"), {}, spec, ctx)
    assert calls == [] and not list((ctx.cache_dir / "trained").glob("*"))

    def fake_train(objective, dataset, model_name, model_context, out, config):  # noqa: ANN001, ANN202
        calls.append((objective.method, model_context.alignment.detector))
        Path(out).write_bytes(b"checkpoint")
        Path(out).with_suffix(".json").write_text("{}")

    monkeypatch.setattr(learned, "train_method", fake_train)
    path, trained_here = learned_checkpoint(method_class("pcnet"), {}, spec, ctx)
    assert trained_here and SAFE_NAME.fullmatch(path.name)
    assert path.name.startswith("pcnet-dlib-resnet-bin-agedb_30.bin-")
    expected = ctx.for_dataset(load_dataset(spec, ctx.data_root, cache_dir=ctx.cache_dir)).alignment.detector
    assert calls == [("pcnet", expected)]  # trained on the detector its pre-aligned crops are read with
    with pytest.raises(DatasetError, match=rf"{re.escape(spec)} cannot train the heads that score bin:agedb_30: "
                                           r"they share 8 image files"):
        Scoring.trained_on(load_dataset(spec, ctx.data_root, cache_dir=ctx.cache_dir), spec, ctx)


# --- checkpoints -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["folder:/data/a b/faces/", "bin:/data/x/lfw.bin", "pairs:/d/p.txt@view2:x",
                                  "folder:" + "/deep" * 60 + "/" + "n" * 300, "folder:/x/.."])
def test_a_trained_checkpoints_name_is_a_safe_file_name(spec: str, tmp_path: Path):
    path = trained_checkpoint(tmp_path, "sdd", "iresnet50@/w/b.pth", spec, "0123456789abcdef")
    assert path.parent == tmp_path / "trained" and SAFE_NAME.fullmatch(path.name) and len(path.name) < 120
    assert dataset_slug(spec).startswith(spec.partition(":")[0])
    keyless = trained_checkpoint(tmp_path, "sdd", "dlib-resnet", spec)  # fiqa-bench train's default --out
    assert keyless.parent == tmp_path / "trained" and SAFE_NAME.fullmatch(keyless.name)
    assert keyless != trained_checkpoint(tmp_path, "sdd", "dlib-resnet", spec + "2")


def test_no_shipped_model_is_named_by_a_path():
    assert shipped_checkpoint("sdd", "lfw:devtrain").is_file()
    with pytest.raises(ValueError, match="no model is shipped trained on 'folder:/x/../y'"):
        shipped_checkpoint("sdd", "folder:/x/../y")


def test_shipped_checkpoints_still_serve_lfw(tmp_path: Path):
    ctx = context(tmp_path)
    for split in ("lfw:devtrain", "lfw:devtest"):
        path, trained_here = learned_checkpoint(method_class("sdd"), {}, split, ctx)
        assert path == shipped_checkpoint("sdd", split) and not trained_here


def test_two_folders_of_one_name_train_two_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The cache key covers the full spec and the training data; the training itself is stood in for."""
    calls = []

    def fake_train(objective, dataset, model_name, ctx, out, config):  # noqa: ANN001, ANN202
        calls.append(dataset.name)
        Path(out).write_bytes(b"checkpoint")
        Path(out).with_suffix(".json").write_text(json.dumps({"checkpoint": Path(out).name}))

    monkeypatch.setattr(learned, "train_method", fake_train)
    ctx = context(tmp_path)
    first = image_folder(tmp_path / "a:1" / "faces", {"ann": 2, "bob": 2})
    second = image_folder(tmp_path / "b@2" / "faces", {"ann": 2, "bob": 2})
    paths = [learned_checkpoint(method_class("sdd"), {}, f"folder:{root}", ctx)[0] for root in (first, second)]
    assert paths[0] != paths[1] and all(SAFE_NAME.fullmatch(p.name) and p.is_file() for p in paths)
    assert all(p.name.startswith("sdd-dlib-resnet-folder-faces-") for p in paths)
    assert json.loads(paths[0].with_suffix(".json").read_text()) == {"checkpoint": paths[0].name}
    assert learned_checkpoint(method_class("sdd"), {}, f"folder:{first}", ctx)[0] == paths[0]  # cached
    assert len(calls) == 2
    (first / "ann" / "ann_0.jpg").write_bytes(b"a longer file")  # the data changed: trained anew
    assert learned_checkpoint(method_class("sdd"), {}, f"folder:{first}", ctx)[0] != paths[0]
    assert len(calls) == 3


def test_the_training_data_identity_is_its_samples_not_its_bytes(tmp_path: Path):
    ctx = context(tmp_path)
    root = image_folder(tmp_path / "faces", {"ann": 2})
    before = training_data_identity(folder(root, ctx))
    assert before["samples"] == [["ann/ann_0.jpg", "ann", 1], ["ann/ann_1.jpg", "ann", 2]]
    (root / "ann" / "ann_0.jpg").rename(root / "ann" / "ann_9.jpg")
    assert training_data_identity(folder(root, ctx)) != before


# --- a real training ------------------------------------------------------------------------------------


def test_train_on_a_tiny_folder_and_score_other_people(lfw_root: Path, tmp_path: Path):
    """CR-FIQA trained on 10 LFW people x 4 images (links), scoring 4 other people x 3 images (a few seconds)."""
    images = lfw_root / "lfw" / "images_deepfunneled"
    people = sorted(p.name for p in images.iterdir() if len(list(p.glob("*.jpg"))) >= 4)[:14]

    def linked(root: Path, names: list[str], count: int) -> Path:
        for name in names:
            (root / name).mkdir(parents=True)
            for k in range(1, count + 1):
                (root / name / f"{name}_{k:04d}.jpg").symlink_to(images / name / f"{name}_{k:04d}.jpg")
        return root

    train = linked(tmp_path / "train", people[:10], 4)
    scored_root = linked(tmp_path / "scored", people[10:], 3)
    ctx = RunContext(tmp_path / "cache", data_root=lfw_root, progress=False, workers=1)
    scored = folder(scored_root, ctx)
    scoring = Scoring.trained_on(scored, f"folder:{train}", ctx)
    assert f"heads trained on folder:{train} (40 images, 10 identities)" in scoring.note

    result = score_spec(MethodSpec("cr-fiqa"), scored, scoring, ctx, "dlib-resnet")
    (scorer,) = result.scorers
    assert scorer["images"] == f"12 all images (model trained on folder:{train}) (trained here on first use)"
    assert scorer["checkpoint"].startswith("cr-fiqa-dlib-resnet-folder-train-")
    checkpoint = ctx.cache_dir / "trained" / scorer["checkpoint"]
    record = json.loads(checkpoint.with_suffix(".json").read_text())
    assert record["trained_on"] == f"folder:{train}" and record["n_images"] == 40 and record["n_labelled"] >= 30
    assert list(result.table.paths) == [str(p) for p in scored.paths]
    quality = np.asarray(result.table.quality, dtype=np.float64)
    assert np.isfinite(quality).sum() >= 10  # a face or two may be missed by the detector; the rest are scored
    again = score_spec(MethodSpec("cr-fiqa"), scored, scoring, ctx, "dlib-resnet")
    assert again.scorers[0]["checkpoint_sha256"] == scorer["checkpoint_sha256"]  # the cached head, not retrained
