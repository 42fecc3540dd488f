"""One registry type for everything the suite looks up by name, and the plugins that add to them.

Methods, protocols, datasets, recognition models and face detectors are
each a :class:`Registry`, defined beside the contract of what it holds.  An
entry has a canonical name, optional aliases and a one-line description
(shown by ``fiqa-bench list``).  Registering a name or alias twice is an
error; looking up an unknown name raises :class:`UnknownNameError` with
"did you mean" suggestions.

Where entries come from, in this order, the first time a registry is read
(or added to):

1. its *built-in package*: every module of it whose name does not start
   with ``_`` is imported, so adding an entry is adding a file there;
2. its *entry-point group* (``fiqa_bench.methods``, ``fiqa_bench.protocols``,
   ``fiqa_bench.datasets``, ``fiqa_bench.models``, ``fiqa_bench.detectors``):
   each entry point of an installed distribution names a module that
   registers its entries on import, exactly as a built-in file does;
3. the plugins named by ``$FIQA_BENCH_PLUGINS`` (``os.pathsep``-separated
   ``.py`` files or module names), to which ``fiqa-bench --plugin FILE``
   adds: see :func:`load_plugin`.

Built-ins always load before any plugin, so a plugin that reuses a built-in
name fails with the same :class:`DuplicateNameError` as a second built-in
would.  A plugin that fails to import is *skipped*: whatever it had
registered is taken back, one line on stderr names it and the error
(:func:`plugin_failures` keeps them), and every other entry still works.

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
import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import pkgutil
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")

#: Plugins every process loads (``.py`` files or module names, separated by ``os.pathsep``); ``--plugin``
#: appends to it, so that worker processes started by a run load the same plugins.
PLUGINS_ENV = "FIQA_BENCH_PLUGINS"


class UnknownNameError(KeyError):
    """A registry lookup missed; the message lists close matches."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0])


class DuplicateNameError(ValueError):
    """A name or alias was registered twice in the same registry."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered object with its canonical name, aliases, description and origin.

    ``origin`` is ``""`` for the suite's own entries, else the plugin that registered it.
    """

    name: str
    obj: T
    description: str
    aliases: tuple[str, ...] = field(default=())
    origin: str = ""


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded: what named it, and the error in one line."""

    plugin: str
    error: str

    def __str__(self) -> str:
        return f"plugin {self.plugin} failed to load and is skipped: {self.error}"


#: Plugins loaded or being loaded (by key), and those that failed.
_ATTEMPTED: set[str] = set()
_FAILURES: list[PluginFailure] = []
#: The plugins now loading (innermost last): the label for ``Entry.origin``, and what each has registered so far.
_LOADING: list[tuple[str, list[tuple[Registry, str, tuple[str, ...]]]]] = []


def _report(failure: PluginFailure) -> None:
    print(f"fiqa-bench: warning: {failure}", file=sys.stderr)


def plugin_failures() -> list[PluginFailure]:
    """The plugins that failed to load in this process, in the order they were tried."""
    return list(_FAILURES)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _import_plugin(key: str, label: str, importer: Callable[[], object]) -> bool:
    """Run ``importer`` once per ``key``; on failure take back what it registered and report ``label``."""
    if key in _ATTEMPTED:
        return True
    _ATTEMPTED.add(key)
    added: list[tuple[Registry, str, tuple[str, ...]]] = []
    _LOADING.append((label, added))
    try:
        importer()
    except Exception as err:  # noqa: BLE001 - any error of a plugin is that plugin's, reported and skipped
        for registry, name, aliases in added:
            registry._remove(name, aliases)
        failure = PluginFailure(label, _one_line(err))
        _FAILURES.append(failure)
        _report(failure)
        return False
    finally:
        _LOADING.pop()
    return True


def _module_name_for(path: Path) -> str:
    """A stable module name for a plugin file (the same in every process of a run)."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    return f"fiqa_bench_plugin_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{digest}"


def _import_file(path: Path) -> None:
    if path.is_dir():
        raise ImportError(f"{path} is a folder; name a .py file, or a module importable from sys.path")
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    name = _module_name_for(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look classes up by module name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise


def _is_path(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or os.sep in spec or Path(spec).exists()


def load_plugin(spec: str) -> bool:
    """Load the plugin ``spec``: a ``.py`` file (any path) or an importable module name.

    Importing it registers its entries in the registries it adds to, as a
    built-in file would.  It is then also named in ``$FIQA_BENCH_PLUGINS``,
    so processes this one starts load it too.  Returns False (after one line
    on stderr, see :func:`plugin_failures`) when it failed, and nothing it
    registered is kept; loading the same plugin again does nothing.
    """
    spec = spec.strip()
    if _is_path(spec):
        path = Path(spec).expanduser().resolve()
        ok = _import_plugin(f"file:{path}", spec, lambda: _import_file(path))
        named = str(path)
    else:
        ok = _import_plugin(f"module:{spec}", spec, lambda: importlib.import_module(spec))
        named = spec
    current = [p for p in os.environ.get(PLUGINS_ENV, "").split(os.pathsep) if p]
    if ok and named not in current:
        os.environ[PLUGINS_ENV] = os.pathsep.join([*current, named])
    return ok


def _load_environment_plugins() -> None:
    for spec in os.environ.get(PLUGINS_ENV, "").split(os.pathsep):
        if spec.strip():
            load_plugin(spec)


def _load_entry_points(group: str) -> None:
    found = {(ep.name, ep.value): ep for ep in importlib.metadata.entry_points(group=group)}
    for (name, value), ep in sorted(found.items()):
        _import_plugin(f"entry-point:{group}:{name}={value}", f"{value} (entry point {name!r} of {group})", ep.load)


class Registry(Generic[T]):
    """Name -> object map with aliases, duplicate detection, suggestions and plugins.

    Args:
        kind: what the registry holds, used in messages ("method", "model").
        plugins: the built-in package whose modules register entries; they are imported on the first read.
        entry_points: the entry-point group whose modules register entries from installed distributions.
    """

    def __init__(self, kind: str, plugins: str | None = None, entry_points: str | None = None) -> None:
        self.kind = kind
        self.plugins = plugins
        self.entry_points = entry_points
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}
        self._loaded = plugins is None and entry_points is None

    def _load(self) -> None:
        """Import the built-in package's modules, then the entry points' and ``$FIQA_BENCH_PLUGINS``'s, once."""
        if self._loaded:
            return
        self._loaded = True  # before importing: a module may read the registry while it loads
        if self.plugins is not None:
            outer = _LOADING[:]  # a plugin's first add() may be what loads the built-ins: they are not its own
            _LOADING.clear()
            try:
                package = importlib.import_module(self.plugins)
                for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
                    if not info.name.startswith("_"):
                        importlib.import_module(f"{self.plugins}.{info.name}")
            except BaseException:  # the suite's own modules must load: a broken one is a bug, not a plugin
                self._loaded = False
                raise
            finally:
                _LOADING[:] = outer
        if self.entry_points is not None:
            _load_entry_points(self.entry_points)
        _load_environment_plugins()

    def add(self, name: str, obj: T, *, description: str, aliases: tuple[str, ...] = ()) -> T:
        """Register ``obj`` under ``name`` (and ``aliases``); returns ``obj``.

        A plugin's first add loads the built-in entries first, so a plugin cannot take a built-in name (a
        built-in module's own add does not: it may be imported directly, halfway through the package's).
        """
        if _LOADING:
            self._load()
        if not name or not isinstance(name, str):
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if not description.strip():
            raise ValueError(f"{self.kind} {name!r} needs a one-line description")
        for key in (name, *aliases):
            if key in self._entries or key in self._aliases:
                raise DuplicateNameError(f"{self.kind} name {key!r} is already registered")
        origin = _LOADING[-1][0] if _LOADING else ""
        self._entries[name] = Entry(name, obj, description.strip(), tuple(aliases), origin)
        for alias in aliases:
            self._aliases[alias] = name
        if _LOADING:
            _LOADING[-1][1].append((self, name, tuple(aliases)))
        return obj

    def _remove(self, name: str, aliases: tuple[str, ...]) -> None:
        """Take back what :meth:`add` registered (a plugin that failed after registering it)."""
        self._entries.pop(name, None)
        for alias in aliases:
            self._aliases.pop(alias, None)

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
        failed = f" (plugins that failed to load: {', '.join(f.plugin for f in _FAILURES)})" if _FAILURES else ""
        raise UnknownNameError(
            f"unknown {self.kind} {name!r}{hint} Known: {', '.join(known) or '(none)'}{failed}"
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
