"""Acceptance: dlib-resnet embeddings of LFW View 1 test people verify as well as dlib itself.

dlib's own pipeline on these deep-funneled images (HOG detector, 5-point
chip, padding 0.25) reaches 97.9% on pairsDevTest.txt with one threshold; the
suite must reach at least 97.5%.  The session cache starts cold, so this
embeds the 3,708 images from scratch (about a minute on 2 cores).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.data import load_dataset
from fiqa_bench.metrics.verification import best_threshold_accuracy
from fiqa_bench.pipeline.embedding import embed_dataset
from fiqa_bench.recognition import create_model


def test_dlib_resnet_on_lfw_devtest(lfw_root: Path, lfw_devtest_cache: Path):
    dataset = load_dataset("lfw", lfw_root, "devtest")
    result = embed_dataset(dataset, create_model("dlib-resnet"), RunContext(lfw_devtest_cache, progress=False))
    assert result.embeddings.shape == (3708, 128)
    assert not result.failed.any()
    pairs = dataset.pairs["devtest"]
    first = np.array([p.first for p in pairs])
    second = np.array([p.second for p in pairs])
    scores = np.einsum("ij,ij->i", result.embeddings[first], result.embeddings[second])
    accuracy = best_threshold_accuracy(scores, np.array([p.genuine for p in pairs])).accuracy
    assert accuracy >= 0.975, f"verification accuracy {accuracy:.4f} on pairsDevTest"
