"""Taped dropout (fiqa_bench.method.dropout_tape): replayed masks train the same heads, bit for bit.

Every comparison is between two trainings in this process on the same numbers (random float32
features from numpy's generator), so it holds on any CPU: the taped one must give the same tensors
and leave torch's default generator in the same state as drawing every mask.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fiqa_bench.method import dropout_tape
from fiqa_bench.method.training import TrainConfig, check_features, huber_loss, train_ensemble, train_head

N, F = 300, 24


@pytest.fixture(autouse=True)
def empty_tapes(monkeypatch):
    monkeypatch.setattr(dropout_tape, "_TAPES", type(dropout_tape._TAPES)())


def _data(rows: int = N, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, F)).astype(np.float32), [rng.uniform(0, 100, rows) for _ in range(2)]


def _drawn(x: np.ndarray, y: np.ndarray, config: TrainConfig) -> nn.Module:
    """train_head's training with every mask drawn (no tape)."""
    xt, yt = check_features(x), torch.from_numpy(y).float()

    def batches(gen: torch.Generator):
        order = torch.randperm(len(xt), generator=gen)
        return [(xt[i], yt[i]) for i in order.split(config.batch_size)]

    return train_ensemble(xt, config, batches, huber_loss(config), initial_output=float(yt.median()),
                          row_mean=True)[0]


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _train_both(x, y, config) -> tuple[nn.Module, nn.Module, bool]:
    """(drawn, taped, whether both left the generator in the same state), each from seed 7."""
    torch.manual_seed(7)
    drawn = _drawn(x, y, config)
    after_drawn = torch.get_rng_state()
    torch.manual_seed(7)
    taped = train_head(x, y, config)[0]
    return drawn, taped, torch.equal(after_drawn, torch.get_rng_state())


def test_a_replayed_training_equals_drawing_every_mask():
    x, (y1, y2) = _data()
    config = TrainConfig(epochs=3, ensemble=2, hidden=16)
    for y in (y1, y2, y1):  # records, then replays twice
        drawn, taped, same_state = _train_both(x, y, config)
        assert _same(drawn, taped) and same_state
    assert len(dropout_tape._TAPES) == config.ensemble  # one tape per member's starting state
    assert not _same(_train_both(x, y1, config)[1], _train_both(x, y2, config)[1])  # the labels still count


@pytest.mark.parametrize("change", ["shorter", "longer", "fewer rows"])
def test_a_training_that_leaves_the_tape_draws_what_it_would_have(change):
    x, (y, _) = _data()
    config = TrainConfig(epochs=2, ensemble=2, hidden=16)
    _train_both(x, y, config)  # records
    if change == "shorter":
        config = TrainConfig(epochs=1, ensemble=2, hidden=16)
    elif change == "longer":
        config = TrainConfig(epochs=3, ensemble=2, hidden=16)
    else:  # another last batch shape
        x, y = x[:-5], y[:-5]
    drawn, taped, same_state = _train_both(x, y, config)
    assert _same(drawn, taped) and same_state


def _loop(model: nn.Module, steps: int, foreign_draw_at: int | None = None) -> None:
    for step in range(steps):
        model(torch.ones(4, F))
        if step == foreign_draw_at:
            torch.rand(1)


def test_another_draw_drops_a_recording_and_stops_a_replay():
    model = nn.Sequential(nn.Linear(F, F), nn.Dropout(0.5)).train()
    torch.manual_seed(3)
    with dropout_tape.taped_dropout(model):
        _loop(model, 5, foreign_draw_at=2)
    assert not dropout_tape._TAPES  # a recording that saw another draw is not kept
    torch.manual_seed(3)
    with dropout_tape.taped_dropout(model):
        _loop(model, 5)
    assert len(dropout_tape._TAPES) == 1
    torch.manual_seed(3)
    with pytest.raises(RuntimeError, match="another draw"):
        with dropout_tape.taped_dropout(model):
            _loop(model, 5, foreign_draw_at=2)
    assert type(model[1]) is nn.Dropout  # put back, even after an error
    torch.manual_seed(3)
    with dropout_tape.taped_dropout(model):
        model.eval()
    assert not model[1].training  # in the mode the block left the model in


def test_models_without_exactly_one_plain_dropout_are_left_alone():
    for model in (nn.Sequential(nn.Linear(F, F)), nn.Sequential(nn.Dropout(0.5), nn.Dropout(0.5)),
                  nn.Sequential(nn.Dropout2d(0.5)), nn.Sequential(nn.Dropout(0.0))):
        children = list(model.children())
        torch.manual_seed(3)
        with dropout_tape.taped_dropout(model):
            assert list(model.children()) == children
    assert not dropout_tape._TAPES


def test_the_oldest_tapes_go_beyond_the_byte_budget(monkeypatch):
    monkeypatch.setattr(dropout_tape, "TAPE_BYTES", 1)
    model = nn.Sequential(nn.Dropout(0.5)).train()
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        with dropout_tape.taped_dropout(model):
            _loop(model, 2)
    assert len(dropout_tape._TAPES) == 1  # the newest is always kept
