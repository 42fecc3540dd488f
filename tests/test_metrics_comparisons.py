"""Comparison generation: all-vs-all and pair lists against a double loop."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fiqa_bench.metrics import all_vs_all, comparisons_from_pairs, comparisons_from_scores


def tied_embeddings(seed: int, n: int = 23, dim: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Small-integer embeddings (many identical cosines) and identities of 1-5 samples."""
    rng = np.random.default_rng(seed)
    e = rng.integers(-1, 2, (n, dim)).astype(float)
    e[np.all(e == 0, axis=1), 0] = 1.0
    ids = rng.integers(0, n // 3, n).astype(str)
    return e, ids


def brute(e: np.ndarray, ids: np.ndarray) -> tuple[dict, dict]:
    u = e / np.linalg.norm(e, axis=1, keepdims=True)
    gen, imp = {}, {}
    for a in range(len(e)):
        for b in range(a + 1, len(e)):
            (gen if ids[a] == ids[b] else imp)[(a, b)] = float(u[a] @ u[b])
    return gen, imp


def as_dict(scores: np.ndarray, pairs: np.ndarray) -> dict:
    out = {}
    for s, (a, b) in zip(scores.tolist(), pairs.tolist()):
        key = (min(a, b), max(a, b))
        assert key not in out, f"pair {key} twice"
        out[key] = s
    return out


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("chunk_rows", [1, 4, 1000])
def test_all_vs_all_equals_double_loop(seed, chunk_rows):
    e, ids = tied_embeddings(seed)
    gen, imp = brute(e, ids)
    c = all_vs_all(e, ids, chunk_rows=chunk_rows, dtype=np.float64)
    assert (c.n_genuine, c.n_impostor) == (len(gen), len(imp))
    assert c.n_genuine + c.n_impostor == len(e) * (len(e) - 1) // 2
    for got, want in ((as_dict(c.genuine_scores, c.genuine_pairs), gen), (as_dict(c.impostor_scores, c.impostor_pairs), imp)):
        assert got.keys() == want.keys()
        np.testing.assert_allclose([got[k] for k in want], list(want.values()), rtol=0, atol=1e-12)
    assert c.sampling.method == "all" and c.sampling.n_kept == c.sampling.n_available == len(imp)
    c32 = all_vs_all(e, ids, chunk_rows=chunk_rows)
    assert c32.impostor_scores.dtype == np.float32
    np.testing.assert_allclose(c32.impostor_scores, c.impostor_scores, atol=1e-6)
    assert c32.impostor_pairs.dtype == np.uint16
    assert not c32.impostor_scores.flags.writeable
    json.dumps(c.to_dict())


def test_chunking_changes_nothing_but_blas_rounding():
    """Pairs are identical for any chunk size; float32 scores agree to BLAS rounding and are
    bit-identical when the same chunk size is used again."""
    rng = np.random.default_rng(0)
    e, ids = rng.normal(size=(200, 16)), rng.integers(0, 40, 200)
    ref = all_vs_all(e, ids, chunk_rows=7)
    again = all_vs_all(e, ids, chunk_rows=7)
    np.testing.assert_array_equal(again.impostor_scores, ref.impostor_scores)
    for chunk_rows in (1, 64, 500):
        c = all_vs_all(e, ids, chunk_rows=chunk_rows)
        np.testing.assert_array_equal(c.impostor_pairs, ref.impostor_pairs)
        np.testing.assert_array_equal(c.genuine_pairs, ref.genuine_pairs)
        np.testing.assert_allclose(c.impostor_scores, ref.impostor_scores, rtol=0, atol=5e-7)
        np.testing.assert_allclose(c.genuine_scores, ref.genuine_scores, rtol=0, atol=5e-7)


def test_impostor_subsampling_is_seeded_uniform_subset_and_recorded():
    rng = np.random.default_rng(1)
    e, ids = rng.normal(size=(120, 8)), rng.integers(0, 30, 120)
    # full and a cut the products into the same blocks: BLAS picks its kernel by block shape and CPU, and the
    # scores are compared bit for bit below
    full = all_vs_all(e, ids, chunk_rows=10, dtype=np.float64)
    a = all_vs_all(e, ids, max_impostors=500, seed=3, chunk_rows=10, dtype=np.float64)
    b = all_vs_all(e, ids, max_impostors=500, seed=3, chunk_rows=77, dtype=np.float64)
    other = all_vs_all(e, ids, max_impostors=500, seed=4, dtype=np.float64)
    assert a.n_impostor == 500 and a.n_genuine == full.n_genuine
    assert (a.sampling.method, a.sampling.n_available, a.sampling.n_kept, a.sampling.seed) == ("uniform", full.n_impostor, 500, 3)
    np.testing.assert_array_equal(a.impostor_pairs, b.impostor_pairs)  # independent of chunking
    assert not np.array_equal(a.impostor_pairs, other.impostor_pairs)
    whole = as_dict(full.impostor_scores, full.impostor_pairs)
    sub = as_dict(a.impostor_scores, a.impostor_pairs)
    assert all(whole[k] == v for k, v in sub.items())
    # asking for more than exist keeps all
    assert all_vs_all(e, ids, max_impostors=10**9).sampling.method == "all"
    # subsampling a complete set gives exactly what all_vs_all computes with max_impostors
    same = full.subsample_impostors(500, seed=3)
    assert same.sampling == a.sampling and same.n_genuine == full.n_genuine
    np.testing.assert_array_equal(same.impostor_pairs, a.impostor_pairs)
    np.testing.assert_array_equal(same.impostor_scores, a.impostor_scores)
    assert full.subsample_impostors(10**9) is full
    with pytest.raises(ValueError, match="complete all-vs-all"):
        a.subsample_impostors(100)
    with pytest.raises(ValueError, match="max_impostors"):
        full.subsample_impostors(0)


def test_pair_list():
    e, ids = tied_embeddings(0)
    gen, imp = brute(e, ids)
    keys = list(gen)[:5] + list(imp)[:7]
    pairs = np.array([(b, a) for a, b in keys])  # reversed order is fine
    c = comparisons_from_pairs(e, pairs, ids)
    assert (c.n_genuine, c.n_impostor, c.source) == (5, 7, "pair-list")
    got = {**as_dict(c.genuine_scores, c.genuine_pairs), **as_dict(c.impostor_scores, c.impostor_pairs)}
    for k in keys:
        assert got[k] == pytest.approx((gen | imp)[k], abs=1e-12)


def test_bad_inputs():
    e, ids = tied_embeddings(0)
    with pytest.raises(ValueError, match="one label per sample"):
        all_vs_all(e, ids[:-1])
    bad = e.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match=r"rows \[3\]"):
        all_vs_all(bad, ids)
    bad[3] = 0
    with pytest.raises(ValueError, match=r"rows \[3\] are zero"):
        all_vs_all(bad, ids)
    with pytest.raises(ValueError, match="max_impostors"):
        all_vs_all(e, ids, max_impostors=0)
    with pytest.raises(ValueError, match="chunk_rows"):
        all_vs_all(e, ids, chunk_rows=0)
    with pytest.raises(ValueError, match="itself"):
        comparisons_from_pairs(e, np.array([[1, 1]]), ids)
    with pytest.raises(ValueError, match="outside"):
        comparisons_from_pairs(e, np.array([[1, len(e)]]), ids)
    with pytest.raises(ValueError, match="shape"):
        comparisons_from_pairs(e, np.array([1, 2]), ids)
    with pytest.raises(ValueError, match="different identities"):
        comparisons_from_scores([0.5], [[0, 1]], [0.1], [[0, 2]], identities=["a", "b", "c"])
    with pytest.raises(ValueError, match="the same identities"):
        comparisons_from_scores([0.5], [[0, 1]], [0.1], [[0, 1]], identities=["a", "a", "c"])
    with pytest.raises(ValueError, match="2 rows"):
        comparisons_from_scores([0.5], [[0, 1], [0, 1]], [0.1], [[0, 2]], n_samples=3)
    with pytest.raises(ValueError, match="non-finite"):
        comparisons_from_scores([np.nan], [[0, 1]], [0.1], [[0, 2]], n_samples=3)
