"""The core speed figures as pytest-benchmark cases, to track over time.

    .venv/bin/python -m pytest benchmarks/ --benchmark-enable --benchmark-only --benchmark-autosave
    .venv/bin/python -m pytest benchmarks/ --benchmark-enable --benchmark-only --benchmark-compare

(``--benchmark-enable`` overrides the ``--benchmark-disable`` that the project's pytest settings add so
that the test suite never times anything; ``tests/`` is the suite, ``benchmarks/`` is only run when
named.)  The side-by-side tables with their context (against the official code, onnxruntime, dlib)
stay in the ``bench_*.py`` scripts and BENCHMARKS.md; these cases time the same operations on fixed
inputs so that a change that slows one down shows in ``--benchmark-compare``:

* SDD-FIQA pseudo-labels on 20,000 synthetic 512-d embeddings (m = 24, K = 12);
* the EVRC (3 FMRs x 2 policies, 96 discard points) on 4,000 synthetic images all-vs-all (8 million
  comparisons), and a paired bootstrap of 4 quality measures x 10 identity replicates on the same set;
* one embedding pass of 64 LFW devtest chips through dlib-resnet and mobilefacenet-512;
* every registered method's scoring of 64 LFW devtest chips (what it reads made from the chips, then
  its own score), as in ``bench_methods.py``.

LFW cases read the chips through the user's cache (built on first use, about a minute) and are skipped
when LFW is absent.
"""

from __future__ import annotations

import numpy as np
import pytest

from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.data import Dataset, load_dataset
from fiqa_bench.method import METHODS, create_method
from fiqa_bench.pipeline.paths import default_data_root, resolve_cache_dir

N_CHIPS = 64


@pytest.fixture(scope="module")
def lfw_chips():  # noqa: ANN201 - (dataset, context, failed mask)
    root = default_data_root()
    if not (root / "lfw" / "images_deepfunneled").is_dir():
        pytest.skip(f"LFW not found under {root}")
    devtest = load_dataset("lfw", root, "devtest")
    dataset = Dataset(f"lfw:devtest[:{N_CHIPS}]", devtest.root, devtest.samples[:N_CHIPS])
    return dataset, RunContext(resolve_cache_dir(), root, progress=False)


def test_pseudo_labels_20k(benchmark):  # noqa: ANN001 - the pytest-benchmark fixture
    from fiqa_bench.methods.sdd.labels import sdd_pseudo_labels

    rng = np.random.default_rng(0)
    centres = np.repeat(rng.standard_normal((2000, 512)), 10, axis=0)
    emb = (centres + rng.uniform(0.2, 1.2, (20000, 1)) * rng.standard_normal((20000, 512))).astype(np.float32)
    ids = np.repeat(np.arange(2000), 10)
    labels = benchmark.pedantic(lambda: sdd_pseudo_labels(emb, ids, m=24, repetitions=12, seed=0).labels,
                                rounds=3, iterations=1)
    assert np.isfinite(labels).all()


def test_evrc_4000_all_vs_all(benchmark):  # noqa: ANN001
    from fiqa_bench.metrics import all_vs_all, evrc

    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(400), 10)
    sigma = rng.uniform(0.2, 1.2, 4000)
    emb = np.repeat(rng.standard_normal((400, 128)), 10, axis=0) + sigma[:, None] * rng.standard_normal((4000, 128))
    comps = all_vs_all(emb, ids)
    result = benchmark.pedantic(lambda: evrc(comps, -sigma), rounds=3, iterations=1)
    assert len(result.curves) == 6


@pytest.mark.parametrize("model_name", ["dlib-resnet", "mobilefacenet-512"])
def test_embedding_64_chips(benchmark, lfw_chips, model_name):  # noqa: ANN001
    from fiqa_bench.pipeline.embedding import dataset_chips

    dataset, context = lfw_chips
    context = context.for_model(model_name)
    model = context.model(model_name)
    chips = dataset_chips(dataset, model.card.template, context)[0]
    out = benchmark.pedantic(lambda: model.embed(chips), rounds=5, iterations=1, warmup_rounds=1)
    assert out.shape == (N_CHIPS, model.card.embedding_dim)


def _method_names() -> list[str]:
    return METHODS.names()


@pytest.mark.parametrize("name", _method_names())
def test_scoring_64_chips(benchmark, lfw_chips, name):  # noqa: ANN001
    from fiqa_bench.pipeline.scoring import method_inputs

    dataset, context = lfw_chips
    method = create_method(name)
    reads = getattr(getattr(method, "model", None), "reference", None)
    context = context.for_model(reads) if reads else context
    kind = method.card.needs.partition(":")[0]
    if kind in ("chips", "landmarks"):
        inputs = method_inputs(method.card.needs, dataset, context)[0]
        scores = benchmark.pedantic(lambda: method.score(inputs), rounds=3, iterations=1, warmup_rounds=1)
    else:  # what it reads (backbone, stages, embeddings) made from the chips, then its score: the real cost
        from fiqa_bench.pipeline.embedding import dataset_chips

        model = method.model if hasattr(method, "model") else context.model(method.card.needs.partition(":")[2])
        chips = dataset_chips(dataset, model.card.template, context)[0]
        extract = {"backbone": model.backbone_features, "stages": model.stage_features, "embeddings": model.embed}[kind]
        scores = benchmark.pedantic(lambda: method.score(extract(chips)), rounds=3, iterations=1, warmup_rounds=1)
    assert len(scores) == N_CHIPS


def test_paired_bootstrap_4000_all_vs_all(benchmark):  # noqa: ANN001
    """10 identity replicates of 4 quality measures (3 FMRs x 2 policies each), paired: a study's bootstrap.

    One measure (typicality: low quality = the highest impostor scores) makes the threshold pool grow.
    """
    from fiqa_bench.metrics import all_vs_all
    from fiqa_bench.metrics.bootstrap import bootstrap_replicates

    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(400), 10)
    sigma = rng.uniform(0.2, 1.2, 4000)
    emb = np.repeat(rng.standard_normal((400, 128)), 10, axis=0) + sigma[:, None] * rng.standard_normal((4000, 128))
    comps = all_vs_all(emb, ids)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    typicality = -(unit @ unit.sum(axis=0))
    measures = [-sigma, rng.random(4000), typicality, np.round(-sigma, 1)]
    result = benchmark.pedantic(
        lambda: bootstrap_replicates(comps, measures, fmrs=(1e-2, 1e-3, 1e-4), policies=("fixed", "recomputed"),
                                     n_boot=10, seed=0), rounds=3, iterations=1)
    assert result.replicates.shape == (10, 4, 2, 3)
