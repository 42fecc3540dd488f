"""The contract every FIQA method follows, and the registries of plugins.

A method lives in one file of ``methods/`` (installed as
``fiqa_bench.methods``) and registers its :class:`QualityMethod` subclass in
:data:`METHODS`; the registry imports every module of that package the first
time it is read, so adding a method is adding a file.  Learned methods (a
head trained on a frozen recognition model's features) build on
:mod:`fiqa_bench.method.learned`.

A method is described by a frozen :class:`MethodCard` and scores images with
:meth:`QualityMethod.score`, which always returns float64 qualities where
**higher is better for recognition**; the method's native value (BRISQUE is
lower-is-better, PFE's sigma^2 likewise) is kept by :meth:`native_score`, so
every flip is explicit.  A sample that cannot be assessed is NaN plus a
reason, never dropped.
"""

from __future__ import annotations

import inspect
import re
import typing
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import numpy as np

from fiqa_bench.pipeline.hashing import sha256_json
from fiqa_bench.registry import Registry


@dataclass(frozen=True)
class MethodCard:
    """What a FIQA method is and needs.

    Attributes:
        name: registry name.
        paper: citation of the method's paper.
        higher_is_better: whether the *native* output grows with quality.
        needs: "chips:<template>", "embeddings:<model>", "backbone:<model>",
            "stages:<model>" or "landmarks:dlib5" (see :class:`QualityMethod`).
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

    @property
    def input(self) -> MethodInput:
        """What the method reads: :attr:`needs` parsed (:meth:`MethodInput.parse`; errors name this card).

        Raises:
            ValueError: :attr:`needs` is not one of the forms :class:`MethodInput` knows.
        """
        return MethodInput.parse(self.needs, self.name)


@dataclass(frozen=True)
class MethodInput:
    """What a quality method reads, as its card's ``needs`` string says (``<kind>:<argument>``).

    ==============  ===============  =====================================================
    kind            argument         the method's ``native_score`` receives, per image
    ==============  ===============  =====================================================
    ``chips``       a chip template  the aligned chip, ``(S, S, 3)`` uint8
    ``embeddings``  a model          the model's unit embedding
    ``backbone``    a model          the model's backbone features
    ``stages``      a model          the model's pooled stage outputs
    ``landmarks``   ``dlib5``        dlib's five landmarks in image pixels, ``(5, 2)``
    ==============  ===============  =====================================================

    Attributes:
        kind: one of :attr:`KINDS`.
        argument: the template, the model reference (``name`` or ``name@weights``) or ``dlib5``.
    """

    kind: str
    argument: str

    #: Every kind, and, for the kinds whose argument is a recognition model, the model's output they read
    #: (:func:`~fiqa_bench.pipeline.embedding.embed_dataset`'s ``output``).
    KINDS: ClassVar[tuple[str, ...]] = ("chips", "embeddings", "backbone", "stages", "landmarks")
    MODEL_OUTPUTS: ClassVar[dict[str, str]] = {"embeddings": "embedding", "backbone": "backbone", "stages": "stages"}
    #: The only landmarks there are.
    LANDMARKS: ClassVar[tuple[str, ...]] = ("dlib5",)

    @classmethod
    def parse(cls, needs: str, card: str = "") -> MethodInput:
        """``needs`` (e.g. ``"stages:dlib-resnet"``) as a value.

        Args:
            needs: a method card's ``needs`` string.
            card: the card's name, for the error message.

        Raises:
            ValueError: an unknown kind, an empty argument or landmarks other than ``dlib5``
                (the message names the card and the string).
        """
        kind, _, argument = str(needs).partition(":")
        if kind not in cls.KINDS or not argument or (kind == "landmarks" and argument not in cls.LANDMARKS):
            whose = f"method card {card!r}: " if card else ""
            raise ValueError(f"{whose}'needs' must be chips:<template>, embeddings:<model>, backbone:<model>, "
                             f"stages:<model> or landmarks:dlib5, got {needs!r}")
        return cls(kind, argument)

    @property
    def model(self) -> str | None:
        """The recognition model the method reads (embeddings, backbone or stage features), else None."""
        return self.argument if self.kind in self.MODEL_OUTPUTS else None

    @property
    def output(self) -> str | None:
        """The output of :attr:`model` the method reads (``"embedding"``, ``"backbone"``, ``"stages"``), else None."""
        return self.MODEL_OUTPUTS.get(self.kind)


class QualityMethod(ABC):
    """A face image quality method.

    ``native_score`` receives what ``card.needs`` names, for N samples:
    ``chips:<template>`` -> ``(N, S, S, 3)`` uint8 aligned chips;
    ``embeddings:<model>`` -> ``(N, D)`` unit embeddings of that model;
    ``backbone:<model>`` -> ``(N, F)`` backbone features of that model;
    ``stages:<model>`` -> ``(N, F)`` its pooled stage outputs;
    ``landmarks:dlib5`` -> ``(N, 5, 2)`` float64 landmark pixels in the image
    (dlib's order, :mod:`fiqa_bench.faces.templates`).
    Rows of images that failed upstream are never passed in.
    """

    card: MethodCard
    #: The version of the method's code: bump it with any change that could alter a score.  It is part
    #: of :meth:`fingerprint`, so scores cached by older code are never reused
    #: (``tests/test_method_versions.py`` fails when a method's file changes and this is not reconsidered).
    version: ClassVar[int] = 1

    @classmethod
    def create(
        cls,
        weights: Path | None = None,
        trained_on: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> QualityMethod:
        """Build the method as the command line asks for it (what :func:`create_method` calls).

        The default serves untrained methods: it refuses ``weights`` and
        ``trained_on`` and passes ``settings`` (``--set key=value``) to the
        constructor, each converted to the type its parameter is annotated
        with (:func:`constructor_settings`).  Trained methods override it to
        load a checkpoint or a shipped model.
        """
        if weights is not None or trained_on is not None:
            given = f"weights {weights}" if weights is not None else f"trained_on {trained_on!r}"
            raise ValueError(f"method {_label(cls)!r} is not trained and takes no weights (got {given})")
        return cls(**constructor_settings(cls, settings or {}))

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        """The settings ``create`` takes (``--set key=value``); by default the constructor's parameters."""
        return tuple(constructor_parameters(cls))

    def fingerprint(self) -> str:
        """Changes whenever the scores could change (part of the score cache key).

        A digest of the card, the code's :attr:`version` and
        :meth:`fingerprint_parts`; subclasses extend the parts, never this.
        Weights with a digest are named by their file name and sha256, not
        their path, so a checkout moved or cloned elsewhere (or several
        checkouts sharing one cache) keeps its cached scores.
        """
        card = asdict(self.card)
        if card["weights_sha256"]:
            card["weights"] = Path(card["weights"]).name
        return sha256_json({"card": card, "version": self.version, **self.fingerprint_parts()})

    def fingerprint_parts(self) -> dict[str, Any]:
        """What else the scores depend on: settings, weight digests, the model's fingerprint (JSON values)."""
        return {}

    @abstractmethod
    def native_score(self, inputs: np.ndarray) -> np.ndarray:
        """The method's own output for each sample, ``(N,)`` float64 (NaN where unassessable)."""

    def score(self, inputs: np.ndarray) -> np.ndarray:
        """Quality for each sample, ``(N,)`` float64, higher = better for recognition.

        The native output, negated when the card says lower is better.
        """
        return self.card.quality_from_native(self.native_score(inputs))


def _label(cls: type) -> str:
    card = getattr(cls, "card", None)
    return card.name if isinstance(card, MethodCard) else cls.__name__


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _convert(name: str, value: Any, kind: Any) -> Any:
    """``value`` as ``kind`` (int, float, bool or str); strings from the command line are parsed."""
    if not isinstance(value, str) or kind in (str, Any, inspect.Parameter.empty):
        return value
    if kind is bool:
        if value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        raise ValueError(f"setting {name}={value!r} must be one of {', '.join(_TRUE + _FALSE)}")
    if kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            raise ValueError(f"setting {name}={value!r} must be a{'n' if kind is int else ''} {kind.__name__}") from None
    return value


def constructor_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The named parameters of ``cls``'s constructor (what ``--set key=value`` can give it)."""
    return {k: p for k, p in inspect.signature(cls).parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def constructor_settings(cls: type, settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` checked against ``cls``'s constructor and converted to its annotated types.

    An unknown key is a ValueError that lists the known ones.
    """
    parameters = constructor_parameters(cls)
    unknown = sorted(set(settings) - set(parameters))
    if unknown:
        known = ", ".join(parameters) or "none"
        raise ValueError(f"method {_label(cls)!r} has no setting {', '.join(unknown)}; its settings: {known}")
    hints = typing.get_type_hints(cls.__init__) if cls.__init__ is not object.__init__ else {}
    return {k: _convert(k, v, hints.get(k, parameters[k].annotation)) for k, v in settings.items()}


#: The methods: every module of ``methods/`` (installed as ``fiqa_bench.methods``) registers its class here.
METHODS: Registry[type[QualityMethod]] = Registry("method", plugins="fiqa_bench.methods", entry_points="fiqa_bench.methods")

#: Trainers of trained methods, by method name:
#: ``trainer(dataset, model_name, cache_dir, out, options: dict[str, str], workers, progress) -> dict``
#: where ``options`` are the ``--set key=value`` pairs of ``fiqa-bench train``
#: plus ``mode``, ``epochs``, ``schedule`` and ``seed``; it writes the
#: checkpoint to ``out`` and returns the training record, which holds at
#: least the checkpoint's ``sha256``.
TRAINERS: Registry[Callable[..., dict]] = Registry("trainer", plugins="fiqa_bench.methods", entry_points="fiqa_bench.methods")


@dataclass(frozen=True)
class MethodSpec:
    """A method to evaluate: its registry name, its settings and an optional checkpoint."""

    name: str
    settings: Mapping[str, str] = field(default_factory=dict)
    weights: Path | None = None

    @property
    def label(self) -> str:
        """``name`` or ``name[key=value,...]``: how tables and files name it."""
        if not self.settings:
            return self.name
        return f"{self.name}[{','.join(f'{k}={v}' for k, v in sorted(self.settings.items()))}]"

    @classmethod
    def parse(cls, text: str, weights: Path | None = None) -> MethodSpec:
        """``"sdd"`` or ``"sdd[variant=pos-only,m=12]"`` -> a spec (the name made canonical)."""
        match = re.fullmatch(r"\s*([\w.-]+)\s*(?:\[(.*)\])?\s*", text)
        if not match:
            raise ValueError(f"cannot read method {text!r}; write NAME or NAME[key=value,...]")
        settings = {}
        for item in filter(None, (match.group(2) or "").split(",")):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"method {text!r}: settings are key=value, got {item!r}")
            settings[key.strip()] = value.strip()
        return cls.named(match.group(1), settings, weights)

    @classmethod
    def named(cls, name: str, settings: Mapping[str, str] | None = None, weights: Path | None = None) -> MethodSpec:
        """A spec for the registered method ``name`` (an alias is made canonical)."""
        return cls(METHODS.canonical(name), dict(settings or {}), weights)


def parse_methods(text: str) -> list[MethodSpec]:
    """A comma-separated list of methods (brackets may hold commas), or ``all`` (every registered method)."""
    if text.strip() == "all":
        return [MethodSpec(name) for name in METHODS.names()]
    items, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    specs = [MethodSpec.parse(item) for item in items if item.strip()]
    labels = [spec.label for spec in specs]
    if not specs or len(set(labels)) != len(labels):
        raise ValueError(f"give each method once: {text!r}")
    return specs


def method_class(name: str) -> type[QualityMethod]:
    """The registered class (or factory) of method ``name`` (an alias resolved).

    Protocols ask this rather than importing :data:`METHODS` by name, so a
    registry swapped at run time (a plugin host, a test) is the one they see.
    """
    return METHODS.get(name)


def settings_for_model(name: str, settings: Mapping[str, str], model: str) -> dict[str, str]:
    """``settings`` with ``model`` added when the method reads a recognition model and none was chosen.

    A protocol that deploys ``model`` uses it for the methods that read one
    (SDD-FIQA's labels, SER-FIQ's dropout passes ...), as the paper does;
    ``--set model=OTHER`` (or ``NAME[model=OTHER]``) makes it a cross-model
    run.  The table still names the method as the user did.
    """
    settings = dict(settings)
    if "model" not in settings and "model" in METHODS.get(name).setting_names():
        settings["model"] = model
    return settings


def create_method(
    name: str,
    weights: str | Path | None = None,
    trained_on: str | None = None,
    settings: Mapping[str, Any] | None = None,
) -> QualityMethod:
    """Build the registered method ``name`` (``fiqa-bench list methods``).

    Args:
        name: registry name or alias.
        weights: a checkpoint (trained methods).
        trained_on: the shipped model trained on this dataset, e.g. ``"lfw:devtrain"`` (trained methods).
        settings: method settings, e.g. ``{"seed": "3"}`` (``--set seed=3``).
    """
    return METHODS.get(name).create(weights=Path(weights) if weights else None, trained_on=trained_on,
                                    settings=settings)
