"""One path from an image file to its score: each file hashed once per run, one cache layout, one parser of ``needs``.

* :class:`~fiqa_bench.pipeline.hashing.FileKeys`: a run (a context and every
  copy of it) reads each file once, a file replaced during the run is read
  again, a new run reads every file again.
* :mod:`fiqa_bench.pipeline.stores`: the cache's folders, pinned (an existing
  cache is found by these names: they are ours, not computed from images).
* :class:`~fiqa_bench.method.MethodInput`: a card's ``needs`` parsed, refused by name.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fiqa_bench.cli import main
from fiqa_bench.data import load_dataset
from fiqa_bench.faces.align import AlignmentSettings
from fiqa_bench.method import MethodCard, MethodInput, QualityMethod
from fiqa_bench.pipeline import hashing
from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.pipeline.hashing import FileKeys
from fiqa_bench.pipeline.scoring import score_dataset
from fiqa_bench.pipeline.stores import (
    chips_dir,
    faces_dir,
    output_dir,
    scores_dir,
    studies_dir,
    trained_checkpoint,
)
from fiqa_bench.recognition import create_model


def _count_image_hashes(monkeypatch: pytest.MonkeyPatch, root: Path) -> Counter:
    """Every read-and-hash of a file under ``root`` from now on (the function image keys are computed with)."""
    calls: Counter = Counter()
    real = hashing.sha256_file

    def counting(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202 - sha256_file's signature
        if Path(path).is_relative_to(root):
            calls[str(path)] += 1
        return real(path, *args, **kwargs)

    monkeypatch.setattr(hashing, "sha256_file", counting)
    return calls


def test_a_compare_of_two_methods_hashes_each_image_file_once(small_folder: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]):
    """sharpness reads chips, sdd reads dlib-resnet's stage features, the study reads its embeddings: four
    stages ask for the keys of every image, in contexts made for two models, and each file is read once."""
    files = sorted(str(p) for p in small_folder.rglob("*") if p.is_file())
    cache = tmp_path / "cache"
    hashed = _count_image_hashes(monkeypatch, small_folder)
    args = ["compare", "--protocol", "evrc", "--methods", "sharpness,sdd", "--dataset", f"folder:{small_folder}",
            "--cache-dir", str(cache), "--random-seeds", "2", "--n-boot", "2", "--workers", "1", "--quiet",
            "--out", str(tmp_path / "res")]
    assert main(args) == 0, capsys.readouterr().err
    assert sorted(hashed) == files and set(hashed.values()) == {1}, hashed
    # every store it wrote is where the layout says
    digest = AlignmentSettings().digest()
    model = create_model("dlib-resnet").fingerprint()
    assert faces_dir(cache, digest).is_dir() and chips_dir(cache, "raw", "dlib150", digest).is_dir()
    # the backbone output comes with the embedding pass (embedding.shared_outputs), ready for SER-FIQ and PFE
    assert all(output_dir(cache, output, model, digest).is_dir() for output in ("embedding", "stages", "backbone"))
    assert len(list((cache / "scores").iterdir())) == 2 and studies_dir(cache).is_dir()
    assert {p.name for p in cache.iterdir()} == {"faces", "chips", "embeddings", "stages", "backbone", "scores",
                                                 "studies"}

    # A second run (a new context) reads every file again, once, and finds everything else in the cache.
    hashed.clear()
    assert main(args) == 0
    assert sorted(hashed) == files and set(hashed.values()) == {1}


def test_a_run_hashes_a_file_again_only_when_it_was_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    paths = [tmp_path / f"{k}.bin" for k in range(3)]
    for k, path in enumerate(paths):
        path.write_bytes(bytes([k]) * 100)
    hashed = _count_image_hashes(monkeypatch, tmp_path)
    context = RunContext(tmp_path / "cache", progress=False)
    first = context.file_keys.of(paths)
    # every copy of the context shares the run's keys: nothing is read again
    assert context.but(workers=3).file_keys.of(paths + paths[:1]) == first + first[:1]
    assert context.but(alignment=AlignmentSettings(detector="retinaface")).file_keys is context.file_keys
    assert sum(hashed.values()) == 3
    # the copies are equal to a new context all the same (the keys are no setting of the run)
    assert context.but() == RunContext(tmp_path / "cache", progress=False) and hash(context) == hash(context.but())

    # replaced by other bytes of the same size, its mtime copied (cp -p): a new inode, so read again
    stat = paths[0].stat()
    fresh = tmp_path / "fresh.tmp"
    fresh.write_bytes(b"\xff" * 100)
    os.utime(fresh, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(fresh, paths[0])
    again = context.file_keys.of(paths)
    assert again[0] != first[0] and again[1:] == first[1:]
    assert hashed[str(paths[0])] == 2 and sum(hashed.values()) == 4
    # a new run reads every file again
    assert RunContext(tmp_path / "cache", progress=False).file_keys.of(paths) == again
    assert sum(hashed.values()) == 7
    # a file that cannot be read has a key naming its path, the same each time
    missing = tmp_path / "gone.jpg"
    assert FileKeys().of([missing]) == FileKeys().of([missing]) != FileKeys().of([tmp_path / "other.jpg"])


def test_the_cache_layout_is_pinned(tmp_path: Path):
    """The folder names an existing cache is found by (changing one recomputes every row it holds)."""
    root, digest, fingerprint = tmp_path / "cache", "d" * 16, "0123456789abcdef" * 4

    def rel(path: Path) -> str:
        return path.relative_to(root).as_posix()

    assert rel(faces_dir(root, digest)) == f"faces/{digest}"
    assert rel(chips_dir(root, "raw", "dlib150", digest)) == f"chips/dlib150/{digest}"
    assert rel(chips_dir(root, "webp", "arcface112", digest)) == f"chips-webp/arcface112/{digest}"
    assert rel(output_dir(root, "embedding", fingerprint, digest)) == f"embeddings/{fingerprint[:32]}/{digest}"
    assert rel(output_dir(root, "backbone", fingerprint, digest)) == f"backbone/{fingerprint[:32]}/{digest}"
    assert rel(output_dir(root, "stages", fingerprint, digest)) == f"stages/{fingerprint[:32]}/{digest}"
    assert rel(scores_dir(root, fingerprint, digest)) == f"scores/{fingerprint[:32]}/{digest}"
    assert rel(studies_dir(root)) == "studies"
    assert rel(trained_checkpoint(root, "sdd", "iresnet50@/w/backbone.pth", "lfw:devtrain", "0a1b2c3d4e5f6071")) == \
        "trained/sdd-iresnet50-lfw-devtrain-0a1b2c3d4e5f6071.pt"
    assert rel(trained_checkpoint(root, "sdd", "dlib-resnet", "casia")) == "trained/sdd-dlib-resnet-casia.pt"
    with pytest.raises(ValueError, match="'none' has no folder"):
        chips_dir(root, "none", "dlib150", digest)
    with pytest.raises(ValueError, match="unknown model output 'logits'"):
        output_dir(root, "logits", fingerprint, digest)


@pytest.mark.parametrize(("needs", "kind", "argument", "model"), [
    ("chips:dlib150", "chips", "dlib150", None),
    ("embeddings:dlib-resnet", "embeddings", "dlib-resnet", "dlib-resnet"),
    ("backbone:iresnet50@/w/a:b.pth", "backbone", "iresnet50@/w/a:b.pth", "iresnet50@/w/a:b.pth"),
    ("stages:mobilefacenet-512", "stages", "mobilefacenet-512", "mobilefacenet-512"),
    ("landmarks:dlib5", "landmarks", "dlib5", None),
])
def test_needs_is_parsed_into_a_kind_and_an_argument(needs: str, kind: str, argument: str, model: str | None):
    card = MethodCard(name="m", paper="p", higher_is_better=True, needs=needs, trained=False, weights="none")
    assert card.input == MethodInput(kind, argument) and card.input.model == model


@pytest.mark.parametrize("needs", ["pixels:rgb", "chips:", "landmarks:dlib68", "embeddings", ""])
def test_a_card_that_needs_what_no_stage_gives_is_refused_by_name(needs: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch):
    class Odd(QualityMethod):
        card = MethodCard(name="odd", paper="test", higher_is_better=True, needs=needs, trained=False, weights="none")

        def native_score(self, inputs: np.ndarray) -> np.ndarray:
            return np.zeros(len(inputs))

    with pytest.raises(ValueError, match=f"method card 'odd': 'needs' must be .* got {needs!r}"):
        Odd.card.input  # noqa: B018 - the property raises
    (tmp_path / "A").mkdir()
    (tmp_path / "A" / "x.jpg").write_bytes(b"not read")
    hashed = _count_image_hashes(monkeypatch, tmp_path)
    with pytest.raises(ValueError, match="method card 'odd'"):
        score_dataset(Odd(), load_dataset(f"folder:{tmp_path}", tmp_path), RunContext(tmp_path / "c", progress=False))
    assert not hashed  # refused before any work
