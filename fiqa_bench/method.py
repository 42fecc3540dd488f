"""The contract every FIQA method follows, and the registries of plugins.

A method lives in one file of ``methods/`` (installed as
``fiqa_bench.methods``) and registers a factory in :data:`METHODS`;
protocols live in ``protocols/`` and register in :data:`PROTOCOLS`.  The
core imports every module of those two packages on first use
(:func:`load_plugins`), so adding a method is adding a file.

A method is described by a frozen :class:`MethodCard` and scores images with
:meth:`QualityMethod.score`, which always returns float64 qualities where
**higher is better for recognition**; the method's native value (BRISQUE is
lower-is-better, PFE's sigma^2 likewise) is kept by :meth:`native_score`, so
every flip is explicit.  A sample that cannot be assessed is NaN plus a
reason, never dropped.
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import numpy as np

from fiqa_bench.registry import Registry


@dataclass(frozen=True)
class MethodCard:
    """What a FIQA method is and needs.

    Attributes:
        name: registry name.
        paper: citation of the method's paper.
        higher_is_better: whether the *native* output grows with quality.
        needs: "chips:<template>" or "embeddings:<model>".
        trained: whether the method must be trained before scoring.
        weights: where trained weights come from, or "none".
        weights_sha256: hash of shipped weights, or "".
    """

    name: str
    paper: str
    higher_is_better: bool
    needs: str
    trained: bool
    weights: str
    weights_sha256: str = ""


@dataclass(frozen=True)
class Scores:
    """Qualities of N samples: ``quality`` (higher = better), ``native`` and reasons."""

    quality: np.ndarray
    native: np.ndarray
    reasons: np.ndarray


class QualityMethod(ABC):
    """A face image quality method."""

    card: MethodCard

    @abstractmethod
    def native_score(self, inputs: np.ndarray) -> np.ndarray:
        """The method's own output for each sample, ``(N,)`` float64 (NaN where unassessable)."""

    def score(self, inputs: np.ndarray) -> np.ndarray:
        """Quality for each sample, ``(N,)`` float64, higher = better for recognition.

        The native output, negated when the card says lower is better.
        """
        native = np.asarray(self.native_score(inputs), dtype=np.float64)
        return native if self.card.higher_is_better else -native


MethodFactory = Callable[..., QualityMethod]

METHODS: Registry[MethodFactory] = Registry("method")
PROTOCOLS: Registry[Callable[..., object]] = Registry("protocol")

_PLUGIN_PACKAGES = ("fiqa_bench.methods", "fiqa_bench.protocols")
_loaded = False


def load_plugins() -> None:
    """Import every module of ``fiqa_bench.methods`` and ``fiqa_bench.protocols`` once."""
    global _loaded
    if _loaded:
        return
    for package_name in _PLUGIN_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{package_name}.{info.name}")
    _loaded = True
