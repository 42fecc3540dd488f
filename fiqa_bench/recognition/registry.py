"""The registry of recognition models.

Each entry is a :class:`ModelEntry`: the model's :class:`ModelCard`, read
without building anything (``fiqa-bench list models``, a model's default
face detector), and its builder ``(weights: Path | None, device: str) ->
RecognitionModel``.  Every model registers itself, with :func:`register_model`,
in its own module of :mod:`fiqa_bench.recognition`: the registry imports
every module of that package the first time it is read, so adding a model is
adding a file there (modules that register nothing, such as
:mod:`~fiqa_bench.recognition.base`, are imported harmlessly).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from fiqa_bench.recognition.base import ModelCard, RecognitionModel
from fiqa_bench.registry import Registry

ModelFactory = Callable[[Path | None, str], RecognitionModel]


@dataclass(frozen=True)
class ModelEntry:
    """A registered recognition model.

    Attributes:
        card: the model's card with its default weights (a model built from a user's
            checkpoint may name other ``weights``; every other field is the built model's).
        build: ``build(weights, device)``: a new model from the checkpoint ``weights``
            (None: the default weights) on the torch device ``device``.
    """

    card: ModelCard
    build: ModelFactory


MODELS: Registry[ModelEntry] = Registry("recognition model", plugins="fiqa_bench.recognition",
                                      entry_points="fiqa_bench.models")


def register_model(card: ModelCard, build: ModelFactory, aliases: tuple[str, ...] = ()) -> ModelEntry:
    """Register the model ``card`` describes under ``card.name`` (and ``aliases``), built by ``build``."""
    return MODELS.add(card.name, ModelEntry(card, build), description=card.description, aliases=aliases)
