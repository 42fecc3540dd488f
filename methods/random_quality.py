"""Random quality: the reference row of every table.

``q(x) = u(seed, x)`` with ``u`` uniform on [0, 1): the first 8 bytes of
``sha256(seed || chip bytes)`` read as an integer and divided by 2^64.  A
quality that knows nothing about the image: any method worth using must
beat it, and the spread of its AOC over seeds (the "random band" of every
study) is the scale on which differences between methods mean something.

The value depends only on the seed and the aligned chip's pixels, not on the
dataset's order or on which other images are scored, so it is cached per
image like every other score.  Identical chips get identical qualities.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from fiqa_bench.faces.templates import get_template
from fiqa_bench.method import METHODS, MethodCard, QualityMethod


def uniform_from_bytes(seed: int, data: bytes) -> float:
    """A number in [0, 1) determined by ``seed`` and ``data`` (sha256, first 64 bits / 2^64)."""
    digest = hashlib.sha256(seed.to_bytes(8, "little", signed=True) + data).digest()
    return int.from_bytes(digest[:8], "little") / 2.0**64


class RandomQuality(QualityMethod):
    """A seeded uniform quality per image (reads the aligned chip only to tell images apart).

    Args:
        seed: which random quality; the random band uses seeds 0, 1, ...
        template: the chip template it reads (default dlib150, cached for dlib-resnet anyway).
    """

    def __init__(self, seed: int = 0, template: str = "dlib150") -> None:
        get_template(template)  # an unknown template is an error now, not at scoring time
        self.seed = int(seed)
        self.card = MethodCard(name="random", paper="none: the reference of every table", higher_is_better=True,
                               needs=f"chips:{template}", trained=False, weights="none")

    def fingerprint_parts(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def native_score(self, chips: np.ndarray) -> np.ndarray:
        return np.array([uniform_from_bytes(self.seed, np.ascontiguousarray(c).tobytes()) for c in chips],
                        dtype=np.float64)


METHODS.add("random", RandomQuality, description="seeded uniform quality per image (the reference row)")
