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
  its own score), as in ``bench_methods.py``;
* the stages issue 22 changed: a study's bootstrap in one process and in two forked ones, the shared
  pass (embedding, stage features, backbone output) of 64 chips, two SDD-FIQA heads trained on LFW
  devtest one after the other and side by side, a head's training with its dropout masks drawn or
  replayed and with torch's Adam or LeanAdam, and BRISQUE in one thread or two.

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


@pytest.mark.parametrize("workers", [1, 2])
def test_study_bootstrap_steps(benchmark, workers):  # noqa: ANN001
    """A study (random band of 2 seeds, bootstrap of 40 replicates in 4 steps, 3 measures) with its bootstrap in
    one process and in two forked ones."""
    from fiqa_bench.protocol.study import StudyConfig, run_studies

    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(400), 10)
    sigma = rng.uniform(0.2, 1.2, 4000)
    emb = np.repeat(rng.standard_normal((400, 128)), 10, axis=0) + sigma[:, None] * rng.standard_normal((4000, 128))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    measures = {"oracle": -sigma, "random": rng.random(4000), "coarse": np.round(-sigma, 1)}
    config = StudyConfig(random_seeds=2, n_boot=40)
    result = benchmark.pedantic(lambda: run_studies(measures, emb, ids, config, workers=workers),
                                rounds=2, iterations=1)
    assert len(result.studies["oracle"].ci) == len(config.fmrs) * len(config.policies)


def test_embedding_stages_and_backbone_in_one_pass(benchmark, lfw_chips):  # noqa: ANN001
    """The shared pass (embedding, stage features, backbone output) of 64 chips through dlib-resnet: about
    the time of ``test_embedding_64_chips[dlib-resnet]``, where separate passes took twice that."""
    from fiqa_bench.pipeline.embedding import dataset_chips

    dataset, context = lfw_chips
    model = context.model("dlib-resnet")
    chips = dataset_chips(dataset, model.card.template, context)[0]
    out = benchmark.pedantic(lambda: model.embed_in_one_pass(chips, ("embedding", "stages", "backbone")),
                             rounds=5, iterations=1, warmup_rounds=1)
    assert [len(a) for a in out.values()] == [N_CHIPS] * 3


@pytest.mark.parametrize("workers", [1, 2])
def test_two_heads_trained(benchmark, lfw_chips, workers):  # noqa: ANN001
    """Two SDD-FIQA heads not shipped (m = 6 and m = 12, K = 1, label seed 7) trained on LFW devtest's cached
    stage features: one after the other in this process (workers = 1), or side by side (workers = 2).  Each
    round removes the two checkpoints from the cache first, and the last round's are removed after it."""
    from fiqa_bench.method import method_class
    from fiqa_bench.method.learned import learned_checkpoint
    from fiqa_bench.method.parallel_training import HeadJob, train_missing

    _, context = lfw_chips
    context = context.but(workers=workers)
    jobs = [HeadJob("sdd", {"m": str(m), "repetitions": "1", "label_seed": "7"}, "lfw:devtest") for m in (6, 12)]
    made = []

    def forget() -> None:  # every round trains anew: its checkpoints leave the cache
        for path in made:
            path.unlink(missing_ok=True)
            path.with_suffix(".json").unlink(missing_ok=True)
        made.clear()

    def train() -> None:
        if workers > 1:
            assert train_missing(jobs, context) == len(jobs)
        for job in jobs:
            made.append(learned_checkpoint(method_class(job.method), job.settings, job.trained_on, context)[0])

    try:
        benchmark.pedantic(train, setup=forget, rounds=2, iterations=1)
    finally:
        forget()


@pytest.mark.parametrize("optimiser", ["torch-adam", "lean-adam"])
@pytest.mark.parametrize("masks", ["drawn", "replayed"])
def test_head_training(benchmark, masks, optimiser, monkeypatch):  # noqa: ANN001
    """One SDD-FIQA-sized head member (736 features, 256 hidden units, batches of 64) trained for 3 epochs
    on 4,000 synthetic rows with one torch thread: every dropout mask drawn (and recorded, as by the first
    training from a start), or replayed from the tape that start recorded
    (:mod:`fiqa_bench.method.dropout_tape`); torch's Adam (foreach) or LeanAdam, which gives the same bits
    (:mod:`fiqa_bench.method.adam`)."""
    import torch

    from fiqa_bench.method import dropout_tape, training
    from fiqa_bench.method.training import TrainConfig, train_head

    if optimiser == "torch-adam":
        monkeypatch.setattr(training, "LeanAdam", lambda params, lr, weight_decay: torch.optim.Adam(
            params, lr=lr, weight_decay=weight_decay, foreach=True))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4000, 736)).astype(np.float32), rng.uniform(0, 100, 4000)
    config = TrainConfig(epochs=3, ensemble=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def start() -> None:
        if masks == "drawn":
            dropout_tape._TAPES.clear()
        torch.manual_seed(0)

    try:
        start()
        train_head(x, y, config)  # records the tape the replayed rounds read
        benchmark.pedantic(lambda: train_head(x, y, config), setup=start, rounds=3, iterations=1)
    finally:
        torch.set_num_threads(threads)
        dropout_tape._TAPES.clear()


@pytest.mark.parametrize("threads", [1, 2])
def test_brisque_64_chips_in_threads(benchmark, lfw_chips, threads, monkeypatch):  # noqa: ANN001
    """BRISQUE on 64 LFW dlib150 chips with one thread or two (:func:`fiqa_bench.pipeline.threads.in_threads`)."""
    from fiqa_bench.pipeline import threads as row_threads
    from fiqa_bench.pipeline.scoring import method_inputs

    monkeypatch.setattr(row_threads, "default_workers", lambda: threads)
    dataset, context = lfw_chips
    method = create_method("brisque")
    chips = method_inputs(method.card.needs, dataset, context)[0]
    scores = benchmark.pedantic(lambda: method.native_score(chips), rounds=3, iterations=1, warmup_rounds=1)
    assert np.isfinite(scores).all()
