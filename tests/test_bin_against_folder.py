"""An insightface ``.bin`` built from LFW View 2 against the same pairs read from the folder.

The ``.bin`` is built as the tests' own: the first fold of View 2 (600 pairs, 1,134 distinct images) cut to
``arcface112`` chips by the project's aligner (RetinaFace's five points) and stored as PNG
(:func:`fiqa_bench.pipeline.export.export_bin`).  Both are then compared by the ``pairs`` protocol with
methods that read mobilefacenet-512, whose template is the ``.bin``'s: the chips are the same pixels (PNG is
lossless and the aligned-crop detector's warp is the identity), so every embedding and quality is the same
up to the network's float rounding, which may differ with the batch an image is computed in (the ``.bin``
stores 1,200 images, the folder 1,134).

Tolerance on the AOC: 2e-3.  With the fixed threshold at FMR 1e-2 among 300 impostor pairs, FNMR(0) rests
on about 10 of the 300 genuine pairs; a comparison that float rounding moves across the threshold, or two
qualities it swaps, changes FNMR/FNMR(0) by about 1/10 at the discard points it touches, so one such event
at one of the 96 points moves the AOC by about 1e-3.  The tolerance admits two such events and nothing
systematic (a misaligned chip moves the AOC by 1e-2 or more).  Measured here: identical to the last digit.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fiqa_bench.data import load_dataset
from fiqa_bench.formats.insightface_bin import read_bin
from fiqa_bench.method import MethodSpec
from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.pipeline.embedding import dataset_chips
from fiqa_bench.pipeline.export import export_bin
from fiqa_bench.protocol import PROTOCOLS, Request
from fiqa_bench.protocol.evrc import study
from fiqa_bench.protocol.study import StudyConfig

pytestmark = pytest.mark.slow

MODEL = "mobilefacenet-512"
METHODS = [MethodSpec("feature-norm"), MethodSpec("serfiq")]
CONFIG = StudyConfig(fmrs=(1e-2,), random_seeds=2, n_boot=0, min_false_matches=1)
TOLERANCE = 2e-3


@pytest.fixture(scope="module")
def view2_fold(lfw_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """(the first View 2 fold from the folder, the .bin built from it, the cache both were made in)."""
    work = tmp_path_factory.mktemp("view2-fold")
    lines = (lfw_root / "lfw" / "pairs.txt").read_text().splitlines()
    (work / "fold0.txt").write_text("\n".join(["1 300", *lines[1:601]]) + "\n")
    cache = work / "cache"
    context = RunContext(cache, data_root=lfw_root, progress=False).for_model(MODEL)  # RetinaFace
    folder = load_dataset(f"pairs:{work / 'fold0.txt'}@{lfw_root / 'lfw' / 'images_deepfunneled'}", lfw_root,
                          cache_dir=cache)
    written, left_out = export_bin(folder, folder.evaluation_pairs, context, work / "fold0.bin")
    assert (written, left_out) == (600, 0)
    return folder, load_dataset(f"bin:{work / 'fold0.bin'}", lfw_root, cache_dir=cache), cache


def _aocs(dataset, cache: Path, lfw_root: Path) -> dict:
    """Each method's AOCs on the dataset's pair list, as the ``pairs`` protocol studies it."""
    protocol = PROTOCOLS.get("pairs")
    request = Request(RunContext(cache, data_root=lfw_root, progress=False), cache / "unused", model=MODEL,
                      config=CONFIG)
    run = study(METHODS, protocol=protocol.name, dataset=dataset, context=request.context, quality_models=[MODEL],
                deployed_model=MODEL, config=protocol.study_config(request), pairs=protocol.pairs(dataset, request))
    return {label: s.aoc for label, s in run.result.studies.items()}


def test_the_bin_holds_the_pairs_as_png_chips(view2_fold, lfw_root: Path) -> None:
    folder, bin_set, cache = view2_fold
    pairs = folder.evaluation_pairs
    content = read_bin(cache.parent / "fold0.bin")
    assert content.issame == tuple(p.genuine for p in pairs)
    assert all(image.startswith(b"\x89PNG") for image in content.images)
    assert len(bin_set) == 1200 and len(bin_set.evaluation_pairs) == 600
    assert [p.genuine for p in bin_set.evaluation_pairs] == [p.genuine for p in pairs]
    assert bin_set.aligned_to == "arcface112" and not bin_set.has_identities
    chips, failed, _ = dataset_chips(folder, "arcface112", RunContext(cache, data_root=lfw_root, progress=False)
                                     .for_model(MODEL))
    assert not failed.any()
    for k in (0, 1, 599):  # pair k's two images, stored as images 2k and 2k+1
        for side, index in enumerate((pairs[k].first, pairs[k].second)):
            stored = cv2.cvtColor(cv2.imread(str(bin_set.samples[2 * k + side].path)), cv2.COLOR_BGR2RGB)
            assert np.array_equal(stored, chips[index])  # PNG: the chip's very pixels


def test_what_each_template_gets_from_aligned_crops(view2_fold, lfw_root: Path) -> None:
    _, bin_set, cache = view2_fold
    context = RunContext(cache, data_root=lfw_root, progress=False).for_dataset(bin_set)
    assert context.alignment.detector == "arcface112-aligned"
    assert RunContext(cache, data_root=lfw_root, progress=False, detector_chosen=True).for_dataset(bin_set) \
        .alignment.detector == "hog"  # the user's --detector wins
    subset = type(bin_set)(bin_set.name, bin_set.root, bin_set.samples[:40])
    crops = np.stack([cv2.cvtColor(cv2.imread(str(s.path)), cv2.COLOR_BGR2RGB) for s in subset.samples])
    arcface, failed, _ = dataset_chips(subset, "arcface112", context)
    assert not failed.any()
    assert np.abs(arcface.astype(int) - crops).max() <= 1  # the template's warp onto itself: the crop
    dlib_chips, _, _ = dataset_chips(subset, "dlib150", context)
    outside = (dlib_chips == 0).all(axis=-1).mean(axis=(1, 2))  # dlib's chip reaches past the tight crop
    assert 0.01 < np.median(outside) < 0.2
    lightqnet, _, _ = dataset_chips(subset, "lightqnet96", context)
    assert lightqnet.shape == (40, 96, 96, 3) and lightqnet.std() > 20


def test_the_bin_gives_the_folders_aoc(view2_fold, lfw_root: Path) -> None:
    folder, bin_set, cache = view2_fold
    from_folder = _aocs(folder, cache, lfw_root)
    from_bin = _aocs(bin_set, cache, lfw_root)
    for label, aoc in from_folder.items():
        assert np.isfinite(aoc[("fixed", 1e-2)]), label
        assert from_bin[label][("fixed", 1e-2)] == pytest.approx(aoc[("fixed", 1e-2)], abs=TOLERANCE), label
