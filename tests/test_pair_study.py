"""The pair-list study: only the listed pairs compared, genuine as the list says, on the genuine-comparisons axis."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fiqa_bench.data import Dataset, DatasetError, Pair, Sample
from fiqa_bench.metrics import comparisons_from_pairs, evrc
from fiqa_bench.metrics.summaries import aoc_or_nan
from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.protocol import PROTOCOLS, Request
from fiqa_bench.protocol.evrc import checked_dataset, kept_pairs
from fiqa_bench.protocol.study import PairList, StudyConfig, run_studies
from fiqa_bench.report.tables import studies_markdown

CONFIG = StudyConfig(fmrs=(0.05, 1e-3), axis="comparisons", random_seeds=3, n_boot=0)


def _world(seed: int = 0, people: int = 60, per_person: int = 4, n_impostor: int = 1200):
    """Unit embeddings of people who look alike within a person; every within-person pair is listed, and
    ``n_impostor`` random pairs of different people."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, 16))
    identities = np.repeat(np.arange(people), per_person)
    emb = centres[identities] + 0.9 * rng.normal(size=(len(identities), 16))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    quality = rng.random(len(identities))
    pairs = [(a, b) for a in range(len(identities)) for b in range(a + 1, len(identities))
             if identities[a] == identities[b]]
    while len(pairs) < len(identities) * (per_person - 1) // 2 + n_impostor:
        a, b = rng.integers(0, len(identities), 2)
        if identities[a] != identities[b]:
            pairs.append((a, b))
    indices = np.array(pairs)[rng.permutation(len(pairs))]
    return emb, identities.astype(str), quality, PairList(indices, identities[indices[:, 0]] == identities[indices[:, 1]])


def test_a_pair_study_is_the_evrc_of_the_listed_pairs() -> None:
    emb, ids, quality, pairs = _world()
    study = run_studies({"q": quality}, emb, ids, CONFIG, pairs=pairs).studies["q"]
    direct = evrc(comparisons_from_pairs(emb, pairs.indices, ids), quality, fmrs=CONFIG.fmrs, axis="comparisons")
    for policy in CONFIG.policies:
        assert study.aoc[(policy, 0.05)] == pytest.approx(aoc_or_nan(direct.get(policy, 0.05)), abs=1e-12,
                                                          nan_ok=True)
    assert np.isfinite(study.aoc[("fixed", 0.05)])
    assert study.comparisons["n_genuine"] == int(pairs.genuine.sum())
    assert study.comparisons["n_impostor"] == int((~pairs.genuine).sum())


def test_the_list_decides_genuine_not_the_labels() -> None:
    emb, ids, quality, pairs = _world()
    anonymous = np.array([f"image{i}" for i in range(len(ids))])  # every image its own label, as a .bin's
    by_list = run_studies({"q": quality}, emb, anonymous, CONFIG, pairs=pairs).studies["q"]
    by_label = run_studies({"q": quality}, emb, ids, CONFIG, pairs=pairs).studies["q"]
    assert by_list.aoc == pytest.approx(by_label.aoc, nan_ok=True)
    with pytest.raises(ValueError, match="genuine must be"):
        comparisons_from_pairs(emb, pairs.indices, ids, genuine=pairs.genuine[:-1])


def test_images_stored_once_per_pair_give_the_same_curves() -> None:
    """What a .bin does (each pair's two images stored anew) changes nothing on the genuine-comparisons axis."""
    emb, ids, quality, pairs = _world()
    order = pairs.indices.ravel()  # sample 2i, 2i+1: pair i's copies
    copies = PairList(np.arange(len(order)).reshape(-1, 2), pairs.genuine)
    unique = run_studies({"q": quality}, emb, ids, CONFIG, pairs=pairs).studies["q"]
    stored = run_studies({"q": quality[order]}, emb[order], ids[order], CONFIG, pairs=copies).studies["q"]
    assert stored.aoc == pytest.approx(unique.aoc, abs=1e-12, nan_ok=True)
    images_axis = replace(CONFIG, axis="images")
    assert (run_studies({"q": quality[order]}, emb[order], ids[order], images_axis, pairs=copies).studies["q"].aoc
            != run_studies({"q": quality}, emb, ids, images_axis, pairs=pairs).studies["q"].aoc)


def test_kept_pairs_renumber_and_count_what_failed() -> None:
    pairs = [Pair(0, 1, True), Pair(1, 3, False), Pair(2, 3, True), Pair(0, 3, False)]
    keep = np.array([True, True, False, True])
    kept, dropped = kept_pairs(pairs, keep)
    assert dropped == 1
    assert kept.indices.tolist() == [[0, 1], [1, 2], [0, 2]]
    assert kept.genuine.tolist() == [True, False, False]


def test_the_table_says_how_many_false_matches_a_threshold_rests_on() -> None:
    emb, ids, quality, pairs = _world(n_impostor=2400)
    n_impostor = int((~pairs.genuine).sum())
    result = run_studies({"q": quality}, emb, ids, CONFIG, pairs=pairs)
    text = studies_markdown(result)
    assert f"among the {n_impostor} impostor comparisons before any discard: FMR=0.05: {int(0.05 * n_impostor)}; " \
           f"FMR=0.001: {int(1e-3 * n_impostor)}" in text
    assert "Below the rule's 10 (0.001)" in text
    assert "ISO/IEC 29794-1 pAUC, fixed threshold" in text
    assert all(np.isnan(result.studies["q"].aoc[(p, 1e-3)]) for p in CONFIG.policies)
    loose = run_studies({"q": quality}, emb, ids, replace(CONFIG, min_false_matches=1), pairs=pairs)
    assert np.isfinite(loose.studies["q"].aoc[("fixed", 1e-3)])  # 1e-3 x 2,400 impostors: 2 false matches


def _dataset(pairs: dict[str, tuple[Pair, ...]], pair_list: str | None, has_identities: bool = True) -> Dataset:
    samples = tuple(Sample(Path(f"/x/{i}.jpg"), f"p{i // 2}") for i in range(6))
    return Dataset("toy", Path("/x"), samples, pairs=pairs, pair_list=pair_list, has_identities=has_identities)


def test_the_pairs_protocol_names_what_it_lacks(tmp_path: Path) -> None:
    protocol = PROTOCOLS.get("pairs")
    request = Request(RunContext(cache_dir=tmp_path), tmp_path)
    both = (Pair(0, 1, True), Pair(0, 2, False))
    with pytest.raises(DatasetError, match="identity set: name one of its pair lists with --pair-list \\(its lists: view2\\)"):
        protocol.pairs(_dataset({"view2": both}, None), request)
    with pytest.raises(DatasetError, match="has no pair list 'other'"):
        protocol.pairs(_dataset({"view2": both}, None), replace(request, options={"pair_list": "other"}))
    with pytest.raises(DatasetError, match="1 genuine and 0 impostor"):
        protocol.pairs(_dataset({"bin": both[:1]}, "bin"), request)
    assert protocol.pairs(_dataset({"view2": both}, None), replace(request, options={"pair_list": "view2"})) == both
    config = protocol.study_config(replace(request, options=protocol.parse_options({"min_false_matches": "2"})))
    assert (config.axis, config.min_false_matches) == ("comparisons", 2)
    with pytest.raises(ValueError, match=">= 1"):
        protocol.parse_options({"min_false_matches": "0"})


def test_all_against_all_refuses_a_set_that_does_not_name_its_people() -> None:
    with pytest.raises(DatasetError, match="use --protocol pairs"):
        checked_dataset(_dataset({"bin": (Pair(0, 1, True),)}, "bin", has_identities=False))
