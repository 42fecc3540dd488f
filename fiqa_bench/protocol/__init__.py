"""The contract every evaluation protocol follows, and the registry of protocols.

A protocol answers one question about quality methods on some data (the
EVRC study on LFW, set-based TAR, bias ...).  It lives in one file of
``protocols/`` (installed as ``fiqa_bench.protocols``) as a :class:`Protocol`
registered in :data:`PROTOCOLS`; the registry imports every module of that
package the first time it is read.

Every protocol is called the same way, by the command line and from Python:
``protocol.compare(methods, request)`` evaluates several methods on the same
data, comparisons and resamples and returns the results folder it wrote;
``protocol.run(method, request)`` evaluates one (by default: ``compare`` of
that one).  A :class:`Request` says where and with what: the run context, the
output folder, the recognition model the methods read and the deployed one
whose errors are counted, the dataset (a spec such as ``"lfw"`` or
``"folder:PATH"``; None: the protocol's own), the study settings, and the
protocol's own options (:class:`Option`, e.g. the ``bias`` protocol's
``--attributes CSV``).  What a protocol needs to know about its dataset
(cross-fitting folds, attributes, templates, pair lists) it asks the
:class:`~fiqa_bench.data.Dataset`, never its name.

The shared pieces a protocol is built from: :mod:`fiqa_bench.protocol.scoring`
(which images each method's model scores, the study's rows, progress),
:mod:`fiqa_bench.protocol.evrc` (embed, score, study and write an EVRC run)
and :mod:`fiqa_bench.protocol.study` (the study itself: EVRC, AOC, bootstrap).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from fiqa_bench.protocol.study import StudyConfig
from fiqa_bench.registry import Registry

if TYPE_CHECKING:
    from fiqa_bench.method import MethodSpec
    from fiqa_bench.pipeline.context import RunContext


@dataclass(frozen=True)
class Option:
    """An option of one protocol: ``--<name> VALUE`` on the command line, ``request.options[name]`` in Python.

    Attributes:
        name: the option's name (``attributes`` -> ``--attributes``).
        help: one line for ``fiqa-bench list protocols``.
        parse: turns the command line's text into the value (e.g. ``Path``).
    """

    name: str
    help: str
    parse: Callable[[str], Any] = str

    @property
    def flag(self) -> str:
        """The command-line flag: ``--`` and the name with ``_`` written ``-``."""
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Request:
    """What a protocol is asked to do: where, with which models, on which data, how.

    Attributes:
        context: cache, data root, alignment, workers, device, progress.
        out_dir: the results folder to write.
        model: the recognition model the methods read (a name or ``NAME@CHECKPOINT``).
        deployed_model: the recognition model whose errors are counted (None: ``model``).
        dataset: a dataset spec (``"lfw"``, ``"folder:PATH"`` ...); None: the protocol's default.
        config: the study's settings (FMRs, policies, random band, bootstrap).
        options: the protocol's own options (:attr:`Protocol.options`), by name.
        train_on: the dataset spec trained methods' heads are trained on (``--train-on``), or None: the
            shipped heads, cross-fitted where the dataset allows.
    """

    context: RunContext
    out_dir: Path
    model: str = "dlib-resnet"
    deployed_model: str | None = None
    dataset: str | None = None
    config: StudyConfig = field(default_factory=StudyConfig)
    options: Mapping[str, Any] = field(default_factory=dict)
    train_on: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_dir", Path(self.out_dir))

    @property
    def deployed(self) -> str:
        """The deployed model: ``deployed_model``, else ``model``."""
        return self.deployed_model or self.model


class Protocol(ABC):
    """An evaluation protocol (see the module docstring).

    Subclasses set :attr:`name` and :attr:`description` (for ``fiqa-bench list
    protocols``) and, when they take options of their own, :attr:`options`;
    they implement :meth:`compare`, and override :meth:`run` only when one
    method is evaluated differently from a comparison of one.
    """

    name: str
    description: str
    options: tuple[Option, ...] = ()

    @abstractmethod
    def compare(self, methods: Sequence[MethodSpec], request: Request) -> Path:
        """Evaluate ``methods`` on the same data, comparisons and resamples; returns the results folder."""

    def run(self, method: MethodSpec, request: Request) -> Path:
        """Evaluate one method: :meth:`compare` of ``[method]``."""
        return self.compare([method], request)

    def option(self, name: str) -> Option:
        """This protocol's option ``name``.

        Raises:
            ValueError: the protocol has no such option (its options are listed).
        """
        for option in self.options:
            if option.name == name:
                return option
        known = ", ".join(o.flag for o in self.options) or "none"
        raise ValueError(f"protocol {self.name!r} takes no option --{name.replace('_', '-')}; its options: {known}")

    def parse_options(self, given: Mapping[str, str]) -> dict[str, Any]:
        """``given`` (option name -> command-line text) checked against :attr:`options` and parsed."""
        return {name: self.option(name).parse(text) for name, text in given.items()}


#: The protocols: every module of ``protocols/`` (installed as ``fiqa_bench.protocols``) registers here.
PROTOCOLS: Registry[Protocol] = Registry("protocol", plugins="fiqa_bench.protocols", entry_points="fiqa_bench.protocols")

__all__ = ["PROTOCOLS", "Option", "Protocol", "Request"]
