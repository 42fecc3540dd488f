"""The ``fixed`` EDC equals the reference script ``edc.py`` (dasec/quality-assessment-evaluation).

How ``tests/data/edc_reference.npz`` was produced (once; the reference code
is not part of this repository):

* ``edc.py`` from https://github.com/dasec/quality-assessment-evaluation
  (Apache-2.0) at commit ``de847906254cf7ce82a9b5115944a0717869e253``
  ("Add fiqat repository link", 2024-01-08; file sha256 ``d40efd58...36a0``),
  run unmodified with numpy 2.4 from a scratch directory outside the project.
* Six seeded cases (``numpy.random.default_rng(seed)``, seeds 0-5, listed in
  the file's ``meta``): 40-200 samples in 8-50 identities, qualities with
  1, 3, 5, 8 or 40 integer levels or continuous, genuine pairs (same identity)
  and impostor pairs (different identities) drawn at random, scores rounded
  to a grid of 5-1000 steps (stored as integers; score = integer / grid) so
  that scores and qualities are full of ties.
* Two thresholds per case: ``t_fmr`` at the case's target FMR computed by
  brute force in the generator (k = largest integer with k / I <= FMR,
  s* = (k+1)-th highest impostor score, t = nextafter(s*, +inf)), and
  ``t_tie``, the median genuine score, which lies exactly on tied scores.
* For each threshold, ``edc.compute_edc`` with ``EdcErrorType.FNMR`` on the
  genuine pairs and with ``EdcErrorType.FMR`` on the impostor pairs (sample
  pairs given as dicts, default pair quality ``min``), then
  ``compute_edc_pauc`` and ``compute_edc_area_under_theoretical_best`` at
  discard limits 0.05, 0.2, 0.5 and 1.0.  Inputs and outputs are stored.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fiqa_bench.metrics import (
    comparisons_from_scores,
    edc_pauc,
    edc_steps,
    edc_steps_from_samples,
    edc_theoretical_best_area,
    evrc,
    threshold_at_fmr,
)

#: Every test here compares with the reference script's stored output.
pytestmark = pytest.mark.reference

DATA = np.load(Path(__file__).parent / "data" / "edc_reference.npz", allow_pickle=False)
META = json.loads(str(DATA["meta"]))
CASES = range(len(META["cases"]))
TOL = 1e-12


def case(ci: int) -> dict:
    p = f"c{ci}_"
    out = {k[len(p):]: DATA[k] for k in DATA.files if k.startswith(p)}
    out["gs"] = out["gs_int"] / out["grid"]
    out["is"] = out["is_int"] / out["grid"]
    return out


def reference(c: dict, tname: str, ename: str) -> dict:
    prefix = f"{tname}_{ename}_"
    ref = {k[len(prefix):]: v for k, v in c.items() if k.startswith(prefix)}
    # edc.py appends (1.0, 0.0) "for plotting edge cases" unless the last group starts at 1.
    if ref["discard_fractions"][-1] == 1.0 and len(ref["discard_fractions"]) == len(ref["discard_counts"]) + 1:
        assert ref["error_fractions"][-1] == 0.0
        ref["discard_fractions"] = ref["discard_fractions"][:-1]
        ref["error_fractions"] = ref["error_fractions"][:-1]
    return ref


def test_reference_file_provenance():
    assert META["commit"] == "de847906254cf7ce82a9b5115944a0717869e253"
    assert len(META["cases"]) == 6


@pytest.mark.parametrize("ci", CASES)
@pytest.mark.parametrize("tname", ["t_fmr", "t_tie"])
@pytest.mark.parametrize("ename", ["fnmr", "fmr"])
def test_steps_equal_reference(ci, tname, ename):
    c = case(ci)
    t = float(c[tname])
    scores, pairs = (c["gs"], c["gp"]) if ename == "fnmr" else (c["is"], c["ip"])
    ref = reference(c, tname, ename)
    pq = np.minimum(c["q"][pairs[:, 0]], c["q"][pairs[:, 1]])
    for ours in (
        edc_steps_from_samples(scores, pairs, c["q"], t, error=ename),
        edc_steps(scores, pq, t, error=ename),
    ):
        np.testing.assert_array_equal(ours.discard_counts, ref["discard_counts"])
        np.testing.assert_array_equal(ours.error_counts, ref["error_counts"][ref["discard_counts"]])
        np.testing.assert_allclose(ours.discard_fractions, ref["discard_fractions"], rtol=0, atol=TOL)
        np.testing.assert_allclose(ours.error_fractions, ref["error_fractions"], rtol=0, atol=TOL)
        for limit, pauc, best in zip(META["limits"], ref["pauc"], ref["best"]):
            assert edc_pauc(ours, limit) == pytest.approx(pauc, abs=TOL)
            assert edc_theoretical_best_area(ours.error_fractions[0], limit) == pytest.approx(best, abs=TOL)
            assert edc_pauc(ours, limit, subtract_best=True) == pytest.approx(pauc - best, abs=TOL)


@pytest.mark.parametrize("ci", CASES)
def test_threshold_equals_generator(ci):
    c = case(ci)
    thr = threshold_at_fmr(c["is"], float(c["fmr"]))
    assert not thr.insufficient
    assert thr.threshold == float(c["t_fmr"])
    assert thr.allowed_false_matches == int(c["k"])


@pytest.mark.parametrize("ci", CASES)
def test_fixed_policy_curve_equals_reference(ci):
    """evrc(policy='fixed', axis='comparisons') = the reference FNM-EDC read at the sampled points."""
    c = case(ci)
    comp = comparisons_from_scores(c["gs"], c["gp"], c["is"], c["ip"], identities=c["ids"])
    d = np.arange(101) / 100
    curve = evrc(comp, c["q"], fmrs=float(c["fmr"]), policies="fixed", axis="comparisons", discard_fractions=d).curves[0]
    ref = reference(c, "t_fmr", "fnmr")
    inner = d < 1.0
    at = np.searchsorted(ref["discard_fractions"], d[inner], side="right") - 1
    np.testing.assert_allclose(curve.fnmr[inner], ref["error_fractions"][at], rtol=0, atol=TOL)
    np.testing.assert_allclose(curve.discard_achieved[inner], ref["discard_fractions"][at], rtol=0, atol=TOL)
    np.testing.assert_array_equal(curve.n_genuine[inner], len(c["gs"]) - ref["discard_counts"][at])
    assert np.all(curve.threshold == float(c["t_fmr"]))
    # At 100 % everything is discarded: edc.py plots FNMR 0 there, we say undefined.
    assert curve.discard_achieved[-1] == 1.0 and curve.n_genuine[-1] == 0 and np.isnan(curve.fnmr[-1])
