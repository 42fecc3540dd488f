from pathlib import Path

import numpy as np
import pytest

from fiqa_bench.pipeline.cache import KeyedStore


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
    from fiqa_bench.pipeline.cache import StepStore

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
    from fiqa_bench.pipeline.cache import atomic_write

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


def test_two_writers_of_the_same_keys_agree_on_the_first_row(tmp_path: Path):
    """Two processes (two store objects) that both found 'a' missing: the first write wins for both."""
    first, second = KeyedStore(tmp_path / "s"), KeyedStore(tmp_path / "s")
    assert first.missing(["a", "b"]) == second.missing(["a", "b"]) == ["a", "b"]
    first.put(["a", "b"], {"x": np.array([1.0, 2.0])})
    second.put(["b", "a", "c"], {"x": np.array([20.0, 10.0, 30.0])})  # computed differently, e.g. in another batch
    for store in (first, second, KeyedStore(tmp_path / "s")):
        assert store.get(["a", "b", "c"], ["x"])["x"].tolist() == [1.0, 2.0, 30.0]
    shards = sorted((tmp_path / "s").glob("shard-*.npz"))
    assert [s.name[:12] for s in shards] == ["shard-000000", "shard-000001"]  # numbered in write order
    with np.load(shards[1]) as data:
        assert data["keys"].tolist() == ["c"]  # only what was new; each key is stored once
    second.put(["a"], {"x": np.array([99.0])})  # nothing new: no shard
    assert len(list((tmp_path / "s").glob("shard-*.npz"))) == 2


def test_a_killed_writers_temporaries_are_removed_by_the_next_writer(tmp_path: Path):
    store = KeyedStore(tmp_path / "s")
    store.put(["a"], {"x": np.zeros(1)})
    torn = tmp_path / "s" / f".shard-000001-0badf00d.npz.{'0' * 32}.tmp"
    torn.write_bytes(b"PK\x03\x04 half a shard")  # what SIGKILL during np.savez leaves
    assert KeyedStore(tmp_path / "s").missing(["a", "b"]) == ["b"]  # never read as an entry
    store.put(["b"], {"x": np.ones(1)})
    assert not torn.exists()
    assert KeyedStore(tmp_path / "s").get(["a", "b"], ["x"])["x"].tolist() == [0.0, 1.0]


def test_an_unreadable_shard_is_set_aside_and_its_keys_recomputed(tmp_path: Path):
    store = KeyedStore(tmp_path / "s")
    store.put(["a"], {"x": np.zeros(1)})
    damaged = tmp_path / "s" / "shard-000001-deadbeef.npz"
    damaged.write_bytes(b"not a zip file")  # e.g. a machine crash before the data reached the disk
    fresh = KeyedStore(tmp_path / "s")
    with pytest.warns(RuntimeWarning, match="cannot be read"):
        assert fresh.missing(["a", "b"]) == ["b"]
    assert not damaged.exists() and (tmp_path / "s" / ".shard-000001-deadbeef.npz.unreadable").exists()
    fresh.put(["b"], {"x": np.ones(1)})
    assert KeyedStore(tmp_path / "s").get(["b", "a"], ["x"])["x"].tolist() == [1.0, 0.0]


def test_step_store_first_writer_wins_and_clears_temporaries(tmp_path: Path):
    from fiqa_bench.pipeline.cache import StepStore

    one, two = StepStore(tmp_path, "ctx"), StepStore(tmp_path, "ctx")
    left = tmp_path / f".{one._path('s').name}.{'1' * 32}.tmp"
    left.write_text('{"step": "s", "v": ')
    one.put("s", {"v": 1})
    two.put("s", {"v": 2})
    assert StepStore(tmp_path, "ctx").get("s") == {"step": "s", "v": 1}
    assert not left.exists()
    one._path("t").write_text('{"step": "other", "v": 3}')  # a file that is not this step's
    assert one.get("t") is None


def test_remove_temporaries_only_of_the_names_given(tmp_path: Path):
    from fiqa_bench.pipeline.cache import remove_temporaries

    hexes = "a" * 32
    for name in (f".table.md.{hexes}.tmp", f".study.json.{hexes}.tmp", ".notes.tmp", "table.md"):
        (tmp_path / name).write_text("x")
    assert remove_temporaries(tmp_path, ["table.md"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.tmp", f".study.json.{hexes}.tmp", "table.md"]
    assert remove_temporaries(tmp_path) == 1  # every atomic_write temporary, nothing else
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.tmp", "table.md"]
    assert remove_temporaries(tmp_path / "absent") == 0
