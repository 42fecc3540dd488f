"""The package's shape: no import circle, a small top level, a docstring on every module.

Read from the source files (:func:`conftest.package_modules`), without
importing them, so a circle is reported by name rather than as the
``ImportError`` it may cause.
"""

from __future__ import annotations

import ast
import importlib.util
from collections import deque
from pathlib import Path

from conftest import package_modules

#: Issue 19: ``fiqa_bench/`` holds at most this many files and folders (``__init__.py`` included).
MAX_TOP_LEVEL_ENTRIES = 12


def imported_modules(name: str, path: Path, modules: set[str]) -> dict[str, int]:
    """The modules of ``modules`` that ``name`` (source file ``path``) imports -> line of its first import of each.

    Every ``import`` and ``from ... import`` statement counts, at module level or inside a function, class or
    ``if TYPE_CHECKING:`` block.  A statement depends on the module it reads: ``import a.b`` on ``a.b``;
    ``from a import x`` on ``a.x`` where that is a module, else on ``a`` (whose ``x`` it reads).  The parent
    packages Python initialises on the way are not counted: ``import a.b`` and ``from a import b`` do not read
    ``a/__init__.py``'s names, and counting them would make every package that imports its own submodules a circle.
    Relative imports are resolved against the importing module's package.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, int] = {}

    def depends(target: str, line: int) -> None:
        if target in modules and target != name:
            found[target] = min(line, found.get(target, line))

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                depends(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                depends(submodule if submodule in modules else base, node.lineno)
    return found


def import_graph() -> dict[str, dict[str, int]]:
    """Module -> {imported module: line} over every module of the installed packages."""
    sources = package_modules()
    return {name: imported_modules(name, path, set(sources)) for name, path in sources.items()}


def reachable(graph: dict[str, dict[str, int]], start: str) -> set[str]:
    """The modules reached from ``start`` by one or more imports."""
    seen: set[str] = set()
    stack = list(graph[start])
    while stack:
        module = stack.pop()
        if module not in seen:
            seen.add(module)
            stack.extend(graph[module])
    return seen


def shortest_cycle(graph: dict[str, dict[str, int]], start: str) -> list[str]:
    """The shortest chain of imports from ``start`` back to ``start`` (breadth-first)."""
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for target in sorted(graph[module]):
            if target == start:
                chain = [module]
                while chain[-1] != start:
                    chain.append(previous[chain[-1]])
                return [start, *reversed(chain[:-1]), start]
            if target not in previous:
                previous[target] = module
                queue.append(target)
    raise ValueError(f"{start} is on no import cycle")


def import_circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The modules that import each other in a circle: groups of two or more, each sorted, no module twice."""
    reached = {module: reachable(graph, module) for module in graph}
    circles: list[list[str]] = []
    placed: set[str] = set()
    for module in sorted(graph):
        if module in placed or module not in reached[module]:
            continue
        circle = sorted({other for other in reached[module] if module in reached[other]} | {module})
        placed.update(circle)
        circles.append(circle)
    return circles


def describe(graph: dict[str, dict[str, int]], circle: list[str]) -> str:
    """``a -> b (line 12 of a) -> a (line 30 of b)``: one shortest cycle through the circle's first module."""
    chain = shortest_cycle(graph, circle[0])
    steps = [chain[0]]
    steps += [f"{target} (line {graph[module][target]} of {module})" for module, target in zip(chain, chain[1:])]
    return f"{len(circle)} modules {circle}: " + " -> ".join(steps)


def test_no_import_circle() -> None:
    graph = import_graph()
    circles = import_circles(graph)
    assert not circles, "import circles:\n" + "\n".join(describe(graph, circle) for circle in circles)


def test_the_circle_check_finds_a_circle() -> None:
    """The checker on a made-up graph: a -> b -> c -> a is one circle of three, d -> a is on none."""
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}
    assert import_circles(graph) == [["a", "b", "c"]]
    assert shortest_cycle(graph, "b") == ["b", "c", "a", "b"]


def test_imports_are_resolved_as_python_does(tmp_path: Path) -> None:
    """Relative, nested and ``from package import submodule`` statements reach the modules they read."""
    source = tmp_path / "x.py"
    source.write_text(
        "from . import y\n"
        "from .z import helper\n"
        "def f():\n"
        "    import pkg.sub.w\n"
        "    from pkg import defined_in_init\n"
    )
    modules = {"pkg", "pkg.sub", "pkg.sub.x", "pkg.sub.y", "pkg.sub.z", "pkg.sub.w"}
    assert imported_modules("pkg.sub.x", source, modules) == {"pkg.sub.y": 1, "pkg.sub.z": 2, "pkg.sub.w": 4, "pkg": 5}


def test_top_level_is_small() -> None:
    folder = Path(importlib.util.find_spec("fiqa_bench").origin).parent
    entries = sorted(path.name for path in folder.iterdir() if path.name != "__pycache__")
    assert len(entries) <= MAX_TOP_LEVEL_ENTRIES, (
        f"fiqa_bench/ holds {len(entries)} entries, at most {MAX_TOP_LEVEL_ENTRIES} allowed: {entries}"
    )


def test_every_module_has_a_docstring() -> None:
    undocumented = [
        name for name, path in package_modules().items()
        if not (ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))) or "").strip()
    ]
    assert not undocumented, f"modules without a docstring saying what they are for: {undocumented}"


def test_modules_are_named_as_installed() -> None:
    """The walk over the source folders names each module as the import system finds it."""
    sources = package_modules()
    assert {"fiqa_bench.registry", "fiqa_bench.methods.sdd.labels", "fiqa_bench.protocols"} <= set(sources)
    wrong = {name: (str(path), importlib.util.find_spec(name).origin) for name, path in sources.items()
             if Path(importlib.util.find_spec(name).origin) != path}
    assert not wrong, f"module name -> (source file, file the import system finds): {wrong}"
