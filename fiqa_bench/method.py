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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from fiqa_bench.hashing import sha256_json
from fiqa_bench.registry import Registry


@dataclass(frozen=True)
class MethodCard:
    """What a FIQA method is and needs.

    Attributes:
        name: registry name.
        paper: citation of the method's paper.
        higher_is_better: whether the *native* output grows with quality.
        needs: "chips:<template>", "embeddings:<model>", "backbone:<model>"
            or "stages:<model>" (see :class:`QualityMethod`).
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

    def quality_from_native(self, native: np.ndarray) -> np.ndarray:
        """Native outputs as qualities (float64, higher = better): negated when lower is better."""
        native = np.asarray(native, dtype=np.float64)
        return native if self.higher_is_better else -native


class QualityMethod(ABC):
    """A face image quality method.

    ``native_score`` receives what ``card.needs`` names, for N samples:
    ``chips:<template>`` -> ``(N, S, S, 3)`` uint8 aligned chips;
    ``embeddings:<model>`` -> ``(N, D)`` unit embeddings of that model;
    ``backbone:<model>`` -> ``(N, F)`` backbone features of that model;
    ``stages:<model>`` -> ``(N, F)`` its pooled stage outputs.
    Rows of images that failed upstream are never passed in.
    """

    card: MethodCard

    def fingerprint(self) -> str:
        """Changes whenever the scores could change (part of the score cache key)."""
        return sha256_json(asdict(self.card))

    @abstractmethod
    def native_score(self, inputs: np.ndarray) -> np.ndarray:
        """The method's own output for each sample, ``(N,)`` float64 (NaN where unassessable)."""

    def score(self, inputs: np.ndarray) -> np.ndarray:
        """Quality for each sample, ``(N,)`` float64, higher = better for recognition.

        The native output, negated when the card says lower is better.
        """
        return self.card.quality_from_native(self.native_score(inputs))


#: ``factory(weights: Path | None = None, trained_on: str | None = None) -> QualityMethod``.
#: ``weights`` names a checkpoint; ``trained_on`` (for trained methods) asks for
#: the shipped model trained on that dataset, e.g. "lfw:devtrain".
MethodFactory = Callable[..., QualityMethod]

METHODS: Registry[MethodFactory] = Registry("method")
PROTOCOLS: Registry[Callable[..., object]] = Registry("protocol")

#: Trainers of trained methods, by method name:
#: ``trainer(dataset, model_name, cache_dir, out, options: dict[str, str], workers, progress) -> dict``
#: where ``options`` are the ``--set key=value`` pairs of ``fiqa-bench train``
#: plus ``mode``, ``epochs``, ``schedule`` and ``seed``; it writes the
#: checkpoint to ``out`` and returns the training record, which holds at
#: least the checkpoint's ``sha256``.
TRAINERS: Registry[Callable[..., dict]] = Registry("trainer")

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


def create_method(name: str, weights: str | Path | None = None, trained_on: str | None = None) -> QualityMethod:
    """Build the registered method ``name`` (``fiqa-bench list methods``)."""
    load_plugins()
    factory = METHODS.get(name)
    return factory(weights=Path(weights) if weights else None, trained_on=trained_on)
