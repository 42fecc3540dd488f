"""CPU dropout masks drawn once per process and replayed: the same masks, without drawing them again.

A training step of a head draws one dropout mask from torch's default generator.  On the CPU,
``F.dropout(x, p, training=True)`` is ``x * empty_like(x).bernoulli_(1 - p).div_(1 - p)``, and what
the ``bernoulli_`` calls of a training draw depends only on the generator's state when the training
starts and on the sequence of mask shapes.  Heads trained from the same seed on the same number of
samples start from the same state (the member's seed, then the same initialisation draws) and take the
same shapes, so they draw the same masks, whatever their labels: the SDD-FIQA ablation's 36 heads
draw five distinct mask sequences per training set.  Drawing is the slow part of dropout (a serial
Mersenne twister, about 13 ns per value on an AMD EPYC: about 0.2 ms of a 1.7 ms step of an SDD-FIQA
head on one thread).

:func:`taped_dropout` swaps every ``nn.Dropout`` of a model for a :class:`_TapedDropout` for the
length of one training.  The first training from a given generator state records its masks (as
bits) and the state after its last draw; a later training in the same process that starts from the
same state, with the same ``p``, reads the recorded masks while its shapes agree and then sets the
generator to where drawing them would have left it.  Exactness rests on two checks:

* no other code may draw from the default generator during the training (the replay would move its
  draws): the state is compared with the expected one at every mask, and a recording that saw
  another draw is dropped, a replay that sees one raises;
* a training that leaves the recorded sequence (another shape, more masks) rewinds the generator to
  its start, draws the masks it has replayed so far and goes on drawing: the state it reaches is the
  one it would have reached.

The tapes are kept in memory, at most :data:`TAPE_BYTES` of bits per process, the oldest dropped.
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
from torch import nn

#: Bits of recorded masks a process keeps (the ablation's 10 distinct sequences take about 64 MB).
TAPE_BYTES = 256 * 2**20


@dataclass
class _Tape:
    """The masks one training drew from ``start``: per call its shape and packed bits; ``end`` once complete."""

    start: bytes
    shapes: list[tuple[int, ...]] = field(default_factory=list)
    bits: list[np.ndarray] = field(default_factory=list)
    end: bytes | None = None

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.bits)


_TAPES: "OrderedDict[tuple[bytes, float], _Tape]" = OrderedDict()


def _state() -> bytes:
    return torch.get_rng_state().numpy().tobytes()


def cpu_dropout_draw(shape: tuple[int, ...], keep: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One mask as ``F.dropout`` draws it on the CPU, from the default generator: 1.0 with probability ``keep``
    (``1 - p``), else 0.0; ``F.dropout`` then divides it by ``keep`` and multiplies the input by it."""
    return torch.empty(shape, dtype=dtype).bernoulli_(keep)


class _TapedDropout(nn.Module):
    """``nn.Dropout`` on float32 CPU input whose masks come from a tape (see the module docstring)."""

    def __init__(self, p: float, tape: _Tape, replaying: bool) -> None:
        super().__init__()
        self.p = p
        self.tape = tape
        self.replaying = replaying
        self.calls = 0  # masks handed out in this training
        self.valid = True  # recording: no other draw seen
        self.expected = tape.start  # the generator state at the next mask, were nothing else to draw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        if x.device.type != "cpu" or x.dtype != torch.float32:
            raise RuntimeError(f"taped dropout reproduces float32 CPU masks only, got {x.dtype} on {x.device}")
        shape = tuple(x.shape)
        if self.replaying:
            if _state() != self.expected:
                raise RuntimeError("another draw from torch's default generator during a taped training: "
                                   "its masks cannot be replayed")
            if self.calls < len(self.tape.shapes) and self.tape.shapes[self.calls] == shape:
                bits = np.unpackbits(self.tape.bits[self.calls], count=int(np.prod(shape)))
                mask = torch.from_numpy(bits.reshape(shape).astype(np.float32))
            else:
                self.leave_tape()
                mask = cpu_dropout_draw(shape, 1.0 - self.p)
        else:
            if self.valid and _state() != self.expected:
                self.valid = False
            mask = cpu_dropout_draw(shape, 1.0 - self.p)
            if self.valid:
                self.tape.shapes.append(shape)
                self.tape.bits.append(np.packbits(mask.numpy().astype(bool).ravel()))
                self.expected = _state()
        self.calls += 1
        return x * mask.div_(1.0 - self.p)

    def leave_tape(self) -> None:
        """Draw from here on: rewind the generator to the start and draw the masks replayed so far."""
        torch.set_rng_state(torch.frombuffer(bytearray(self.tape.start), dtype=torch.uint8))
        for shape in self.tape.shapes[: self.calls]:
            cpu_dropout_draw(shape, 1.0 - self.p)
        self.replaying = False
        self.valid = False  # this training's tail is not recorded

    def finish(self) -> None:
        """Leave the generator where drawing would have; complete or drop a recording."""
        if self.replaying:
            if self.calls == len(self.tape.shapes) and self.tape.end is not None:
                torch.set_rng_state(torch.frombuffer(bytearray(self.tape.end), dtype=torch.uint8))
            else:
                self.leave_tape()
        elif self.valid and self.calls and _state() == self.expected:
            self.tape.end = self.expected


def _keep(key: tuple[bytes, float], tape: _Tape) -> None:
    _TAPES[key] = tape
    total = sum(t.nbytes for t in _TAPES.values())
    while total > TAPE_BYTES and len(_TAPES) > 1:
        _, dropped = _TAPES.popitem(last=False)
        total -= dropped.nbytes


@contextmanager
def taped_dropout(model: nn.Module) -> Iterator[None]:
    """Within the block (one training), the ``nn.Dropout`` of ``model`` replays or records its masks.

    Taping applies to a model with exactly one ``nn.Dropout`` with ``0 < p < 1`` and no other dropout
    module; any other model trains untouched.  The module is put back on exit.
    """
    holders = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
               if isinstance(child, nn.modules.dropout._DropoutNd)]
    if len(holders) != 1 or type(holders[0][2]) is not nn.Dropout or not 0.0 < holders[0][2].p < 1.0:
        yield
        return
    parent, name, original = holders[0]
    key = (_state(), float(original.p))
    tape = _TAPES.get(key)
    replaying = tape is not None and tape.end is not None
    if replaying:
        _TAPES.move_to_end(key)
    else:
        tape = _Tape(start=key[0])
    taped = _TapedDropout(float(original.p), tape, replaying)
    taped.train(original.training)
    setattr(parent, name, taped)
    completed = False
    try:
        yield
        completed = True
    finally:
        taped.finish()  # also after an error: the generator is left where drawing would have left it
        original.train(taped.training)  # the mode the training left the model in (fit_module ends in eval)
        setattr(parent, name, original)
    if completed and not replaying and tape.end is not None:
        _keep(key, tape)
