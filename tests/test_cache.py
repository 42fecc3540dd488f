from pathlib import Path

import numpy as np
import pytest

from fiqa_bench.cache import KeyedStore


def test_put_get_across_shards_and_reopen(tmp_path: Path):
    store = KeyedStore(tmp_path / "s")
    assert store.missing(["a", "b", "a"]) == ["a", "b"]
    store.put(["a", "b"], {"x": np.array([[1, 2], [3, 4]]), "r": np.array(["", "short"])})
    store.put(["c"], {"x": np.array([[5, 6]]), "r": np.array(["a much longer reason"])})
    again = KeyedStore(tmp_path / "s")
    assert len(again) == 3 and again.missing(["a", "d", "c"]) == ["d"]
    got = again.get(["c", "a", "c"], ["x", "r"])
    assert got["x"].tolist() == [[5, 6], [1, 2], [5, 6]]
    assert got["r"].tolist() == ["a much longer reason", "", "a much longer reason"]


def test_errors_and_no_partial_files(tmp_path: Path):
    store = KeyedStore(tmp_path)
    with pytest.raises(ValueError, match="3 keys"):
        store.put(["a", "b", "c"], {"x": np.zeros(2)})
    with pytest.raises(ValueError, match="reserved"):
        store.put(["a"], {"keys": np.zeros(1)})
    store.put(["a"], {"x": np.zeros(1)})
    with pytest.raises(KeyError, match="'zz'"):
        store.get(["a", "zz"], ["x"])
    assert not list(tmp_path.glob("*.tmp"))


def test_step_store_keeps_finished_steps_per_context(tmp_path: Path):
    from fiqa_bench.cache import StepStore

    store = StepStore(tmp_path / "steps", "context-a")
    assert store.get("seed-0") is None
    store.put("seed-0", {"aoc": [0.5, float("nan")]})
    again = StepStore(tmp_path / "steps", "context-a").get("seed-0")
    assert again["aoc"][0] == 0.5 and np.isnan(again["aoc"][1])
    assert StepStore(tmp_path / "steps", "context-b").get("seed-0") is None  # other inputs, other results
    assert not list((tmp_path / "steps").glob(".*.tmp"))  # written atomically, nothing left over
    store._path("seed-1").write_text('{"aoc": [0.')  # a torn file reads as not finished
    assert store.get("seed-1") is None
    nowhere = StepStore(None, "context-a")
    nowhere.put("seed-0", {"aoc": [1.0]})
    assert nowhere.get("seed-0") is None


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path: Path):
    from fiqa_bench.cache import atomic_write

    target = tmp_path / "sub" / "out.csv"
    with atomic_write(target) as fh:
        fh.write("a,b\n")
    assert target.read_text() == "a,b\n"
    with pytest.raises(RuntimeError):
        with atomic_write(target) as fh:
            fh.write("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "a,b\n"  # the old file is intact
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.csv"]  # no temporary left
