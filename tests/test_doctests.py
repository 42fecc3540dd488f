"""Every ``>>>`` example in the package's docstrings runs and shows what it prints.

Each module that holds an example is imported by its installed name
(``fiqa_bench.methods.sdd.labels``, not ``methods.sdd.labels``) and the
standard library's :mod:`doctest` runs the examples of its docstrings.

Why not pytest's ``--doctest-modules``: it imports each file by its path.
``methods/`` and ``protocols/`` sit beside ``fiqa_bench/`` on disk and are
installed as ``fiqa_bench.methods`` and ``fiqa_bench.protocols``
(setuptools package-dir), so under every ``--import-mode`` pytest would
execute ``methods/sdd/labels.py`` a second time as ``methods.sdd.labels``:
its registration runs twice (``DuplicateNameError: trainer name 'sdd' is
already registered``) and its classes are other objects than the ones
``fiqa_bench`` uses.  ``--pyargs`` only turns the names into those paths.
Importing by name here loads each module once, as the rest of the suite
sees it, in ``-n 2`` workers and in ``-n 0`` alike.
"""

from __future__ import annotations

import doctest
import importlib
import io
import re

import pytest

from conftest import package_modules

EXAMPLE_LINE = re.compile(r"^[ \t]*>>>", re.MULTILINE)
#: ``...`` stands for any text (long floats, tracebacks) and runs of blanks compare equal.
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

MODULES_WITH_EXAMPLES = [
    name for name, path in package_modules().items() if EXAMPLE_LINE.search(path.read_text(encoding="utf-8"))
]


@pytest.mark.parametrize("module_name", MODULES_WITH_EXAMPLES)
def test_docstring_examples(module_name: str) -> None:
    """Every ``>>>`` line of the module is an example doctest finds, and every example passes."""
    path = package_modules()[module_name]
    module = importlib.import_module(module_name)
    tests = [test for test in doctest.DocTestFinder(exclude_empty=True).find(module) if test.examples]

    n_lines = len(EXAMPLE_LINE.findall(path.read_text(encoding="utf-8")))
    n_examples = sum(len(test.examples) for test in tests)
    assert n_examples == n_lines, (
        f"{path} has {n_lines} '>>>' lines but doctest finds {n_examples} examples "
        f"(in {[test.name for test in tests]}): the others never run; examples belong in the docstring "
        "of the module or of one of its top-level functions, classes or methods"
    )

    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    report = io.StringIO()
    for test in tests:
        runner.run(test, out=report.write)
    assert runner.failures == 0, f"{runner.failures} of {runner.tries} examples failed:\n{report.getvalue()}"
