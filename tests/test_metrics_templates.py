"""Quality-weighted template descriptors, set-based TAR@FMR and its subject bootstrap."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fiqa_bench.metrics import (
    TemplatePairs,
    bootstrap_set_tar,
    pair_scores,
    quality_weights,
    set_verification,
    split_identity_templates,
    tar_at_fmr,
    template_descriptors,
)
from fiqa_bench.metrics.templates import _WeightedTAR


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


# --------------------------------------------------------------------------- weights


def test_minmax_weights_handle_negative_and_nan():
    w = quality_weights(np.array([-3.0, -1.0, 1.0, np.nan, -np.inf, np.inf]), "minmax")
    assert w.tolist() == [0.0, 0.5, 1.0, 0.0, 0.0, 1.0]
    assert quality_weights(np.array([2.0, 2.0, np.nan])).tolist() == [1.0, 1.0, 0.0]  # constant: all count
    assert quality_weights(np.array([1, 3]), "minmax").tolist() == [0.0, 1.0]  # integer qualities


def test_rank_weights_average_ties_and_ignore_monotone_transforms():
    q = np.array([0.3, -2.0, 0.3, 5.0, np.nan])
    w = quality_weights(q, "rank")
    # ranks among the 4 known values: -2 -> 1, the two 0.3 -> (2+3)/2, 5 -> 4
    assert w.tolist() == pytest.approx([2.5 / 4, 1 / 4, 2.5 / 4, 1.0, 0.0])
    assert np.array_equal(quality_weights(np.exp(q), "rank"), w)
    assert quality_weights(q, "none").tolist() == [1.0] * 5


def test_weights_are_monotone_in_quality():
    q = np.random.default_rng(3).normal(size=200)
    for scheme in ("minmax", "rank"):
        w = quality_weights(q, scheme)
        order = np.argsort(q)
        assert np.all(np.diff(w[order]) >= 0) and w.min() >= 0


@pytest.mark.parametrize("scheme", ["linear", None, "MINMAX"])
def test_unknown_weight_scheme_named(scheme):
    with pytest.raises(ValueError, match=repr(scheme).replace("(", r"\(")):
        quality_weights(np.ones(3), scheme)


def test_weights_reject_bad_shapes_and_types():
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        quality_weights(np.ones((2, 2)))
    with pytest.raises(TypeError, match="dtype"):
        quality_weights(np.array(["a", "b"]))


# --------------------------------------------------------------------------- descriptors


def test_descriptors_by_hand():
    emb = np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0], [-50.0, 7.0]])
    tid = np.array([0, 0, 1, -1])  # the last image is in no template
    r = template_descriptors(emb, tid, np.array([1.0, 3.0, 5.0, 100.0]))
    # template 0: 1 * (0.6, 0.8) + 3 * (1, 0) = (3.6, 0.8); template 1: (0, 1)
    assert np.allclose(r.descriptors, [unit([3.6, 0.8]), [0.0, 1.0]], rtol=0, atol=1e-15)
    assert r.descriptors.dtype == np.float64
    assert r.n_images.tolist() == [2, 1] and r.n_fallback_unweighted == 0
    # the weights' scale is irrelevant, None equals all ones
    assert np.allclose(template_descriptors(emb, tid, np.array([7.0, 21.0, 35.0, 0.0])).descriptors, r.descriptors)
    plain = template_descriptors(emb, tid)
    assert np.array_equal(plain.descriptors, template_descriptors(emb, tid, np.ones(4)).descriptors)
    assert np.allclose(plain.descriptors[0], unit([1.6, 0.8]))
    assert r.to_dict()["n_templates"] == 2
    json.dumps(r.to_dict())


def test_zero_weight_template_falls_back_to_unweighted_mean():
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    tid = np.array([0, 0, 1, 1])
    r = template_descriptors(emb, tid, np.array([0.0, 0.0, 0.0, 2.0]))
    assert r.n_fallback_unweighted == 1 and r.fallback_unweighted.tolist() == [True, False]
    assert np.allclose(r.descriptors[0], unit([1.0, 1.0]))  # unweighted
    assert np.allclose(r.descriptors[1], [1.0, 0.0])  # only the weighted image


def test_nan_quality_drops_the_image_from_its_template():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(6, 8))
    tid = np.array([0, 0, 0, 1, 1, 1])
    q = np.array([0.2, np.nan, 0.9, np.nan, np.nan, np.nan])
    r = template_descriptors(emb, tid, quality_weights(q, "rank"))
    # template 0 = weighted mean of images 0 and 2 only; template 1 has no quality at all -> unweighted
    w = quality_weights(q, "rank")
    assert w[1] == 0 and w[0] > 0
    expected0 = unit(w[0] * unit(emb[0]) + w[2] * unit(emb[2]))
    assert np.allclose(r.descriptors[0], expected0)
    assert np.allclose(r.descriptors[1], unit(sum(unit(e) for e in emb[3:])))
    assert r.n_fallback_unweighted == 1


def test_descriptor_input_errors_name_the_value():
    emb = np.eye(3)
    with pytest.raises(ValueError, match=r"weight 1 is -0\.5"):
        template_descriptors(emb, [0, 0, 1], np.array([1.0, -0.5, 1.0]))
    with pytest.raises(ValueError, match="nan"):
        template_descriptors(emb, [0, 0, 1], np.array([1.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match=r"template_of_image\[2\] is -2"):
        template_descriptors(emb, [0, 0, -2])
    with pytest.raises(ValueError, match="template 1 has no image"):
        template_descriptors(emb, [0, 0, 2])
    with pytest.raises(ValueError, match="holds template 2, but n_templates is 2"):
        template_descriptors(emb, [0, 1, 2], n_templates=2)
    with pytest.raises(ValueError, match="3 entries for 2 embeddings"):
        template_descriptors(emb[:2], [0, 0, 1])
    with pytest.raises(ValueError, match="zero norm"):
        template_descriptors(np.array([[0.0, 0.0], [1.0, 0.0]]), [0, 1])
    with pytest.raises(ValueError, match="template 0 has zero norm"):  # opposite images cancel
        template_descriptors(np.array([[1.0, 0.0], [-1.0, 0.0]]), [0, 0])
    with pytest.raises(TypeError, match="integers"):
        template_descriptors(emb, [0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="non-finite"):
        template_descriptors(np.array([[1.0, np.inf]]), [0])


# --------------------------------------------------------------------------- set verification


def people(n_id: int, per_id: int, dim: int, seed: int, noise: float = 1.0):
    """Embeddings of ``n_id`` people, each a direction plus per-image noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_id, dim))
    ids = np.repeat(np.arange(n_id), per_id)
    return centres[ids] + noise * rng.normal(size=(len(ids), dim)), ids


def test_set_tar_equals_tar_at_fmr_on_the_same_scores():
    emb, ids = people(40, 5, 16, seed=1, noise=2.0)
    st = split_identity_templates(ids, min_images=4, seed=0)
    td = template_descriptors(emb, st.template_of_image)
    p = st.pairs
    fmrs = (1e-1, 1e-2)
    r = set_verification(td.descriptors, p.first, p.second, p.genuine, fmrs, min_false_matches=1)
    d = td.descriptors
    scores = np.array([d[a] @ d[b] for a, b in zip(p.first, p.second)])  # independent cosine
    assert np.allclose(pair_scores(d, p.first, p.second), scores, rtol=0, atol=1e-12)
    for f, res in zip(fmrs, r.results):
        ref = tar_at_fmr(scores[p.genuine], scores[~p.genuine], f, min_false_matches=1)
        assert res.tar == ref.tar and res.threshold.n_false_matches == ref.threshold.n_false_matches
    assert r.n_genuine == 40 and r.n_impostor == 80 * 79 // 2 - 40
    assert 0 < r.tar[1] < 1  # a non-trivial operating point
    json.dumps(r.to_dict(), allow_nan=False)
    assert "FMR=0.01" in r.to_markdown()
    # too few impostors for 1e-4: flagged, not a number
    r4 = set_verification(td.descriptors, p.first, p.second, p.genuine, 1e-4)
    assert r4.results[0].insufficient and np.isnan(r4.tar[0])


def test_good_weighting_raises_tar_and_bad_weighting_lowers_it():
    rng = np.random.default_rng(7)
    n_id, per_id, dim = 60, 8, 32
    centres = rng.normal(size=(n_id, dim))
    ids = np.repeat(np.arange(n_id), per_id)
    good = rng.random(len(ids)) < 0.5  # half the images are clean, half nearly pure noise
    emb = np.where(good[:, None], centres[ids] + 0.5 * rng.normal(size=(len(ids), dim)),
                   0.3 * centres[ids] + 3.0 * rng.normal(size=(len(ids), dim)))
    quality = np.where(good, 1.0, 0.0) + 0.1 * rng.normal(size=len(ids))
    st = split_identity_templates(ids, min_images=4, seed=0)
    p = st.pairs

    def tar(weights):
        d = template_descriptors(emb, st.template_of_image, weights).descriptors
        return set_verification(d, p.first, p.second, p.genuine, 1e-2).tar[0]

    base = tar(quality_weights(quality, "none"))
    weighted = tar(quality_weights(quality, "rank"))
    inverted = tar(quality_weights(-quality, "rank"))
    assert weighted > base + 0.05
    assert inverted < base


def test_pair_errors_name_the_value():
    d = np.eye(3)
    with pytest.raises(ValueError, match=r"pairs_second\[1\] is 3"):
        set_verification(d, [0, 1], [1, 3], [True, False])
    with pytest.raises(ValueError, match="template 2 with itself"):
        set_verification(d, [0, 2], [1, 2], [True, False])
    with pytest.raises(ValueError, match="0 impostor"):
        set_verification(d, [0, 1], [1, 2], [True, True])
    with pytest.raises(ValueError, match="FMR must be in the open interval"):
        set_verification(d, [0, 1], [1, 2], [True, False], 0.0)
    with pytest.raises(ValueError, match="one length"):
        TemplatePairs(np.array([0, 1]), np.array([1]), np.array([True, False]))
    with pytest.raises(ValueError, match="bool"):
        TemplatePairs(np.array([0]), np.array([1]), np.array([2]))


# --------------------------------------------------------------------------- bootstrap


def materialised_tar(scores, first, second, genuine, subjects, counts, fmr, mfm):
    """TAR on an explicitly materialised subject replicate (the definition the bootstrap must equal)."""
    g, i = [], []
    for s, a, b, gen in zip(scores, first, second, genuine):
        ca, cb = counts[subjects[a]], counts[subjects[b]]
        (g if gen else i).extend([s] * (ca if gen else ca * cb))
    if not g or not i:
        return float("nan")
    r = tar_at_fmr(np.array(g), np.array(i), fmr, min_false_matches=mfm)
    return r.tar


def test_weighted_tar_equals_materialised_multiset():
    rng = np.random.default_rng(11)
    for trial in range(30):
        g = rng.integers(0, 6, 15) / 5.0  # heavy ties
        i = rng.integers(0, 6, 40) / 5.0
        wg, wi = rng.integers(0, 4, 15), rng.integers(0, 4, 40)
        if wg.sum() == 0 or wi.sum() == 0:
            continue
        ev = _WeightedTAR(g, i)
        fmrs = (0.05, 0.1, 0.3)
        got = ev(wg[ev.g_order], wi[ev.i_order], fmrs, 1)
        for f, value in zip(fmrs, got):
            ref = tar_at_fmr(np.repeat(g, wg), np.repeat(i, wi), f, min_false_matches=1)
            assert (np.isnan(value) and np.isnan(ref.tar)) or value == ref.tar, (trial, f)


def test_bootstrap_replicates_equal_materialised_subject_resamples():
    emb, ids = people(12, 4, 8, seed=2, noise=1.5)
    st = split_identity_templates(ids, min_images=4, seed=0)
    d = template_descriptors(emb, st.template_of_image).descriptors
    p = st.pairs
    fmr = 0.1
    b = bootstrap_set_tar(d, p.first, p.second, p.genuine, st.template_subjects, fmr, n_boot=5, seed=4,
                          min_false_matches=1)
    scores = pair_scores(d, p.first, p.second)
    subj_code = np.unique(st.template_subjects, return_inverse=True)[1].ravel()
    rng = np.random.default_rng(4)  # the documented draw: S units with replacement, in sorted subject order
    for rep in range(5):
        counts = np.bincount(rng.integers(0, 12, 12), minlength=12)
        ref = materialised_tar(scores, p.first, p.second, p.genuine, subj_code, counts, fmr, 1)
        assert b.replicates[rep, 0] == pytest.approx(ref, abs=0) or (np.isnan(ref) and np.isnan(b.replicates[rep, 0]))
    assert b.resampling == "subjects" and b.n_units == 12


def test_bootstrap_is_deterministic_and_covers_the_estimate():
    emb, ids = people(80, 6, 16, seed=5, noise=1.0)
    st = split_identity_templates(ids, min_images=4, seed=1)
    d = template_descriptors(emb, st.template_of_image).descriptors
    p = st.pairs
    args = (d, p.first, p.second, p.genuine, st.template_subjects, (1e-2, 1e-3))
    a = bootstrap_set_tar(*args, n_boot=60, seed=3)
    b = bootstrap_set_tar(*args, n_boot=60, seed=3)
    c = bootstrap_set_tar(*args, n_boot=60, seed=4)
    assert np.array_equal(a.replicates, b.replicates, equal_nan=True)
    assert not np.array_equal(a.replicates, c.replicates, equal_nan=True)
    est = set_verification(d, p.first, p.second, p.genuine, (1e-2, 1e-3)).tar
    assert np.array_equal(a.estimates, est)
    assert np.all(a.low <= a.estimates) and np.all(a.estimates <= a.high)
    assert np.all(a.low < a.high)  # there is sampling variation
    assert a.n_undefined.tolist() == [0, 0]
    json.dumps(a.to_dict())
    # template-level units (IJB-C without subjects) use the same machinery
    t = bootstrap_set_tar(d, p.first, p.second, p.genuine, None, 1e-2, n_boot=20, seed=3)
    assert t.resampling == "templates" and t.n_units == st.n_templates
    assert t.low[0] <= t.estimates[0] <= t.high[0]


def test_bootstrap_input_errors_name_the_value():
    emb, ids = people(6, 4, 8, seed=0)
    st = split_identity_templates(ids)
    d = template_descriptors(emb, st.template_of_image).descriptors
    p = st.pairs
    with pytest.raises(ValueError, match="n_boot must be an integer >= 1, got 0"):
        bootstrap_set_tar(d, p.first, p.second, p.genuine, st.template_subjects, n_boot=0)
    with pytest.raises(ValueError, match="confidence must be in .*1.5"):
        bootstrap_set_tar(d, p.first, p.second, p.genuine, st.template_subjects, confidence=1.5)
    with pytest.raises(ValueError, match=r"template_subjects must have shape \(12,\)"):
        bootstrap_set_tar(d, p.first, p.second, p.genuine, st.template_subjects[:3])
    wrong = p.genuine.copy()
    wrong[0] = not wrong[0]
    with pytest.raises(ValueError, match="pair 0 .* genuine="):
        bootstrap_set_tar(d, p.first, p.second, wrong, st.template_subjects)


# --------------------------------------------------------------------------- LFW-style templates


def test_split_identity_templates_properties():
    ids = np.array(["b"] * 5 + ["a"] * 4 + ["c"] * 3 + ["d"] * 7)
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(ids))
    ids = ids[perm]
    st = split_identity_templates(ids, min_images=4, seed=0)
    # a, b, d qualify (sorted): templates 0,1 = a, 2,3 = b, 4,5 = d; c unused
    assert st.template_subjects.tolist() == ["a", "a", "b", "b", "d", "d"]
    assert np.all(st.template_of_image[ids == "c"] == -1)
    sizes = np.bincount(st.template_of_image[st.template_of_image >= 0])
    assert sizes.tolist() == [2, 2, 2, 3, 3, 4]
    for t in range(6):
        assert set(ids[st.template_of_image == t]) == {st.template_subjects[t]}
    p = st.pairs
    assert len(p) == 15 and p.n_genuine == 3 and p.n_impostor == 12
    assert np.all(p.first < p.second)
    assert np.array_equal(p.genuine, st.template_subjects[p.first] == st.template_subjects[p.second])
    json.dumps(st.to_dict())


def test_split_is_seeded_and_stable_under_subsetting():
    ids = np.repeat([f"person_{k}" for k in range(8)], 6)
    a = split_identity_templates(ids, seed=0)
    assert np.array_equal(a.template_of_image, split_identity_templates(ids, seed=0).template_of_image)
    assert not np.array_equal(a.template_of_image, split_identity_templates(ids, seed=1).template_of_image)
    # dropping one identity leaves every other identity's split as it was
    keep = ids != "person_3"
    b = split_identity_templates(ids[keep], seed=0)
    for name in ["person_0", "person_5"]:
        in_a = a.template_of_image[ids == name]
        in_b = b.template_of_image[ids[keep] == name]
        assert np.array_equal(in_a - in_a.min(), in_b - in_b.min())
    # pinned split: the same on every machine (sha256 + PCG64)
    first_person = a.template_of_image[:6].tolist()
    assert first_person == GOLDEN_PERSON_0


GOLDEN_PERSON_0 = [1, 0, 1, 1, 0, 0]  # images of person_0 (seed 0): which of templates 0, 1


def test_split_input_errors_name_the_value():
    with pytest.raises(ValueError, match="min_images must be an integer >= 2, got 1"):
        split_identity_templates(["a"] * 4 + ["b"] * 4, min_images=1)
    with pytest.raises(ValueError, match="need at least 2 identities with >= 4 images, got 1"):
        split_identity_templates(["a"] * 4 + ["b"] * 3)
    with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
        split_identity_templates(["a"] * 4 + ["b"] * 4, seed=-1)
