"""Face-recognition models: embedding extractors on aligned chips.

A model is named by its registry name (``dlib-resnet``) or, for models that
load a user's checkpoint, by a *reference* ``NAME@CHECKPOINT``
(``iresnet50@/models/backbone.pth``).  A reference works wherever a model
name does: ``--model``, a method's ``model`` setting, a method's card
(``backbone:iresnet50@/models/backbone.pth``), so every method that reads a
recognition model can read one a user brings.
"""

from __future__ import annotations

import functools

from pathlib import Path

from fiqa_bench.recognition.base import ModelCard, RecognitionModel, TorchEmbeddingNet, TorchRecognitionModel
from fiqa_bench.recognition.registry import MODELS


def split_reference(reference: str) -> tuple[str, str | None]:
    """``"NAME@CHECKPOINT"`` -> (NAME, CHECKPOINT); ``"NAME"`` -> (NAME, None)."""
    name, sep, weights = reference.partition("@")
    if sep and not weights:
        raise ValueError(f"model reference {reference!r} names no checkpoint after '@'")
    return name, weights or None


def canonical_model_name(name: str) -> str:
    """The registry name of the built-in or registered model ``name`` (an alias such as ``dlib`` resolved)."""
    from fiqa_bench.recognition import _builtin  # noqa: F401  (registers the built-in models)

    return MODELS.canonical(name)


def model_reference(name: str) -> str:
    """``name`` made canonical: an alias resolved, ``NAME@CHECKPOINT`` kept with its name resolved."""
    base, weights = split_reference(name)
    canonical = canonical_model_name(base)
    return f"{canonical}@{weights}" if weights else canonical


def create_model(name: str, weights: str | Path | None = None, device: str = "cpu") -> RecognitionModel:
    """Build the registered recognition model ``name`` (a registry name or a ``NAME@CHECKPOINT`` reference).

    Args:
        name: registry name or alias (``fiqa-bench list models``), or ``NAME@CHECKPOINT``.
        weights: checkpoint path, for models that load a user's weights (not with a reference).
        device: torch device string.

    The model's :attr:`~RecognitionModel.reference` is set to the canonical
    name, followed by ``@CHECKPOINT`` when weights were given.
    """
    base, from_reference = split_reference(name)
    if from_reference and weights:
        raise ValueError(f"give the checkpoint once: {name!r} and weights {weights}")
    weights = weights or from_reference
    canonical = canonical_model_name(base)
    model = MODELS.get(canonical)(Path(weights) if weights else None, device)
    model.reference = f"{canonical}@{weights}" if weights else canonical
    return model


@functools.lru_cache(maxsize=None)
def default_detector(name: str) -> str:
    """The face detector ``name``'s chips are cut after by default (its card's ``detector``)."""
    return create_model(name).card.detector


def create_torch_model(name: str, purpose: str) -> TorchRecognitionModel:
    """:func:`create_model`, which must give a PyTorch model (``purpose`` reads its layers)."""
    model = create_model(name)
    if not isinstance(model, TorchRecognitionModel):
        raise ValueError(f"{purpose} needs a PyTorch recognition model (it reads the network's layers); "
                         f"{name!r} is not one")
    return model


__all__ = ["MODELS", "ModelCard", "RecognitionModel", "TorchEmbeddingNet", "TorchRecognitionModel", "create_model",
           "create_torch_model", "default_detector", "canonical_model_name", "model_reference", "split_reference"]
