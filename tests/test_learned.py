"""The learned contestants (CR-FIQA, FaceQnet v0/v1, PCNet, PFE): their formulas, training, checkpoints.

SDD-FIQA's own tests are in test_sdd.py; the conformance of every method
(shape, NaN + reason, orientation) in test_methods.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fiqa_bench.cli import main
from fiqa_bench.pipeline.hashing import sha256_file
from fiqa_bench.method import METHODS, TRAINERS, create_method

from fiqa_bench.method.learned import LearnedQualityMethod, shipped_checkpoint, weights_dir  # noqa: E402
from fiqa_bench.methods.cr_fiqa import certainty_ratios  # noqa: E402
from fiqa_bench.methods.faceqnet import (  # noqa: E402
    icao_proxy,
    mean_ranks,
    reference_images,
    reference_labels,
)
from fiqa_bench.methods.pcnet import random_mates  # noqa: E402
from fiqa_bench.methods.pfe import (  # noqa: E402
    UncertaintyHead,
    identity_batches,
    identity_groups,
    mutual_likelihood_loss,
)

LEARNED = ["cr-fiqa", "faceqnet-v0", "faceqnet-v1", "pcnet", "pfe"]


def test_every_learned_method_is_registered_with_a_trainer():
    learned = [n for n in METHODS.names() if issubclass(METHODS.get(n), LearnedQualityMethod)]
    assert sorted(learned) == sorted(LEARNED + ["sdd"])
    assert set(TRAINERS.names()) == set(learned)


# --- formulas ------------------------------------------------------------------------------------------

def test_certainty_ratio_by_hand():
    e = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
    ids = np.array(["a", "a", "b", "c"])
    cr = certainty_ratios(e, ids, epsilon=0.0)
    centre_a = np.array([1.6, 0.8]) / np.linalg.norm([1.6, 0.8])
    # image 0: own centre a; other centres b = (0, 1) and c = (-1, 0); nearest is b (cos 0)
    assert cr[0] == pytest.approx(centre_a[0] / (0.0 + 1.0))
    assert cr[1] == pytest.approx((centre_a @ [0.6, 0.8]) / (0.8 + 1.0))
    assert np.isnan(cr[2]) and np.isnan(cr[3])  # single-image identities have no label
    with pytest.raises(ValueError, match="two identities"):
        certainty_ratios(e[:2], ids[:2])


def test_mean_ranks_share_ties():
    assert mean_ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]


def test_icao_proxy_orders_each_criterion_the_right_way():
    better = icao_proxy(np.array([0.1, 0.5]), np.array([9.0, 9.0]), np.array([0.2, 0.2]), np.array([40.0, 40.0]))
    assert better[0] > better[1]  # more frontal
    sharper = icao_proxy(np.array([0.1, 0.1]), np.array([1.0, 9.0]), np.array([0.2, 0.2]), np.array([40.0, 40.0]))
    assert sharper[1] > sharper[0]
    exposed = icao_proxy(np.array([0.1, 0.1]), np.array([9.0, 9.0]), np.array([0.4, 0.1]), np.array([40.0, 40.0]))
    assert exposed[1] > exposed[0]
    larger = icao_proxy(np.array([0.1, 0.1]), np.array([9.0, 9.0]), np.array([0.2, 0.2]), np.array([30.0, 50.0]))
    assert larger[1] > larger[0]
    with_nan = icao_proxy(np.array([np.nan, 0.3]), np.array([9.0, 9.0]), np.array([0.2, 0.2]), np.array([40.0, 40.0]))
    assert with_nan[1] > with_nan[0]


def test_references_and_their_labels():
    ids = np.array(["a", "b", "a", "a", "c"])
    icao = np.array([0.2, 0.9, 0.7, 0.7, 0.1])
    reference = reference_images(ids, icao)
    assert reference.tolist() == [2, 1, 2, 2, 4]  # a tie goes to the first image
    e = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    labels = reference_labels(e, ids, reference)
    assert np.isnan(labels[[1, 2, 4]]).all()  # references (and so single-image identities) are unlabelled
    assert labels[0] == 100 and labels[3] == 0  # min-max over the labelled images


def test_random_mates_pairs_each_image_with_another_of_its_identity():
    ids = np.array(["x", "y", "x", "z", "x", "y"])
    a, b = random_mates(ids, torch.Generator().manual_seed(0))
    assert sorted(a.tolist()) == [0, 1, 2, 4, 5]  # z has one image
    assert (ids[a] == ids[b]).all() and (a != b).all()
    again = random_mates(ids, torch.Generator().manual_seed(0))
    assert np.array_equal(b, again[1])
    seen = {int(random_mates(ids, torch.Generator().manual_seed(s))[1][0]) for s in range(40)}
    assert seen == {2, 4}  # both mates of image 0 are drawn


def test_mutual_likelihood_loss_is_the_formula():
    rng = np.random.default_rng(0)
    mu = torch.from_numpy(rng.normal(size=(4, 3)))
    log_var = torch.from_numpy(rng.normal(size=(4, 3)))
    first, second = torch.tensor([0, 2]), torch.tensor([1, 3])
    expected = 0.0
    for i, j in ((0, 1), (2, 3)):
        var = np.exp(log_var[i].numpy()) + np.exp(log_var[j].numpy())
        expected += 0.5 * (((mu[i] - mu[j]).numpy() ** 2 / var) + np.log(var)).sum()
    assert float(mutual_likelihood_loss(mu, log_var, first, second)) == pytest.approx(expected / 2)


def test_uncertainty_head_outputs_the_harmonic_mean_of_the_variances():
    head = UncertaintyHead(5, 3).eval()
    x = torch.randn(7, 5)
    var = torch.exp(head.log_sigma_sq(x).double())
    assert torch.allclose(head(x), 3 / (1 / var).sum(dim=1))


def test_identity_batches_keep_identities_whole_and_skip_singletons():
    ids = np.array(["a"] * 6 + ["b"] * 2 + ["c"] + ["d"] * 3)
    groups = identity_groups(ids)
    assert [sorted(set(ids[g])) for g in groups] == [["a"], ["b"], ["d"]]
    batches = identity_batches(groups, batch_size=8, generator=torch.Generator().manual_seed(0))
    rows = np.concatenate(batches)
    assert len(rows) == len(set(rows.tolist())) == 4 + 2 + 3  # at most four images of an identity
    assert "c" not in ids[rows]


# --- training and checkpoints ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", LEARNED)
def test_train_then_score_a_folder(name: str, small_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    cache, ckpt = tmp_path / "cache", tmp_path / f"{name}.pt"
    common = ["--cache-dir", str(cache), "--quiet", "--workers", "1"]
    code = main(["train", "--method", name, "--dataset", f"folder:{small_folder}", "--out", str(ckpt),
                 "--set", "epochs=2", *common])
    assert code == 0, capsys.readouterr().err
    record = json.loads(ckpt.with_suffix(".json").read_text())
    assert record["method"] == name and record["sha256"] == sha256_file(ckpt)
    assert record["n_images"] == 18 and record["n_failed_images"] == 1 and record["n_labelled"] >= 8
    assert len(record["train_log"]["epochs"]) == 2 * (record["head"].get("ensemble") or 1)
    out = tmp_path / "scores.csv"
    assert main(["score", "--method", name, "--weights", str(ckpt), "--dataset", f"folder:{small_folder}",
                 "--out", str(out), *common]) == 0
    assert "1 without a quality score" in capsys.readouterr().out
    # a checkpoint of another method is refused by name
    with pytest.raises(ValueError, match=f"holds a {name} model, not a sdd one"):
        create_method("sdd", weights=ckpt)


def test_training_options_are_checked(small_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    code = main(["train", "--method", "cr-fiqa", "--dataset", f"folder:{small_folder}", "--out",
                 str(tmp_path / "x.pt"), "--quiet", "--workers", "1", "--set", "m=3"])
    err = capsys.readouterr().err
    assert code == 2 and "'m'" in err and "epsilon" in err
    code = main(["train", "--method", "pfe", "--dataset", f"folder:{small_folder}", "--out",
                 str(tmp_path / "x.pt"), "--quiet", "--workers", "1", "--set", "mode=full"])
    assert code == 2 and "mode=head" in capsys.readouterr().err


def test_a_pickle_that_needs_code_is_refused(tmp_path: Path):
    bad = tmp_path / "evil.pt"
    torch.save({"format": 2, "meta": {"method": "pfe"}, "state_dict": {}, "thing": Path("x")}, bad)
    with pytest.raises(ValueError, match="not a readable pfe checkpoint"):
        create_method("pfe", weights=bad)


#: Recognition models each learned method ships cross-fitted checkpoints for (faceqnet-v1's labels
#: fuse dlib-resnet with lbp; its mobilefacenet-512 heads are not trained yet).
SHIPPED_MODELS = {name: ("dlib-resnet", "mobilefacenet-512") for name in LEARNED} | {"faceqnet-v1": ("dlib-resnet",)}


@pytest.mark.parametrize("name", LEARNED)
def test_shipped_models_are_what_their_records_say(name: str):
    for model in SHIPPED_MODELS[name]:
        for trained_on in ("lfw:devtrain", "lfw:devtest"):
            path = shipped_checkpoint(name, trained_on, model)
            record = json.loads(path.with_suffix(".json").read_text())
            assert record["sha256"] == sha256_file(path) and record["trained_on"] == trained_on
            assert record["method"] == name and record["model"] == model
            assert record["provenance"]["git"]["dirty"] is False
            assert f"train --method {name} " in record["provenance"]["command"]
            assert path.stat().st_size < 5 * 2**20
            method = create_method(name, trained_on=trained_on, settings={"model": model})
            assert method.card.weights_sha256 == record["sha256"] and method.card.trained
            assert method.card.needs.endswith(f":{model}")
    assert sorted(p.name for p in weights_dir().glob(f"{name}-*.pt")) == sorted(
        f"{name}-{model}-head-lfw-{split}.pt" for model in SHIPPED_MODELS[name] for split in ("devtrain", "devtest"))


# --- a user's recognition model: NAME@CHECKPOINT -------------------------------------------------------

def test_methods_read_a_users_model_by_reference(small_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    """Learned and analytic methods on an IResNet-50 checkpoint the user brings (random weights here)."""
    from fiqa_bench.recognition import create_model, iresnet, split_reference

    torch.manual_seed(0)
    checkpoint = tmp_path / "backbone.pth"
    torch.save(iresnet.build_iresnet("iresnet50").state_dict(), checkpoint)
    reference = f"iresnet50@{checkpoint}"
    assert split_reference(reference) == ("iresnet50", str(checkpoint))
    assert create_model(reference).reference == reference
    with pytest.raises(ValueError, match="names no checkpoint"):
        split_reference("iresnet50@")

    common = ["--cache-dir", str(tmp_path / "cache"), "--quiet", "--workers", "1"]
    ckpt = tmp_path / "pfe-r50.pt"
    assert main(["train", "--method", "pfe", "--model", reference, "--dataset", f"folder:{small_folder}",
                 "--out", str(ckpt), "--set", "epochs=1", *common]) == 0, capsys.readouterr().err
    method = create_method("pfe", weights=ckpt)
    assert method.card.needs == f"backbone:{reference}"
    for args in (["--method", "pfe", "--weights", str(ckpt)], ["--method", "feature-norm", "--set", f"model={reference}"]):
        out = tmp_path / "scores.csv"
        assert main(["score", *args, "--dataset", f"folder:{small_folder}", "--out", str(out), *common]) == 0
        assert "17 images" not in capsys.readouterr().err and len(out.read_text().splitlines()) == 19


def test_a_checkpoint_that_differs_from_its_training_record_is_refused(tmp_path: Path):
    from fiqa_bench.method.learned import shipped_checkpoint

    shipped = shipped_checkpoint("sdd", "lfw:devtrain")
    copy = tmp_path / shipped.name
    copy.write_bytes(shipped.read_bytes())
    copy.with_suffix(".json").write_bytes(shipped.with_suffix(".json").read_bytes())
    create_method("sdd", weights=copy)  # intact: loads
    damaged = bytearray(copy.read_bytes())
    damaged[-1] ^= 1
    copy.write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match="differs from .* in its training record"):
        create_method("sdd", weights=copy)


def test_a_checkpoint_is_fingerprinted_by_its_bytes_not_its_folder(tmp_path: Path):
    """The same checkpoint in another folder (a moved or second checkout) keeps the score-cache key; other bytes
    under the same name do not."""
    shipped = shipped_checkpoint("cr-fiqa", "lfw:devtest")
    moved = tmp_path / "elsewhere" / shipped.name
    moved.parent.mkdir()
    shutil.copy(shipped, moved)
    assert create_method("cr-fiqa", weights=moved).fingerprint() == create_method("cr-fiqa", weights=shipped).fingerprint()
    other = tmp_path / "other" / shipped.name
    other.parent.mkdir()
    shutil.copy(shipped_checkpoint("cr-fiqa", "lfw:devtrain"), other)
    assert create_method("cr-fiqa", weights=other).fingerprint() != create_method("cr-fiqa", weights=shipped).fingerprint()
