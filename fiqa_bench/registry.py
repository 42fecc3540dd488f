"""One registry type for everything the suite looks up by name.

Methods, protocols, datasets, recognition models and face detectors are
each a :class:`Registry`, defined beside the contract of what it holds.  An
entry has a canonical name, optional aliases and a one-line description
(shown by ``fiqa-bench list``).  Registering a name or alias twice is an
error; looking up an unknown name raises :class:`UnknownNameError` with
"did you mean" suggestions.  A registry may name a *plugin package*: every
module of it whose name does not start with ``_`` is imported the first time
the registry is read, so adding an entry is adding a file there.

Example:
    >>> animals = Registry("animal")
    >>> @animals.register("cat", description="says meow", aliases=("kitty",))
    ... def make_cat():
    ...     return "meow"
    >>> animals.get("kitty")()
    'meow'
    >>> animals.get("cta")
    Traceback (most recent call last):
    ...
    fiqa_bench.registry.UnknownNameError: unknown animal 'cta'; did you mean 'cat'? Known: cat
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A registry lookup missed; the message lists close matches."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0])


class DuplicateNameError(ValueError):
    """A name or alias was registered twice in the same registry."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered object with its canonical name, aliases and description."""

    name: str
    obj: T
    description: str
    aliases: tuple[str, ...] = field(default=())


class Registry(Generic[T]):
    """Name -> object map with aliases, duplicate detection and suggestions.

    Args:
        kind: what the registry holds, used in messages ("method", "model").
        plugins: a package whose modules register entries; they are imported on the first read.
    """

    def __init__(self, kind: str, plugins: str | None = None) -> None:
        self.kind = kind
        self.plugins = plugins
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}
        self._loaded = plugins is None

    def _load(self) -> None:
        """Import every module of the plugin package once (each registers its entries with :meth:`add`)."""
        if self._loaded:
            return
        self._loaded = True  # before importing: a plugin module may read the registry while it loads
        try:
            package = importlib.import_module(self.plugins)
            for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
                if not info.name.startswith("_"):
                    importlib.import_module(f"{self.plugins}.{info.name}")
        except BaseException:
            self._loaded = False
            raise

    def add(self, name: str, obj: T, *, description: str, aliases: tuple[str, ...] = ()) -> T:
        """Register ``obj`` under ``name`` (and ``aliases``); returns ``obj``."""
        if not name or not isinstance(name, str):
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if not description.strip():
            raise ValueError(f"{self.kind} {name!r} needs a one-line description")
        for key in (name, *aliases):
            if key in self._entries or key in self._aliases:
                raise DuplicateNameError(f"{self.kind} name {key!r} is already registered")
        self._entries[name] = Entry(name, obj, description.strip(), tuple(aliases))
        for alias in aliases:
            self._aliases[alias] = name
        return obj

    def register(
        self, name: str, *, description: str, aliases: tuple[str, ...] = ()
    ) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def decorate(obj: T) -> T:
            return self.add(name, obj, description=description, aliases=aliases)

        return decorate

    def canonical(self, name: str) -> str:
        """The canonical name for ``name`` or one of its aliases."""
        self._load()
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        known = sorted(self._entries)
        close = difflib.get_close_matches(name, known + sorted(self._aliases), n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownNameError(
            f"unknown {self.kind} {name!r}{hint} Known: {', '.join(known) or '(none)'}"
        )

    def get(self, name: str) -> T:
        """The object registered as ``name`` (or an alias of it)."""
        return self._entries[self.canonical(name)].obj

    def entry(self, name: str) -> Entry[T]:
        """The full :class:`Entry` registered as ``name`` (or an alias of it)."""
        return self._entries[self.canonical(name)]

    def entries(self) -> list[Entry[T]]:
        """All entries, sorted by name."""
        self._load()
        return [self._entries[k] for k in sorted(self._entries)]

    def names(self) -> list[str]:
        """The canonical names, sorted."""
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._entries)
