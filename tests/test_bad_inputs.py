"""A corpus of bad inputs, built here (no committed images), through `score` and `embed`.

Every image gets a row; every odd image says why in its row, whether it was
scored (a note: conversion, small image, no face) or not (a failure:
empty, truncated); folder listing survives links that loop and names that
are not UTF-8; byte-identical files share one computation and keep two rows;
a method's NaN or inf is never a quality; a dataset with nothing to score
is one error naming its folder.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import random_texture
from fiqa_bench.pipeline import embedding as pipeline
from fiqa_bench.cli import main
from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.data import DatasetError, load_dataset
from fiqa_bench.faces import batch
from fiqa_bench.faces.io import DETECTABLE_SIDE, ImageLoadError, is_load_note, load_rgb
from fiqa_bench.method import MethodCard, QualityMethod
from fiqa_bench.pipeline import hashing
from fiqa_bench.pipeline.embedding import Embeddings
from fiqa_bench.pipeline.hashing import FileKeys
from fiqa_bench.pipeline.scoring import csv_text, score_dataset

SMALL_NOTE = f"8x8 px, below the {DETECTABLE_SIDE} px a face detector can use"
NO_FACE = "no face detected: fallback box"
NON_UTF8_NAME = b"caf\xe9.jpg"  # Latin-1 'e acute': not valid UTF-8


def _link(target: str, at: Path) -> bool:
    try:
        os.symlink(target, at, target_is_directory=True)
    except OSError:
        return False
    return True


@pytest.fixture()
def corpus(tmp_path: Path, lfw_root: Path) -> tuple[Path, list[Path], list[str]]:
    """The bad-input folder dataset: ``(root, every image file it should list, the links that loop)``.

    Real LFW faces (one identity with a single image) beside, in ``Odd/``:
    a truncated JPEG, a zero-byte JPEG, a 16-bit PNG, a grayscale JPEG, an
    RGBA PNG, a CMYK JPEG (all four of a real face), an 8x8 image, two
    face-less images (a smooth texture, a flat grey one with a space in its
    name), a face under a name with spaces, a face under a name that is not
    UTF-8 (when the file system takes it), two byte-identical files, and two
    folder links that loop (``Odd/up -> ..`` and an identity ``All -> .``).
    """
    root = tmp_path / "bad faces"
    lfw = lfw_root / "lfw" / "images_deepfunneled"
    picks = {"Colin_Powell": [1, 2, 3], "Tony_Blair": [1, 2], "Aaron_Eckhart": [1]}
    files: list[Path] = []
    for person, numbers in picks.items():
        (root / person).mkdir(parents=True)
        for k in numbers:
            files.append(Path(shutil.copyfile(lfw / person / f"{person}_{k:04d}.jpg",
                                              root / person / f"{person}_{k:04d}.jpg")))
    odd = root / "Odd"
    odd.mkdir()
    face = np.asarray(Image.open(lfw / "Colin_Powell" / "Colin_Powell_0004.jpg").convert("RGB"))
    whole = (lfw / "Colin_Powell" / "Colin_Powell_0005.jpg").read_bytes()
    (odd / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (odd / "empty.jpg").write_bytes(b"")
    Image.fromarray((face.mean(2) * 257).astype(np.uint16)).save(odd / "sixteen.png")
    assert Image.open(odd / "sixteen.png").mode == "I;16"
    Image.fromarray(face.mean(2).astype(np.uint8)).save(odd / "grey.jpg")
    Image.fromarray(np.dstack([face, np.full(face.shape[:2], 200, np.uint8)])).save(odd / "rgba.png")
    Image.fromarray(face).convert("CMYK").save(odd / "cmyk.jpg")
    Image.fromarray(face).resize((8, 8)).save(odd / "tiny.png")
    Image.fromarray(random_texture(3, 200)).save(odd / "noface.png")
    Image.fromarray(np.full((120, 120, 3), 128, np.uint8)).save(odd / "flat grey.png")
    shutil.copyfile(lfw / "Tony_Blair" / "Tony_Blair_0003.jpg", odd / "with  two spaces.jpg")
    shutil.copyfile(lfw / "Colin_Powell" / "Colin_Powell_0006.jpg", odd / "dup_a.jpg")
    shutil.copyfile(lfw / "Colin_Powell" / "Colin_Powell_0006.jpg", odd / "dup_b.jpg")
    names = ["truncated.jpg", "empty.jpg", "sixteen.png", "grey.jpg", "rgba.png", "cmyk.jpg", "tiny.png",
             "noface.png", "flat grey.png", "with  two spaces.jpg", "dup_a.jpg", "dup_b.jpg"]
    files += [odd / n for n in names]
    try:
        bytes_path = os.fsencode(odd) + b"/" + NON_UTF8_NAME
        shutil.copyfile(lfw / "Tony_Blair" / "Tony_Blair_0004.jpg", bytes_path)
        files.append(Path(os.fsdecode(bytes_path)))
    except (OSError, UnicodeError):  # a file system that refuses such names: the rest still runs
        pass
    loops = [str(at) for target, at in ((os.pardir, odd / "up"), (os.curdir, root / "All")) if _link(target, at)]
    return root, files, loops


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    """The score CSV's rows by file name (strict UTF-8: the file must be valid)."""
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["path", "identity", "quality", "native", "face", "reason"]
    by_name = {row["path"].rsplit("/", 1)[-1]: row for row in rows}
    assert len(by_name) == len(rows)
    return by_name


def name_of(path: Path) -> str:
    return csv_text(path.name)


#: input -> (scored?, face outcome, what the reason must contain).
EXPECTED = {
    "truncated.jpg": (False, "not analysed", "upstream failure: corrupt image: image file is truncated"),
    "empty.jpg": (False, "not analysed", "upstream failure: empty file"),
    "sixteen.png": (True, "found by hog", "converted from 16-bit grayscale (I;16)"),
    "grey.jpg": (True, "found by hog", "converted from grayscale (L)"),
    "rgba.png": (True, "found by hog", "converted from RGBA: alpha channel dropped"),
    "cmyk.jpg": (True, "found by hog", "converted from CMYK"),
    "tiny.png": (True, "not found by hog: fallback box", f"{SMALL_NOTE}; {NO_FACE}"),
    "noface.png": (True, "not found by hog: fallback box", NO_FACE),
    "flat grey.png": (True, "not found by hog: fallback box", NO_FACE),
    "with  two spaces.jpg": (True, "found by hog", ""),
    "dup_a.jpg": (True, "found by hog", ""),
    "dup_b.jpg": (True, "found by hog", ""),
    "Aaron_Eckhart_0001.jpg": (True, "found by hog", ""),
    csv_text(os.fsdecode(NON_UTF8_NAME)): (True, "found by hog", "file name is not valid UTF-8"),
}


def check_rows(rows: dict[str, dict[str, str]], files: list[Path]) -> None:
    assert sorted(rows) == sorted(name_of(f) for f in files)  # every image has a row, each once
    for name, (scored, face, reason) in EXPECTED.items():
        if name not in rows:  # the non-UTF-8 name, where the file system refused it
            continue
        row = rows[name]
        assert (row["quality"] != "") == scored, (name, row)
        assert row["face"] == face, (name, row)
        if reason:
            assert reason in row["reason"], (name, row)
        else:
            assert row["reason"] == "", (name, row)
    for name, row in rows.items():
        if name not in EXPECTED:  # the real faces
            assert row["quality"] and row["face"] == "found by hog" and row["reason"] == "", (name, row)


def test_folder_listing_follows_no_loop_and_keeps_odd_names(corpus):
    root, files, loops = corpus
    dataset = load_dataset(f"folder:{root}", root.parent)
    assert sorted(dataset.paths) == sorted(files)  # nothing listed twice through a link
    assert sorted(set(dataset.identities)) == ["Aaron_Eckhart", "Colin_Powell", "Odd", "Tony_Blair"]
    assert len(dataset.notes) == len(loops)
    for link, note in zip(sorted(loops), sorted(dataset.notes)):
        assert note.startswith(f"{link}: link back to") and "loop" in note
    raw = [os.fsencode(p) for p in dataset.paths]
    if any(r.endswith(NON_UTF8_NAME) for r in raw):
        assert all(Path(os.fsdecode(r)).is_file() for r in raw)  # the exact name reaches the file


def test_score_and_embed_record_every_bad_input(corpus, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                 monkeypatch: pytest.MonkeyPatch):
    root, files, loops = corpus
    cache = tmp_path / "cache"
    aligned: list[str] = []
    real_work = batch._work

    def counting_work(job):  # noqa: ANN001, ANN202 - a batch Job
        aligned.append(job[0])
        return real_work(job)

    monkeypatch.setattr(batch, "_work", counting_work)
    hashed: list[str] = []
    real_key = hashing.file_key
    monkeypatch.setattr(hashing, "file_key", lambda p: hashed.append(str(p)) or real_key(p))
    common = ["--dataset", f"folder:{root}", "--cache-dir", str(cache), "--quiet", "--workers", "1"]

    out = tmp_path / "sharpness.csv"
    assert main(["score", "--method", "sharpness", "--out", str(out), *common]) == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    check_rows(read_csv(out), files)
    n, n_unique = len(files), len(files) - 1  # dup_a and dup_b hold the same bytes
    assert f"wrote {out}: {n} images ({n_unique} unique files: 1 byte-identical copy, computed once)" in captured.out
    assert "5 converted or too small for a detector" in captured.out
    assert "2 without a quality score (2 unreadable, 0 refused by the method)" in captured.out
    assert "3 with no face found by hog" in captured.out
    assert all(f"note: {link}: link back to" in captured.err for link in loops)
    # Each file hashed once although three steps asked for the keys (scores, chips, the count of unique
    # files); duplicates aligned once.
    assert sorted(hashed) == sorted(str(f) for f in files)
    assert len(aligned) == n_unique and sum(Path(p).name in ("dup_a.jpg", "dup_b.jpg") for p in aligned) == 1
    rows = read_csv(out)
    assert rows["dup_a.jpg"]["quality"] == rows["dup_b.jpg"]["quality"]  # both rows kept, one computation

    # A second call (a new run: every file hashed again, once) reads everything else from the cache and
    # writes the same file.
    first = out.read_bytes()
    hashed.clear()
    assert main(["score", "--method", "sharpness", "--out", str(out), *common]) == 0
    assert out.read_bytes() == first and len(aligned) == n_unique
    assert sorted(hashed) == sorted(str(f) for f in files)

    # SDD reads dlib-resnet's stage features (another stage of the pipeline): the same notes.
    sdd = tmp_path / "sdd.csv"
    hashed.clear()
    assert main(["score", "--method", "sdd", "--out", str(sdd), *common]) == 0, capsys.readouterr().err
    assert sorted(hashed) == sorted(str(f) for f in files)  # scores, stage features, count: once each
    check_rows(read_csv(sdd), files)
    capsys.readouterr()

    npz = tmp_path / "emb.npz"
    hashed.clear()
    assert main(["embed", "--model", "dlib-resnet", "--out", str(npz), *common]) == 0
    captured = capsys.readouterr()
    assert "2 failed" in captured.out and "3 with no detected face" in captured.out
    emb = Embeddings.load(npz)
    row = {name_of(Path(p)): i for i, p in enumerate(emb.paths)}
    assert sorted(row) == sorted(name_of(f) for f in files)
    assert sorted(emb.paths.tolist()) == sorted(str(f) for f in files)  # exact names, non-UTF-8 included
    assert emb.failed.sum() == 2 and np.isnan(emb.embeddings[emb.failed]).all()
    for name, (scored, face, reason) in EXPECTED.items():
        if name in row and "UTF-8" not in reason:
            i = row[name]
            assert emb.failed[i] == (not scored) and emb.face[i] == face
            assert reason.removeprefix("upstream failure: ") in emb.reasons[i], (name, emb.reasons[i])
    a, b = row["dup_a.jpg"], row["dup_b.jpg"]
    assert emb.image_sha256[a] == emb.image_sha256[b] and np.array_equal(emb.embeddings[a], emb.embeddings[b])
    assert sorted(hashed) == sorted(str(f) for f in files)  # one hash per file in this run too


def test_hash_bar_is_drawn_once_per_file(tmp_path: Path, capsys: pytest.CaptureFixture):
    paths = []
    for k in range(3):
        paths.append(tmp_path / f"{k}.png")
        Image.fromarray(random_texture(k, 40)).save(paths[-1])
    keys = FileKeys()
    first = keys.of(paths, progress=True)
    assert "hashing images" in capsys.readouterr().err
    assert keys.of(paths, progress=True) == first
    assert capsys.readouterr().err == ""  # nothing left to hash: no second bar
    assert FileKeys().of(paths, progress=True) == first  # a new run hashes again, and draws its bar
    assert "hashing images" in capsys.readouterr().err


class Scripted(QualityMethod):
    """Returns the value scripted for each chip (by the chip's bytes); lower is better, as for a distance."""

    card = MethodCard(name="scripted", paper="test", higher_is_better=False, needs="chips:dlib150",
                      trained=False, weights="none")

    def __init__(self, values: dict[str, float], default: float = 1.0) -> None:
        self.values = values
        self.default = default

    def native_score(self, inputs: np.ndarray) -> np.ndarray:
        return np.array([self.values.get(hashlib.sha256(c.tobytes()).hexdigest(), self.default) for c in inputs])


def test_nan_and_inf_from_a_method_are_never_qualities(corpus, tmp_path: Path):
    root, files, _ = corpus
    context = RunContext(tmp_path / "cache", workers=1, progress=False)
    dataset = load_dataset(f"folder:{root}", root.parent)
    chips, _, _ = pipeline.dataset_chips(dataset, "dlib150", context)
    row = {name_of(p): i for i, p in enumerate(dataset.paths)}
    script = {"Colin_Powell_0001.jpg": np.nan, "Colin_Powell_0002.jpg": np.inf,
              "Colin_Powell_0003.jpg": -np.inf, "tiny.png": np.nan}
    values = {hashlib.sha256(chips[row[n]].tobytes()).hexdigest(): v for n, v in script.items()}
    table = score_dataset(Scripted(values), dataset, context)
    reason = dict(zip(map(name_of, map(Path, table.paths)), table.reasons))
    quality = dict(zip(map(name_of, map(Path, table.paths)), table.quality))
    native = dict(zip(map(name_of, map(Path, table.paths)), table.native))
    assert reason["Colin_Powell_0001.jpg"] == "method returned NaN"
    assert reason["Colin_Powell_0002.jpg"] == "method returned inf"
    # -inf of a lower-is-better method would have been the best quality of all: refused.
    assert reason["Colin_Powell_0003.jpg"] == "method returned -inf" and native["Colin_Powell_0003.jpg"] == -np.inf
    assert reason["tiny.png"] == f"method returned NaN; {SMALL_NOTE}; {NO_FACE}"
    for name in script:
        assert np.isnan(quality[name])
    assert np.isfinite(table.quality[~np.isnan(table.quality)]).all()
    assert quality["Tony_Blair_0001.jpg"] == -1.0 and reason["Tony_Blair_0001.jpg"] == ""
    again = score_dataset(Scripted(values), dataset, context)  # from the cache
    assert again.reasons.tolist() == table.reasons.tolist()
    np.testing.assert_array_equal(again.quality, table.quality)

    class Short(Scripted):
        card = MethodCard(name="short", paper="test", higher_is_better=True, needs="chips:dlib150",
                          trained=False, weights="none")

        def native_score(self, inputs: np.ndarray) -> np.ndarray:
            return np.ones(len(inputs) - 1)

    with pytest.raises(ValueError, match="'short' returned scores of shape"):
        score_dataset(Short({}), dataset, context)

    class Nothing(Short):
        card = MethodCard(name="nothing", paper="test", higher_is_better=True, needs="chips:dlib150",
                          trained=False, weights="none")

        def native_score(self, inputs: np.ndarray) -> np.ndarray:
            return np.full(len(inputs), np.nan)

    with pytest.raises(ValueError, match=f"'nothing' gave no quality to any of the {len(files)} images of folder:"):
        score_dataset(Nothing({}), dataset, context)


def test_nothing_to_score_is_one_error_naming_the_folder(tmp_path: Path, capsys: pytest.CaptureFixture):
    common = ["--cache-dir", str(tmp_path / "cache"), "--quiet", "--workers", "1"]
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "no images" / "Someone").mkdir(parents=True)
    for folder in (empty, tmp_path / "no images"):
        for command in (["score", "--method", "sharpness"], ["embed", "--model", "lbp"]):
            code = main([*command, "--dataset", f"folder:{folder}", "--out", str(tmp_path / "out"), *common])
            err = capsys.readouterr().err
            assert code == 2 and f"no images found under {folder}" in err and err.count("\n") == 1

    broken = tmp_path / "all broken"
    (broken / "Someone").mkdir(parents=True)
    (broken / "Someone" / "empty.jpg").write_bytes(b"")
    (broken / "Someone" / "garbage.png").write_bytes(b"not an image at all" * 20)
    png = tmp_path / "texture.png"
    Image.fromarray(random_texture(1, 200)).save(png)
    (broken / "Someone" / "truncated.png").write_bytes(png.read_bytes()[:300])
    for command in (["score", "--method", "sharpness"], ["embed", "--model", "lbp"], ["score", "--method", "sdd"]):
        out = tmp_path / f"out-{command[-1]}"
        code = main([*command, "--dataset", f"folder:{broken}", "--out", str(out), *common])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1, err
        assert f"none of the 3 images of folder:{broken} could be read" in err
        assert "empty file" in err and not out.exists()
    with pytest.raises(DatasetError, match="none of the 3 images"):
        score_dataset(Scripted({}), load_dataset(f"folder:{broken}", tmp_path),
                      RunContext(tmp_path / "cache", workers=1, progress=False))


def test_loader_failures_and_notes(tmp_path: Path):
    """The loader's contract (its module docstring), without LFW."""
    texture = random_texture(5, 64)
    cases = {
        "grey.png": (Image.fromarray(texture[:, :, 0]), "converted from grayscale (L)"),
        "sixteen.png": (Image.fromarray(texture[:, :, 0].astype(np.uint16) * 257),
                        "converted from 16-bit grayscale (I;16)"),
        "rgba.png": (Image.fromarray(np.dstack([texture, texture[:, :, :1]])),
                     "converted from RGBA: alpha channel dropped"),
        "cmyk.jpg": (Image.fromarray(texture).convert("CMYK"), "converted from CMYK"),
        "palette.png": (Image.fromarray(texture).convert("P"), "converted from palette (P)"),
        "small.png": (Image.fromarray(texture[:20, :16]),
                      f"16x20 px, below the {DETECTABLE_SIDE} px a face detector can use"),
        "plain.png": (Image.fromarray(texture), None),
    }
    for name, (image, note) in cases.items():
        image.save(tmp_path / name)
        rgb, notes = load_rgb(tmp_path / name)
        assert rgb.dtype == np.uint8 and rgb.shape[2] == 3
        assert notes == ((note,) if note else ()), name
        assert all(is_load_note(n) for n in notes)
    cv2.imwrite(str(tmp_path / "rgb16.png"), texture.astype(np.uint16) * 257)
    assert load_rgb(tmp_path / "rgb16.png")[1] == ("converted from 16-bit RGB",)
    assert not is_load_note(NO_FACE)

    Image.fromarray(texture[:7, :20]).save(tmp_path / "seven.png")
    with pytest.raises(ImageLoadError, match="image too small: 20x7 px, below 8 px"):
        load_rgb(tmp_path / "seven.png")
    (tmp_path / "truncated.png").write_bytes((tmp_path / "plain.png").read_bytes()[:200])
    with pytest.raises(ImageLoadError, match="corrupt image") as info:
        load_rgb(tmp_path / "truncated.png")
    assert str(tmp_path / "truncated.png") in str(info.value)
    with pytest.raises(ImageLoadError, match="unreadable file: No such file"):
        load_rgb(tmp_path / "missing.png")
