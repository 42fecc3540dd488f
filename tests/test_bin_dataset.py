"""insightface ``.bin`` files: the safe reader and writer, and the ``bin:PATH`` dataset kind.

No real ``.bin`` is needed: the files are written here, as insightface's tools (Python 3) or Python 2's
``cPickle`` (hand-assembled opcodes) lay them out, from small PNG/JPEG images made with OpenCV.
"""

from __future__ import annotations

import os
import pickle
import re
import struct
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from fiqa_bench.data import DatasetError, load_dataset
from fiqa_bench.data.bin import MARKER
from fiqa_bench.pipeline.stores import bin_images_dir
from fiqa_bench.formats.insightface_bin import BinFile, BinFormatError, read_bin, write_bin
from fiqa_bench.pipeline.hashing import sha256_file


def encoded(seed: int, ext: str = ".png", size: int = 112) -> bytes:
    """A small random image of ``size`` x ``size``, encoded as ``ext``."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    ok, buffer = cv2.imencode(ext, pixels)
    assert ok
    return buffer.tobytes()


#: 3 pairs: genuine, impostor, genuine; PNGs and JPEGs mixed.
IMAGES = [encoded(0), encoded(1, ".jpg"), encoded(2), encoded(3, ".jpg"), encoded(4), encoded(5)]
ISSAME = [True, False, True]


def python2_pickle(images: list[bytes], issame: list[bool]) -> bytes:
    """``cPickle.dump((images, issame), f, 2)`` as Python 2 writes it: images as ``str`` (BINSTRING opcodes)."""
    out = [b"\x80\x02](" + b"".join(b"T" + struct.pack("<I", len(im)) + im for im in images) + b"e"]
    out.append(b"](" + b"".join(b"\x88" if flag else b"\x89" for flag in issame) + b"e")
    return b"".join(out) + b"\x86."


class RunsCommand:
    """An object whose unpickling would run a shell command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):  # noqa: ANN204
        return os.system, (self.command,)


class StartsProcess:
    """An object whose unpickling would start a process."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv

    def __reduce__(self):  # noqa: ANN204
        return subprocess.Popen, (self.argv,)


# --- the format ------------------------------------------------------------------------------------------


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "set.bin"
    write_bin(path, IMAGES, ISSAME)
    assert read_bin(path) == BinFile(tuple(IMAGES), tuple(ISSAME))
    assert [p.name for p in tmp_path.iterdir()] == ["set.bin"]  # no temporary left
    # the insightface layout: a tuple of a list of bytes and a list of bools, as the plain pickle module reads it
    with open(path, "rb") as fh:
        raw = pickle.load(fh, encoding="bytes")
    assert isinstance(raw, tuple) and raw == (IMAGES, ISSAME)


def test_python2_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "lfw.bin"
    path.write_bytes(python2_pickle(IMAGES, ISSAME))
    content = read_bin(path)
    assert content.images == tuple(IMAGES) and content.issame == tuple(ISSAME)
    assert all(type(flag) is bool for flag in content.issame)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_arrays_and_bools_are_accepted(tmp_path: Path, protocol: int) -> None:
    """Images as uint8 arrays of the encoded bytes and flags as np.bool_ (protocol 5 pickles arrays with
    numpy's ``_frombuffer``, protocol 2 in Python 3 writes the array bytes through ``_codecs.encode``)."""
    path = tmp_path / "agedb_30.bin"
    arrays = [np.frombuffer(im, dtype=np.uint8) for im in IMAGES]
    path.write_bytes(pickle.dumps((arrays, [np.bool_(f) for f in ISSAME]), protocol=protocol))
    content = read_bin(path)
    assert content.images == tuple(IMAGES)
    assert content.issame == tuple(ISSAME) and all(type(flag) is bool for flag in content.issame)


def test_one_numpy_bool_array_of_flags_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "cfp_fp.bin"
    path.write_bytes(pickle.dumps((IMAGES, np.array(ISSAME)), protocol=4))
    assert read_bin(path).issame == tuple(ISSAME)


@pytest.mark.parametrize("payload, refused", [
    (lambda target: RunsCommand(f"touch {target}"), f"{os.system.__module__}.system"),
    (lambda target: StartsProcess(["touch", str(target)]), "subprocess.Popen"),
], ids=["os.system", "subprocess.Popen"])
def test_a_pickle_that_would_run_a_command_is_refused_before_it_runs(tmp_path: Path, payload, refused: str) -> None:
    target = tmp_path / "pwned"
    path = tmp_path / "evil.bin"
    # the payload rides inside an otherwise valid file, as the first image
    path.write_bytes(pickle.dumps(([payload(target)] + IMAGES[1:], ISSAME), protocol=4))
    with pytest.raises(BinFormatError, match=rf"{re.escape(str(path))}.*refused.*{refused}"):
        read_bin(path)
    assert not target.exists()


def test_eval_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.bin"
    target = tmp_path / "pwned"
    # builtins.eval("open(target, 'w')"), written with the opcodes a crafted file would use
    code = f"open({str(target)!r}, 'w')".encode()
    path.write_bytes(b"cbuiltins\neval\n(X" + struct.pack("<I", len(code)) + code + b"tR.")
    with pytest.raises(BinFormatError, match=r"builtins\.eval"):
        read_bin(path)
    assert not target.exists()


def test_codecs_encode_is_admitted_only_for_latin1(tmp_path: Path) -> None:
    path = tmp_path / "odd.bin"
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x06\x00\x00\x00base64\x86R.")
    with pytest.raises(BinFormatError, match="latin1"):
        read_bin(path)


def test_truncated_file_is_a_clear_error(tmp_path: Path) -> None:
    whole = tmp_path / "whole.bin"
    write_bin(whole, IMAGES, ISSAME)
    path = tmp_path / "cut.bin"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(BinFormatError, match=rf"{re.escape(str(path))}.*truncated or corrupt"):
        read_bin(path)
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(BinFormatError, match=rf"{re.escape(str(empty))}.*truncated or corrupt"):
        read_bin(empty)


def test_wrong_lengths_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "short.bin"
    path.write_bytes(pickle.dumps((IMAGES[:5], ISSAME), protocol=4))
    with pytest.raises(BinFormatError, match=rf"{re.escape(str(path))}: 5 images for 3 pairs"):
        read_bin(path)
    with pytest.raises(BinFormatError, match="5 images for 3 pairs"):
        write_bin(tmp_path / "never.bin", IMAGES[:5], ISSAME)
    assert not (tmp_path / "never.bin").exists()


@pytest.mark.parametrize("content, message", [
    ([1, 2, 3], "3-item list"),
    ({"images": IMAGES}, "found a dict"),
    ((b"abc", ISSAME), "images are a bytes"),
    ((IMAGES, [True, 1, False]), r"issame_list\[1\] is 1"),
    ((IMAGES[:5] + ["text"], ISSAME), "image 5 is a str"),
])
def test_wrong_structure_is_refused(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "odd.bin"
    path.write_bytes(pickle.dumps(content, protocol=4))
    with pytest.raises(BinFormatError, match=message):
        read_bin(path)


def test_non_image_bytes_are_refused_with_their_index(tmp_path: Path) -> None:
    path = tmp_path / "gif.bin"
    path.write_bytes(pickle.dumps((IMAGES[:3] + [b"GIF89a...."] + IMAGES[4:], ISSAME), protocol=4))
    with pytest.raises(BinFormatError, match=rf"{re.escape(str(path))}: image 3 is not a JPEG or PNG"):
        read_bin(path)


# --- the dataset kind ------------------------------------------------------------------------------------


def test_load_extracts_the_exact_bytes_and_gives_the_pairs(tmp_path: Path) -> None:
    path = tmp_path / "calfw.bin"
    write_bin(path, IMAGES, ISSAME)
    cache = tmp_path / "cache"
    dataset = load_dataset("bin:" + str(path), tmp_path / "no-data-root", cache_dir=cache)
    folder = bin_images_dir(cache, sha256_file(path))
    assert folder == cache / "datasets" / "bin" / sha256_file(path)[:16]
    assert dataset.name == "bin:calfw" and dataset.root == folder
    assert dataset.relative_paths() == ["00000.png", "00001.jpg", "00002.png", "00003.jpg", "00004.png", "00005.png"]
    assert [p.read_bytes() for p in dataset.paths] == IMAGES
    assert (folder / MARKER).is_file()
    assert [(p.first, p.second, p.genuine) for p in dataset.evaluation_pairs] == [
        (0, 1, True), (2, 3, False), (4, 5, True)]
    assert [p.fold for p in dataset.pairs["bin"]] == [0, 3, 6]  # i * 10 // 3
    assert dataset.pair_list == "bin" and not dataset.has_identities
    # pairs 0 and 2 are genuine, so images 0+1 and 4+5 share a pseudo-identity; 2 and 3 have one each
    assert dataset.identities == ["calfw-00000", "calfw-00000", "calfw-00001", "calfw-00002",
                                  "calfw-00003", "calfw-00003"]
    assert dataset.aligned_to == "arcface112" and dataset.notes == ()


def test_ten_folds_over_the_pairs(tmp_path: Path) -> None:
    path = tmp_path / "many.bin"
    write_bin(path, [IMAGES[0]] * 40, [True, False] * 10)
    dataset = load_dataset(f"bin:{path}", tmp_path, cache_dir=tmp_path / "cache")
    assert [p.fold for p in dataset.evaluation_pairs] == [i // 2 for i in range(20)]


def test_images_that_are_not_112_are_not_taken_as_aligned(tmp_path: Path) -> None:
    path = tmp_path / "photos.bin"
    write_bin(path, IMAGES[:2] + [encoded(9, ".jpg", size=250)] + IMAGES[3:], ISSAME)
    dataset = load_dataset(f"bin:{path}", tmp_path, cache_dir=tmp_path / "cache")
    assert dataset.aligned_to is None
    assert len(dataset.notes) == 1 and "image 2, 250x250" in dataset.notes[0]
    assert "detected like photos" in dataset.notes[0]


def test_a_second_load_reuses_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "cplfw.bin"
    write_bin(path, IMAGES, ISSAME)
    cache = tmp_path / "cache"
    first = load_dataset(f"bin:{path}", tmp_path, cache_dir=cache)
    before = {p: p.stat().st_mtime_ns for p in first.root.iterdir()}
    second = load_dataset(f"bin:{path}", tmp_path, cache_dir=cache)
    assert second.paths == first.paths
    assert {p: p.stat().st_mtime_ns for p in second.root.iterdir()} == before


def test_an_interrupted_extraction_is_completed(tmp_path: Path) -> None:
    path = tmp_path / "agedb_30.bin"
    write_bin(path, IMAGES, ISSAME)
    cache = tmp_path / "cache"
    dataset = load_dataset(f"bin:{path}", tmp_path, cache_dir=cache)
    folder = dataset.root
    kept = folder / "00000.png"
    kept_mtime = kept.stat().st_mtime_ns
    (folder / MARKER).unlink()
    (folder / "00003.jpg").unlink()
    (folder / ".00004.png.0123456789abcdef0123456789abcdef.tmp").write_bytes(b"half an image")  # a killed writer
    again = load_dataset(f"bin:{path}", tmp_path, cache_dir=cache)
    assert [p.read_bytes() for p in again.paths] == IMAGES
    assert (folder / MARKER).is_file()
    assert kept.stat().st_mtime_ns == kept_mtime  # what was whole is not rewritten
    assert not list(folder.glob(".*.tmp"))


def test_path_relative_to_the_data_root_or_the_current_directory(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    data_root = tmp_path / "data"
    write_bin(data_root / "bins" / "lfw.bin", IMAGES, ISSAME)
    monkeypatch.chdir(tmp_path)
    assert len(load_dataset("bin:bins/lfw.bin", data_root, cache_dir=tmp_path / "cache")) == 6
    assert len(load_dataset("bin:data/bins/lfw.bin", tmp_path / "elsewhere", cache_dir=tmp_path / "cache")) == 6


def test_a_missing_file_names_the_paths_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetError, match=f"not found: tried {re.escape(str(tmp_path / 'nope.bin'))} and "
                       f"{re.escape(str(tmp_path / 'data' / 'nope.bin'))}"):
        load_dataset("bin:nope.bin", tmp_path / "data", cache_dir=tmp_path / "cache")
    with pytest.raises(DatasetError, match="needs a path"):
        load_dataset("bin", tmp_path, cache_dir=tmp_path / "cache")


def test_an_unsafe_file_is_a_dataset_error_and_nothing_is_extracted(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    path = tmp_path / "evil.bin"
    path.write_bytes(pickle.dumps(([RunsCommand(f"touch {target}")] + IMAGES[1:], ISSAME), protocol=4))
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError, match=r"refused.*\.system"):
        load_dataset(f"bin:{path}", tmp_path, cache_dir=cache)
    assert not target.exists() and not cache.exists()
