import copy

import numpy as np
import pytest
import torch

from fiqa_bench.method.training import (
    OFFICIAL_SCHEDULE,
    PAPER_SCHEDULE,
    TrainConfig,
    predict_head,
    train_full,
    train_head,
)


def test_schedules_follow_paper_and_official_code():
    assert [PAPER_SCHEDULE.lr_at(e) for e in (0, 4, 5, 9, 10)] == pytest.approx(
        [1e-3, 1e-3, 5e-5, 5e-5, 2.5e-6])
    assert [OFFICIAL_SCHEDULE.lr_at(e) for e in (0, 4, 5, 9, 10, 14)] == pytest.approx(
        [1e-4, 1e-4, 1e-5, 1e-5, 1e-6, 1e-6])
    assert PAPER_SCHEDULE.weight_decay == OFFICIAL_SCHEDULE.weight_decay == 5e-4


def test_head_learns_a_nonlinear_quality():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2048, 8)).astype(np.float32)
    labels = 50 + 10 * np.tanh(features[:, 0]) - 8 * np.abs(features[:, 1])
    head, log = train_head(features, labels, TrainConfig(epochs=20, hidden=128, seed=1, ensemble=1))
    test = rng.normal(size=(500, 8)).astype(np.float32)
    truth = 50 + 10 * np.tanh(test[:, 0]) - 8 * np.abs(test[:, 1])
    assert np.corrcoef(predict_head(head, test), truth)[0, 1] > 0.95
    assert log.epochs[-1]["loss"] < log.epochs[0]["loss"] / 3
    again, _ = train_head(features, labels, TrainConfig(epochs=20, hidden=128, seed=1, ensemble=1))
    assert np.array_equal(predict_head(again, test), predict_head(head, test))  # deterministic


@pytest.mark.parametrize("foreach", [False, True])
def test_lean_adam_trains_the_heads_torch_adam_trains(monkeypatch: pytest.MonkeyPatch, foreach: bool):
    """Training uses LeanAdam for speed; it must give the bits of torch's Adam, with the default per-tensor
    loop (which trained the shipped heads) and with foreach, over whole trainings with dropout taped."""
    from fiqa_bench.method import training

    rng = np.random.default_rng(3)
    features = rng.normal(size=(600, 16)).astype(np.float32)
    labels = features[:, 0] - 0.5 * features[:, 1] ** 2
    config = TrainConfig(epochs=3, hidden=32, seed=4, ensemble=2)
    fast, _ = train_head(features, labels, config)
    monkeypatch.setattr(training, "LeanAdam", lambda params, lr, weight_decay: torch.optim.Adam(
        params, lr=lr, weight_decay=weight_decay, foreach=foreach))
    reference, _ = train_head(features, labels, config)
    for (name, a), (_, b) in zip(fast.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(a, b), name


def test_lean_adam_steps_are_torch_adams():
    """Step by step against torch.optim.Adam: a learning rate changed between steps, weight decay, a parameter
    without a gradient at some steps, and an SDD-FIQA-sized matrix (vectorised and scalar kernel paths)."""
    from fiqa_bench.method.adam import LeanAdam

    shapes = [(256, 736), (256,), (1, 256), (1,), (3, 5)]
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(shape, generator=gen) for shape in shapes]
    ours = [torch.nn.Parameter(t.clone()) for t in start]
    theirs = [torch.nn.Parameter(t.clone()) for t in start]
    lean = LeanAdam(ours, lr=1e-3, weight_decay=5e-4)
    adam = torch.optim.Adam(theirs, lr=1e-3, weight_decay=5e-4, foreach=True)
    for step in range(12):
        grads = [torch.randn(shape, generator=gen) * 10 ** (step % 3 - 1) for shape in shapes]
        for group, lr in ((lean.param_groups[0], 1e-3 * 0.5 ** (step // 4)), (adam.param_groups[0], None)):
            group["lr"] = lr if lr is not None else lean.param_groups[0]["lr"]
        lean.zero_grad()
        adam.zero_grad()
        for i, g in enumerate(grads):
            if i == 4 and step % 3 == 1:
                continue  # no gradient this step: left alone, its step count waits
            ours[i].grad, theirs[i].grad = g.clone(), g.clone()
        lean.step()
        adam.step()
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert torch.equal(a, b), (step, shapes[i])


def test_paper_head_is_linear_and_robust_to_outlying_labels():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(400, 4)).astype(np.float32)
    labels = 40 + 5 * features[:, 0]
    labels[:20] += 300  # gross label errors: Huber keeps the slope, least squares would not
    config = TrainConfig(hidden=0, epochs=150, batch_size=8, dropout=0.0, ensemble=1)
    head, _ = train_head(features, labels, config)
    assert len(head.members) == 1
    assert len(list(head.members[0].body)) == 1  # dropout only: the paper's single linear unit
    slope = np.polyfit(features[20:, 0], predict_head(head, features[20:]), 1)[0]
    assert slope == pytest.approx(5, rel=0.1)


def test_config_defaults_depend_on_mode():
    head, full = TrainConfig(), TrainConfig(mode="full")
    assert (head.epochs, head.schedule, head.hidden, head.ensemble, head.features) == (30, "head", 256, 5, "stages")
    assert (full.epochs, full.schedule, full.hidden, full.ensemble, full.features) == (15, "paper", 0, 1, "chips")


def test_ensemble_is_the_mean_of_members_seeded_apart():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(300, 5)).astype(np.float32)
    labels = 50 + 10 * features[:, 0] + rng.normal(size=300)
    ensemble, log = train_head(features, labels, TrainConfig(epochs=3, hidden=16, ensemble=3, seed=7))
    assert len(ensemble.members) == 3
    assert sorted({row["member"] for row in log.epochs}) == [0, 1, 2] and len(log.epochs) == 9
    x = torch.from_numpy(features[:10])
    with torch.inference_mode():
        each = torch.stack([m(x) for m in ensemble.members])
        assert torch.allclose(ensemble(x), each.mean(0))
    assert not torch.equal(each[0], each[1])  # different seeds, different members
    # member j is exactly the single head trained from seed + j
    single, _ = train_head(features, labels, TrainConfig(epochs=3, hidden=16, ensemble=1, seed=8))
    with torch.inference_mode():
        assert torch.equal(single(x), each[1])


def test_predict_keeps_nan_rows():
    head, _ = train_head(np.ones((4, 3), np.float32), np.arange(4.0), TrainConfig(epochs=1, hidden=8))
    out = predict_head(head, np.array([[1, 2, 3], [np.nan, 0, 0]], np.float32))
    assert np.isfinite(out[0]) and np.isnan(out[1])


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="not finite"):
        train_head(np.ones((3, 2), np.float32), np.array([1.0, np.nan, 2.0]), TrainConfig(epochs=1))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        train_head(np.ones((3, 2), np.float32), np.ones(2), TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="NaN"):
        train_head(np.full((3, 2), np.nan, np.float32), np.ones(3), TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="mode"):
        TrainConfig(mode="partial")
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="cosine")
    with pytest.raises(ValueError, match="ensemble"):
        TrainConfig(mode="full", ensemble=3)
    with pytest.raises(ValueError, match="ensemble"):
        TrainConfig(ensemble=0)
    with pytest.raises(ValueError, match="features"):
        TrainConfig(features="pixels")


def test_full_mode_fine_tunes_the_backbone_on_cpu():
    from fiqa_bench.recognition import create_model

    network = copy.deepcopy(create_model("dlib-resnet").network)
    before = next(network.backbone.parameters()).detach().clone()
    chips = np.random.default_rng(0).integers(0, 256, (6, 150, 150, 3), dtype=np.uint8)
    model, log = train_full(network, chips, np.linspace(0, 100, 6),
                            TrainConfig(mode="full", epochs=1, batch_size=3))
    assert len(log.epochs) == 1 and np.isfinite(log.epochs[0]["loss"])
    assert not torch.equal(next(network.backbone.parameters()), before)
    with torch.inference_mode():
        out = model(network.preprocess(torch.from_numpy(chips)))
    assert out.shape == (6,)
