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
