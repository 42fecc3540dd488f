"""Face-recognition models: embedding extractors on aligned chips.

A model is named by its registry name (``dlib-resnet``) or, for models that
load a user's checkpoint, by a *reference* ``NAME@CHECKPOINT``
(``iresnet50@/models/backbone.pth``).  A reference works wherever a model
name does: ``--model``, a method's ``model`` setting, a method's card
(``backbone:iresnet50@/models/backbone.pth``), so every method that reads a
recognition model can read one a user brings.

Each model registers itself (its card and builder,
:func:`~fiqa_bench.recognition.registry.register_model`) in its own module
of this package, so its card is read without building it
(:func:`model_card`, :func:`default_detector`, ``fiqa-bench list models``),
and :func:`create_model` builds it once per reference and device in a
process.
"""

from __future__ import annotations

from pathlib import Path

from fiqa_bench.recognition.base import (
    ModelCard,
    RecognitionModel,
    TorchEmbeddingNet,
    TorchRecognitionModel,
    share_network,
)
from fiqa_bench.recognition.registry import MODELS, ModelEntry

#: The models built in this process, by (reference, device): each is built once (see create_model).
_BUILT: dict[tuple[str, str], RecognitionModel] = {}


def split_reference(reference: str) -> tuple[str, str | None]:
    """``"NAME@CHECKPOINT"`` -> (NAME, CHECKPOINT); ``"NAME"`` -> (NAME, None)."""
    name, sep, weights = reference.partition("@")
    if sep and not weights:
        raise ValueError(f"model reference {reference!r} names no checkpoint after '@'")
    return name, weights or None


def canonical_model_name(name: str) -> str:
    """The registry name of the registered model ``name`` (an alias such as ``dlib`` resolved)."""
    return MODELS.canonical(name)


def model_reference(name: str) -> str:
    """``name`` made canonical: an alias resolved, ``NAME@CHECKPOINT`` kept with its name resolved."""
    base, weights = split_reference(name)
    canonical = canonical_model_name(base)
    return f"{canonical}@{weights}" if weights else canonical


def model_card(name: str) -> ModelCard:
    """The card of the model ``name`` (a registry name or a ``NAME@CHECKPOINT`` reference), read without
    building it; a model built from a user's checkpoint may name other ``weights``."""
    return MODELS.get(split_reference(name)[0]).card


def create_model(name: str, weights: str | Path | None = None, device: str = "cpu") -> RecognitionModel:
    """The registered recognition model ``name`` (a registry name or a ``NAME@CHECKPOINT`` reference).

    A model is built once per (canonical reference, device) in a process; later
    calls return the same object, which every caller shares: none may change
    it.  A PyTorch model's network refuses to be trained, reloaded or moved
    (:func:`~fiqa_bench.recognition.base.share_network`); a caller that
    fine-tunes one works on ``copy.deepcopy(model.network)``.

    Args:
        name: registry name or alias (``fiqa-bench list models``), or ``NAME@CHECKPOINT``.
        weights: checkpoint path, for models that load a user's weights (not with a reference).
        device: torch device string.

    Returns:
        The model; its :attr:`~RecognitionModel.reference` is the canonical
        name, followed by ``@CHECKPOINT`` when weights were given.
    """
    base, from_reference = split_reference(name)
    if from_reference and weights:
        raise ValueError(f"give the checkpoint once: {name!r} and weights {weights}")
    weights = weights or from_reference
    canonical = canonical_model_name(base)
    reference = f"{canonical}@{weights}" if weights else canonical
    key = (reference, device)
    if key not in _BUILT:
        entry = MODELS.get(canonical)
        model = entry.build(Path(weights) if weights else None, device)
        _check_card(entry, model)
        model.reference = reference
        if isinstance(model, TorchRecognitionModel):
            share_network(model.network, reference)
        _BUILT[key] = model
    return _BUILT[key]


def _check_card(entry: ModelEntry, model: RecognitionModel) -> None:
    """Raise unless ``model`` is what its registered card says (the card is read without building it)."""
    fields = ("name", "template", "embedding_dim", "detector")
    said = {f: getattr(entry.card, f) for f in fields}
    built = {f: getattr(model.card, f) for f in fields}
    if said != built:
        raise RuntimeError(f"recognition model {entry.card.name!r}: its registered card says {said}, "
                           f"the built model's card {built}")


def default_detector(name: str) -> str:
    """The face detector ``name``'s chips are cut after by default (its card's ``detector``; nothing is built)."""
    return model_card(name).detector


def create_torch_model(name: str, purpose: str) -> TorchRecognitionModel:
    """:func:`create_model`, which must give a PyTorch model (``purpose`` reads its layers)."""
    model = create_model(name)
    if not isinstance(model, TorchRecognitionModel):
        raise ValueError(f"{purpose} needs a PyTorch recognition model (it reads the network's layers); "
                         f"{name!r} is not one")
    return model


__all__ = ["MODELS", "ModelCard", "ModelEntry", "RecognitionModel", "TorchEmbeddingNet", "TorchRecognitionModel",
           "create_model", "create_torch_model", "default_detector", "canonical_model_name", "model_card",
           "model_reference", "split_reference"]
