"""The three chip stores (raw, lossless WebP, none kept) give the same chips and embeddings, bit for bit.

Bitwise scope: one machine and one set of library versions (the chips are
cut by dlib and OpenCV, and WebP is lossless by construction).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import random_texture
from fiqa_bench.pipeline import chips as chip_stores
from fiqa_bench.pipeline.cache import KeyedStore
from fiqa_bench.cli import main
from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.data import load_dataset
from fiqa_bench.faces.align import AlignmentSettings
from fiqa_bench.faces.templates import get_template
from fiqa_bench.pipeline.paths import CHIP_STORE_ENV, CHIP_STORES, resolve_chip_store
from fiqa_bench.pipeline.embedding import dataset_chips, embed_dataset, ensure_chips
from fiqa_bench.recognition import create_model


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


@pytest.fixture()
def mixed_folder(small_folder: Path) -> Path:
    """small_folder (16 faces, one single-image person, a zero-byte file) plus a face-less image."""
    Image.fromarray(random_texture(5, 160)).save(small_folder / "Aaron_Eckhart" / "noface.png")
    return small_folder


@pytest.mark.parametrize("template", ["dlib150", "arcface112"])
def test_every_store_gives_the_raw_chips_and_embeddings(mixed_folder: Path, tmp_path: Path, template: str):
    dataset = load_dataset(f"folder:{mixed_folder}", tmp_path)
    model = create_model("lbp")
    results = {}
    for kind in CHIP_STORES:
        context = RunContext(tmp_path / kind, workers=1, progress=False, chip_store=kind)
        first = dataset_chips(dataset, template, context)
        again = dataset_chips(dataset, template, context)  # read back (or cut again) from the cache
        np.testing.assert_array_equal(again[0], first[0])
        results[kind] = (first, embed_dataset(dataset, model, context))
    (chips, failed, reasons), emb = results["raw"]
    assert failed.sum() == 1 and chips[failed].max() == 0 and chips[~failed].max() > 0
    for kind in ("webp", "none"):
        (other, other_failed, other_reasons), other_emb = results[kind]
        np.testing.assert_array_equal(other, chips)
        np.testing.assert_array_equal(other_failed, failed)
        assert other_reasons.tolist() == reasons.tolist()
        np.testing.assert_array_equal(other_emb.embeddings, emb.embeddings)


def test_what_each_store_keeps_on_disk(mixed_folder: Path, tmp_path: Path):
    dataset = load_dataset(f"folder:{mixed_folder}", tmp_path)
    sizes = {}
    for kind in CHIP_STORES:
        cache = tmp_path / kind
        dataset_chips(dataset, "dlib150", RunContext(cache, workers=1, progress=False, chip_store=kind))
        sizes[kind] = folder_size(cache / "chips") + folder_size(cache / "chips-webp")
        assert (cache / "faces").is_dir()
    assert sizes["raw"] > 17 * 150 * 150 * 3  # 17 aligned chips and one all-zero one, uncompressed
    assert 0 < sizes["webp"] < sizes["raw"] / 2
    assert sizes["none"] == 0


def test_cutting_again_in_worker_processes(mixed_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Past RECUT_POOL_MIN chips the store cuts them in a worker pool, in order."""
    dataset = load_dataset(f"folder:{mixed_folder}", tmp_path)
    raw, _, _ = dataset_chips(dataset, "dlib150", RunContext(tmp_path / "raw", workers=1, progress=False))
    monkeypatch.setattr(chip_stores, "RECUT_POOL_MIN", 1)
    pooled, _, _ = dataset_chips(dataset, "dlib150",
                                 RunContext(tmp_path / "none", workers=2, progress=False, chip_store="none"))
    np.testing.assert_array_equal(pooled, raw)


def test_retinaface_chips_are_cut_again_from_the_cached_points(small_folder: Path, tmp_path: Path,
                                                               retinaface_weights: Path):
    dataset = load_dataset(f"folder:{small_folder}", tmp_path)
    settings = AlignmentSettings(detector="retinaface")
    raw, _, _ = dataset_chips(dataset, "arcface112", RunContext(tmp_path / "raw", alignment=settings, workers=1,
                                                                progress=False))
    recut, _, _ = dataset_chips(dataset, "arcface112", RunContext(tmp_path / "none", alignment=settings, workers=1,
                                                                  progress=False, chip_store="none"))
    np.testing.assert_array_equal(recut, raw)


def test_an_image_changed_after_alignment_is_refused_by_name(small_folder: Path, tmp_path: Path):
    """With no chips kept, a file that changed between hashing and cutting must not give another image's chip."""
    dataset = load_dataset(f"folder:{small_folder}", tmp_path)
    context = RunContext(tmp_path / "cache", workers=1, progress=False, chip_store="none")
    keys = context.file_keys.of(dataset.paths)
    _, store = ensure_chips(dataset.paths, keys, get_template("dlib150"), context)
    victim = next(p for p in dataset.paths if p.stat().st_size > 0)
    shutil.copy(next(p for p in dataset.paths if p != victim and p.stat().st_size > 0), victim)
    with pytest.raises(ValueError, match=str(victim.name)):
        store.get(keys)
    with pytest.raises(KeyError, match="no image path"):
        store.get(["0" * 64])


def test_the_store_is_chosen_by_option_then_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(CHIP_STORE_ENV, raising=False)
    assert resolve_chip_store() == "raw" and RunContext().chip_store == "raw"
    monkeypatch.setenv(CHIP_STORE_ENV, "webp")
    assert resolve_chip_store() == "webp" and RunContext().chip_store == "webp"
    assert resolve_chip_store("none") == "none"
    with pytest.raises(ValueError, match=r"'zip' \(from --chip-store\); known: raw, webp, none"):
        resolve_chip_store("zip")
    monkeypatch.setenv(CHIP_STORE_ENV, "lossy")
    with pytest.raises(ValueError, match=r"\$FIQA_BENCH_CHIP_STORE"):
        RunContext()
    with pytest.raises(ValueError, match="unknown chip store"):
        RunContext(chip_store="jpeg")


def test_the_command_line_keeps_no_chips_when_asked(small_folder: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]):
    cache = tmp_path / "cache"
    out = tmp_path / "scores.csv"
    assert main(["score", "--method", "sharpness", "--dataset", f"folder:{small_folder}", "--out", str(out),
                 "--cache-dir", str(cache), "--chip-store", "none", "--quiet", "--workers", "1"]) == 0
    assert out.is_file() and not (cache / "chips").exists() and (cache / "faces").is_dir()
    with pytest.raises(SystemExit):
        main(["score", "--method", "sharpness", "--dataset", f"folder:{small_folder}", "--chip-store", "zip"])
    assert "invalid choice: 'zip'" in capsys.readouterr().err


def test_webp_round_trip_and_ragged_rows(tmp_path: Path):
    rng = np.random.default_rng(0)
    chips = rng.integers(0, 256, (3, 96, 96, 3), dtype=np.uint8)
    chips[1] = 0  # a failed image's chip: tiny
    store = chip_stores.WebpChips(get_template("lightqnet96"), tmp_path / "webp")
    store.put(["a", "b"], chips[:2])
    store.put(["c"], chips[2:])  # another shard, another width
    np.testing.assert_array_equal(store.get(["c", "a", "b"]), chips[[2, 0, 1]])
    assert store.missing(["a", "d"]) == ["d"]
    rows = KeyedStore(tmp_path / "webp").get_rows(["c", "b"], ["nbytes"])
    assert [int(r[0]) for r in rows] == [len(chip_stores.encode_webp(chips[2])), len(chip_stores.encode_webp(chips[1]))]
    with pytest.raises(ValueError, match=r"expected \(16, 16, 3\)"):
        chip_stores.decode_webp(chip_stores.encode_webp(chips[0]), 16)
