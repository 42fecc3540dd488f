"""Sharding over processes with torch.distributed: two CPU processes (torchrun, gloo) against one.

What must hold (see :mod:`fiqa_bench.method.distributed`):

* embeddings: bit for bit those of ``embed_dataset`` in one process, on a
  shared cache and on one cache per process;
* pseudo-labels with ``draws="per-chunk"``: exactly those of one process;
* the regression head ensemble: the one-process model up to the summation
  order of the gradients (:data:`PARAM_TOL`, :data:`PREDICTION_TOL`), and the
  same model on every process.

The two processes are this file run by ``torchrun`` (``python
tests/test_distributed.py --worker OUT``); everything they compute is saved in
``OUT`` and compared here with the same computation in this process.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from fiqa_bench.method.distributed import (
    _BatchShardDropout,
    current,
    gather_rows,
    init_from_env,
    shard_range,
    sharded_dropout,
)
from fiqa_bench.methods.sdd.labels import sdd_pseudo_labels, synthetic_identity_embeddings
from fiqa_bench.method.training import TrainConfig, predict_head, train_head

WORLD = 2
#: Images per embedding chunk in these tests (pipeline.CHUNK is 512): several chunks per process.
TEST_CHUNK = 8
#: Largest parameter and prediction differences allowed between the one- and two-process heads.
#: Measured here: 3e-8 (parameters) and 0 (predictions) after these 20 steps; the bounds leave room
#: for the order in which the per-sample gradients are summed (within each process's slice, then
#: across processes), which is all that differs.  The difference grows with training (module docstring
#: of fiqa_bench.method.distributed: 0.7 of 100 at the most after 30 epochs of five heads).
PARAM_TOL = 1e-5
PREDICTION_TOL = 1e-4
PEOPLE = ["Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder", "George_W_Bush"]


# --- the data both sides compute on ------------------------------------------------------------------


def label_data() -> tuple[np.ndarray, np.ndarray]:
    """Identities of many sizes, singletons and one identity of 4,500 images (gathered in two pieces):
    chunks of both kinds, so both processes get some."""
    emb, ids, _ = synthetic_identity_embeddings(700, 6, dim=16, seed=5)
    rng = np.random.default_rng(6)
    big = rng.standard_normal((4500, 16)).astype(np.float32)
    odd = rng.standard_normal((900, 16)).astype(np.float32)
    odd_ids = 10_000 + rng.integers(0, 300, 900)
    return np.concatenate([emb, big, odd]), np.concatenate([ids, np.full(4500, -1), odd_ids])


def head_data() -> tuple[np.ndarray, np.ndarray, TrainConfig]:
    """257 samples with batches of 64: the last batch holds one sample, so one process gets none."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((257, 12)).astype(np.float32)
    y = 50 + 10 * np.tanh(x[:, 0] - x[:, 1] + 0.1 * rng.standard_normal(257))
    return x, y, TrainConfig(epochs=4, batch_size=64, hidden=16, ensemble=2, seed=3)


def write_tiny_folder(root: Path, lfw_root: Path) -> None:
    """35 LFW images of 5 people, one of them again under another name (byte-identical) and an empty file."""
    images = lfw_root / "lfw" / "images_deepfunneled"
    for person in PEOPLE:
        (root / person).mkdir(parents=True, exist_ok=True)
        for k in range(1, 8):
            shutil.copy(images / person / f"{person}_{k:04d}.jpg", root / person)
    shutil.copy(images / PEOPLE[0] / f"{PEOPLE[0]}_0003.jpg", root / PEOPLE[1] / "copy_of_colin.jpg")
    (root / PEOPLE[2] / "broken.jpg").write_bytes(b"")


def tiny_dataset(root: Path):  # noqa: ANN201 - a Dataset
    """The dataset of :func:`write_tiny_folder`'s files, the copy and the empty file among the others."""
    from fiqa_bench.data.base import Dataset, Sample

    samples = []
    for person in PEOPLE:
        samples += [Sample(root / person / f"{person}_{k:04d}.jpg", person) for k in range(1, 8)]
    samples[9:9] = [Sample(root / PEOPLE[1] / "copy_of_colin.jpg", PEOPLE[1])]
    samples[20:20] = [Sample(root / PEOPLE[2] / "broken.jpg", PEOPLE[2])]
    return Dataset(name="tiny", root=root, samples=tuple(samples))


def cli_train_options(data: Path, cache: Path, out: Path) -> list[str]:
    """``fiqa-bench train`` of SDD-FIQA on the tiny folder, small and quick."""
    return ["--method", "sdd", "--dataset", f"folder:{data}", "--cache-dir", str(cache), "--out", str(out),
            "--workers", "1", "--quiet", "--set", "m=3", "--set", "repetitions=4", "--set", "epochs=2",
            "--set", "ensemble=2"]


def context(cache: Path):  # noqa: ANN201 - a RunContext
    from fiqa_bench.pipeline.context import RunContext

    return RunContext(cache_dir=cache, workers=1, progress=False)


# --- the worker: one of the torchrun processes --------------------------------------------------------


def worker(out: Path, data: Path | None) -> None:
    """Compute everything under the process group; save it as ``out/rank<R>.npz``."""
    from fiqa_bench.pipeline import embedding as pipeline
    from fiqa_bench.method.distributed import barrier, embed_dataset_distributed
    from fiqa_bench.recognition import create_model

    rank, world = init_from_env(cuda=False)
    pipeline.CHUNK = TEST_CHUNK
    saved: dict[str, np.ndarray] = {"threads": np.array(torch.get_num_threads())}
    if data is not None:
        if rank == 0:
            write_tiny_folder(data, Path(os.environ["LFW_ROOT"]))
        barrier()
        dataset = tiny_dataset(data)
        model = create_model("dlib-resnet")
        for name, cache in (("own", out / f"cache-{rank}"), ("shared", out / "cache-shared")):
            result = embed_dataset_distributed(dataset, model, context(cache))
            for field in ("embeddings", "failed", "reasons", "face", "image_sha256"):
                saved[f"{name}_{field}"] = getattr(result, field)
        from fiqa_bench.cli import main

        code = main(["train", *cli_train_options(data, out / "cache-shared", out / "two.pt")])
        saved["cli_code"] = np.array(code)
    emb, ids = label_data()
    res = sdd_pseudo_labels(emb, ids, m=6, repetitions=3, seed=11)
    saved |= {"labels": res.labels, "draws": np.array(res.draws), "notes": np.array(res.notes)}
    x, y, config = head_data()
    head, log = train_head(x, y, config)
    saved |= {f"param:{k}": v.numpy() for k, v in head.state_dict().items()}
    saved |= {"predictions": predict_head(head, x), "log": np.array(json.dumps(log.epochs))}
    np.savez(out / f"rank{rank}.npz", **saved)
    torch.distributed.destroy_process_group()


# --- the tests ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_processes(out: Path, data: Path | None, lfw_root: Path | None) -> list[dict]:
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "LFW_ROOT": str(lfw_root or ""), "OMP_NUM_THREADS": "1"}
    cmd = [str(torchrun), f"--nproc_per_node={WORLD}", "--master_addr=127.0.0.1", f"--master_port={free_port()}",
           __file__, "--worker", str(out), *(["--data", str(data)] if data else [])]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [dict(np.load(out / f"rank{r}.npz")) for r in range(WORLD)]


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], Path | None]:
    """What the two processes computed, and the image folder (None without real LFW)."""
    from fiqa_bench.pipeline.paths import default_data_root

    lfw_root = default_data_root()
    have_lfw = (lfw_root / "lfw" / "images_deepfunneled").is_dir()
    out = tmp_path_factory.mktemp("two-processes")
    data = out / "faces" if have_lfw else None
    return run_two_processes(out, data, lfw_root if have_lfw else None), data


def test_pseudo_labels_equal_one_process_exactly(two: tuple[list[dict], Path | None]) -> None:
    ranks, _ = two
    emb, ids = label_data()
    with threadpool_limits(1):  # as the processes run (OMP_NUM_THREADS=1): BLAS's rounding may follow its threads
        one = sdd_pseudo_labels(emb, ids, m=6, repetitions=3, seed=11, draws="per-chunk")
    for saved in ranks:
        assert str(saved["draws"]) == "per-chunk" and "over 2 processes" in str(saved["notes"])
        assert np.array_equal(saved["labels"], one.labels, equal_nan=True)  # exactly, NaN where unlabelled
    assert np.isfinite(one.labels).sum() > 9_000
    sequential = sdd_pseudo_labels(emb, ids, m=6, repetitions=3, seed=11)
    assert sequential.draws == "sequential" and not np.array_equal(sequential.labels, one.labels, equal_nan=True)


def test_head_training_equals_one_process_to_tolerance(two: tuple[list[dict], Path | None]) -> None:
    ranks, _ = two
    x, y, config = head_data()
    threads = torch.get_num_threads()
    torch.set_num_threads(int(ranks[0]["threads"]))  # the processes' thread count (torchrun: 1)
    try:
        head, log = train_head(x, y, config)
    finally:
        torch.set_num_threads(threads)
    params = head.state_dict()
    keys = sorted(k[len("param:"):] for k in ranks[0] if k.startswith("param:"))
    assert keys == sorted(params)
    for saved in ranks[1:]:  # every process holds the same model, bit for bit
        assert all(np.array_equal(saved[f"param:{k}"], ranks[0][f"param:{k}"]) for k in keys)
    param_diff = max(float(np.abs(ranks[0][f"param:{k}"] - params[k].numpy()).max()) for k in keys)
    prediction_diff = float(np.abs(ranks[0]["predictions"] - predict_head(head, x)).max())
    print(f"max parameter difference {param_diff:.3g}, max prediction difference {prediction_diff:.3g}")
    assert param_diff <= PARAM_TOL and prediction_diff <= PREDICTION_TOL
    logged = json.loads(str(ranks[0]["log"]))
    assert [e["epoch"] for e in logged] == [e["epoch"] for e in log.epochs]
    assert np.allclose([e["loss"] for e in logged], [e["loss"] for e in log.epochs], rtol=1e-5)


def test_embeddings_bitwise_equal_one_process(two: tuple[list[dict], Path | None], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    ranks, data = two
    if data is None:
        pytest.skip("real LFW not found (set FIQA_BENCH_DATA)")
    from fiqa_bench.pipeline import embedding as pipeline
    from fiqa_bench.recognition import create_model

    monkeypatch.setattr(pipeline, "CHUNK", TEST_CHUNK)
    threads = torch.get_num_threads()
    torch.set_num_threads(int(ranks[0]["threads"]))
    try:
        one = pipeline.embed_dataset(tiny_dataset(data), create_model("dlib-resnet"), context(tmp_path / "c"))
    finally:
        torch.set_num_threads(threads)
    assert one.failed.sum() == 1 and len(set(one.image_sha256.tolist())) == len(one.image_sha256) - 1
    for saved in ranks:
        for name in ("own", "shared"):
            assert saved[f"{name}_embeddings"].tobytes() == one.embeddings.tobytes()  # bit for bit, NaN rows too
            for field in ("failed", "reasons", "face", "image_sha256"):
                assert np.array_equal(saved[f"{name}_{field}"], getattr(one, field)), (name, field)


def test_cli_train_under_torchrun(two: tuple[list[dict], Path | None], tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """``torchrun -m fiqa_bench.cli train``: process 0 alone writes; the labels are the per-chunk ones of one
    process (``--set draws=per-chunk``), the heads equal to the tolerance."""
    ranks, data = two
    if data is None:
        pytest.skip("real LFW not found (set FIQA_BENCH_DATA)")
    from fiqa_bench.pipeline import embedding as pipeline
    from fiqa_bench.cli import main

    monkeypatch.setattr(pipeline, "CHUNK", TEST_CHUNK)  # as in the processes: the same batches, bit for bit
    assert all(int(saved["cli_code"]) == 0 for saved in ranks)
    written = data.parent / "two.pt"
    assert sorted(p.name for p in data.parent.glob("two*")) == ["two.json", "two.pt"]
    two_record = json.loads(written.with_suffix(".json").read_text())
    threads = torch.get_num_threads()
    torch.set_num_threads(int(ranks[0]["threads"]))
    try:
        assert main(["train", *cli_train_options(data, tmp_path / "c", tmp_path / "one.pt"),
                     "--set", "draws=per-chunk"]) == 0
    finally:
        torch.set_num_threads(threads)
    one_record = json.loads((tmp_path / "one.json").read_text())
    assert two_record.pop("world_size") == 2 and two_record["labels"]["draws"] == "per-chunk"
    for key in ("labels", "n_labelled", "label_stats", "n_images", "n_failed_images", "head"):
        assert two_record[key] == one_record[key], key
    one = torch.load(tmp_path / "one.pt", weights_only=True)["state_dict"]
    two_state = torch.load(written, weights_only=True)["state_dict"]
    assert max(float((one[k] - two_state[k]).abs().max()) for k in one) <= PARAM_TOL


# --- the helpers in one process ------------------------------------------------------------------------


def test_shard_range_covers_in_aligned_contiguous_pieces() -> None:
    for n in (0, 1, 63, 64, 65, 1000, 4097):
        for world in (1, 2, 3, 8):
            for align in (1, 64, 512):
                cuts = [shard_range(n, r, world, align) for r in range(world)]
                assert cuts[0][0] == 0 and cuts[-1][1] == n
                assert all(a[1] == b[0] for a, b in zip(cuts, cuts[1:]))
                assert all(lo % align == 0 and (hi % align == 0 or hi == n) for lo, hi in cuts)
                sizes = [-(-(hi - lo) // align) for lo, hi in cuts]
                assert max(sizes) - min(sizes) <= 1
    for bad in ((-1, 0, 1, 64), (10, 2, 2, 64), (10, -1, 2, 64), (10, 0, 0, 64), (10, 0, 1, 0), (10.0, 0, 1, 64)):
        with pytest.raises(ValueError, match=r"got"):
            shard_range(*bad)


def test_one_process_is_the_plain_case(monkeypatch: pytest.MonkeyPatch) -> None:
    assert current() == (0, 1)
    rows = np.arange(12, dtype=np.float32).reshape(4, 3)
    assert np.array_equal(gather_rows(rows, 4), rows)
    with pytest.raises(ValueError, match="n_total=5"):
        gather_rows(rows, 5)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        init_from_env()
    for name, value in (("RANK", "2"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "0"), ("MASTER_ADDR", "127.0.0.1"),
                        ("MASTER_PORT", "1")):
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match="RANK=2, WORLD_SIZE=2"):
        init_from_env()


@pytest.mark.parametrize("p", [0.5, 0.3])
def test_global_batch_dropout_reproduces_one_process_masks(p: float) -> None:
    """Two processes' slices of the global-batch mask are exactly nn.Dropout's mask in one process."""
    x = torch.randn(10, 7)
    torch.manual_seed(1)
    whole = nn.Dropout(p).train()(x)
    model = nn.Sequential(nn.Identity(), nn.Dropout(p)).train()
    parts = []
    for lo, hi in ((0, 6), (6, 10)):
        torch.manual_seed(1)
        with sharded_dropout(model) as drops:
            assert isinstance(model[1], _BatchShardDropout)
            drops[0].rows = (10, lo, hi)
            parts.append(model(x[lo:hi]))
    assert type(model[1]) is nn.Dropout  # put back
    assert torch.equal(torch.cat(parts), whole)


if __name__ == "__main__":  # one torchrun process: python tests/test_distributed.py --worker OUT [--data DIR]
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=None)
    arguments = parser.parse_args()
    worker(arguments.worker, arguments.data)
