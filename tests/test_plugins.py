"""Methods (and the other registries' entries) from outside the repository: installed packages' entry
points, ``--plugin FILE.py|MODULE`` and ``$FIQA_BENCH_PLUGINS``; a plugin that fails is named in one line
and skipped, and whatever it registered is taken back.

The end-to-end test builds a tiny distribution in a temporary folder, installs it with pip into a
temporary path (``--target``, offline, without build isolation: setuptools comes with torch) and runs
``fiqa-bench list methods`` and ``fiqa-bench score`` in new processes that have that path on theirs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from fiqa_bench.registry import PLUGINS_ENV, DuplicateNameError, Registry, UnknownNameError, load_plugin, plugin_failures

#: A method module as a user would write it outside the repository (the README's recipe, renamed).
TINY_METHOD = '''
import numpy as np

from fiqa_bench.method import METHODS, MethodCard, QualityMethod


class TinyContrast(QualityMethod):
    """Standard deviation of the grey chip, in [0, 1]."""

    card = MethodCard(name="tiny-contrast", paper="a test plugin", higher_is_better=True,
                      needs="chips:dlib150", trained=False, weights="none")

    def native_score(self, chips: np.ndarray) -> np.ndarray:
        grey = chips.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        return grey.reshape(len(chips), -1).std(axis=1) / 255


METHODS.add("tiny-contrast", TinyContrast, description="grey-level contrast, from an installed plugin")
'''

BUILT_IN_METHODS = {"brisque", "cr-fiqa", "faceqnet-v0", "faceqnet-v1", "feature-norm", "lightqnet", "pcnet", "pfe",
                    "pose", "random", "sdd", "serfiq", "sharpness"}


def cli(*args: str, env_extra: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``fiqa-bench ARGS`` in a new process (so that what a plugin registers stays out of this one)."""
    env = {k: v for k, v in os.environ.items() if k != PLUGINS_ENV}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "fiqa_bench.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


def listed(stdout: str) -> dict[str, str]:
    return {line.split()[0]: line for line in stdout.splitlines() if line.strip()}


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A distribution with a good and a broken ``fiqa_bench.methods`` entry point, pip-installed into a path."""
    root = tmp_path_factory.mktemp("plugin")
    source = root / "src"
    package = source / "fiqa_tiny"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "method.py").write_text(TINY_METHOD)
    (package / "broken.py").write_text("import a_module_that_is_not_there_zz  # noqa\n")
    (source / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "fiqa-tiny-plugin"
        version = "0.1"

        [project.entry-points."fiqa_bench.methods"]
        tiny = "fiqa_tiny.method"
        broken = "fiqa_tiny.broken"

        [tool.setuptools]
        packages = ["fiqa_tiny"]
    '''))
    target = root / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                           "--no-build-isolation", "--target", str(target), str(source)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert list(target.glob("fiqa_tiny_plugin-0.1.dist-info/entry_points.txt"))
    return target


def test_an_installed_plugin_is_listed_and_scores_and_a_broken_one_is_named_once(
        installed_plugin: Path, small_folder: Path, tmp_path: Path):
    env = {"PYTHONPATH": str(installed_plugin)}
    done = cli("list", "methods", env_extra=env)
    assert done.returncode == 0, done.stderr
    methods = listed(done.stdout)
    assert BUILT_IN_METHODS | {"tiny-contrast"} == set(methods)
    assert "[plugin: fiqa_tiny.method (entry point 'tiny' of fiqa_bench.methods)]" in methods["tiny-contrast"]
    assert "[plugin" not in methods["sdd"]
    warnings = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1, done.stderr
    assert "plugin fiqa_tiny.broken (entry point 'broken' of fiqa_bench.methods) failed to load and is skipped: " \
           "ModuleNotFoundError: No module named 'a_module_that_is_not_there_zz'" in warnings[0]

    out = tmp_path / "tiny.csv"
    done = cli("score", "--method", "tiny-contrast", "--dataset", f"folder:{small_folder}", "--out", str(out),
               "--cache-dir", str(tmp_path / "cache"), "--quiet", "--workers", "1", env_extra=env)
    assert done.returncode == 0, done.stderr
    rows = out.read_text().splitlines()
    assert rows[0].startswith("path,identity,quality") and len(rows) == 1 + 18
    qualities = [float(r.split(",")[2]) for r in rows[1:] if r.split(",")[2]]
    assert len(qualities) == 17 and all(0 < q < 0.5 for q in qualities)  # the zero-byte file has none

    done = cli("score", "--method", "tiny-contrsat", "--dataset", f"folder:{small_folder}", env_extra=env)
    assert done.returncode == 2
    error = done.stderr.strip().splitlines()[-1]
    assert "did you mean 'tiny-contrast'?" in error and "plugins that failed to load: fiqa_tiny.broken" in error

    done = cli("list", "methods")  # without the path the plugin is not there, and nothing complains
    assert done.returncode == 0 and "tiny-contrast" not in done.stdout and not done.stderr.strip()


def test_a_plugin_file_on_the_command_line(tmp_path: Path, small_folder: Path):
    plugin = tmp_path / "my_method.py"
    plugin.write_text(TINY_METHOD)
    clash = tmp_path / "clash.py"
    clash.write_text(TINY_METHOD.replace("tiny-contrast", "clash-first") + TINY_METHOD.replace(
        '"tiny-contrast"', '"sdd"').replace("class TinyContrast", "class Second"))
    missing = tmp_path / "not_there.py"
    done = cli("list", "methods", "--plugin", str(plugin), "--plugin", str(clash), "--plugin", str(missing))
    assert done.returncode == 0, done.stderr
    methods = listed(done.stdout)
    assert BUILT_IN_METHODS | {"tiny-contrast"} == set(methods)  # clash-first was taken back with its plugin
    assert methods["sdd"].split(None, 1)[1].startswith("SDD-FIQA (CVPR 2021)")
    warnings = [line for line in done.stderr.splitlines() if line.strip()]
    assert warnings == [
        f"fiqa-bench: warning: plugin {clash} failed to load and is skipped: "
        "DuplicateNameError: method name 'sdd' is already registered",
        f"fiqa-bench: warning: plugin {missing} failed to load and is skipped: "
        f"FileNotFoundError: no such file: {missing}",
    ]
    out = tmp_path / "scores.csv"
    done = cli("--plugin", str(plugin), "score", "--method", "tiny-contrast", "--dataset", f"folder:{small_folder}",
               "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--quiet", "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert len(out.read_text().splitlines()) == 1 + 18
    done = cli("list", "methods", env_extra={PLUGINS_ENV: str(plugin)})  # what --plugin hands to worker processes
    assert done.returncode == 0 and "tiny-contrast" in listed(done.stdout)


@pytest.fixture()
def zoo(monkeypatch: pytest.MonkeyPatch) -> Registry:
    """A registry a plugin file can import (module ``fiqa_test_zoo``), and a clean ``$FIQA_BENCH_PLUGINS``."""
    registry: Registry = Registry("animal")
    registry.add("cat", "meow", description="a built-in animal")
    module = types.ModuleType("fiqa_test_zoo")
    module.ANIMALS = registry  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fiqa_test_zoo", module)
    monkeypatch.setenv(PLUGINS_ENV, "")
    return registry


def test_load_plugin_registers_marks_the_origin_and_hands_the_plugin_to_child_processes(zoo: Registry,
                                                                                       tmp_path: Path):
    plugin = tmp_path / "dogs.py"
    plugin.write_text("from fiqa_test_zoo import ANIMALS\nANIMALS.add('dog', 'woof', description='barks', "
                      "aliases=('hound',))\n")
    assert load_plugin(str(plugin))
    assert zoo.get("hound") == "woof" and zoo.entry("dog").origin == str(plugin) and zoo.entry("cat").origin == ""
    assert os.environ[PLUGINS_ENV] == str(plugin.resolve())
    assert load_plugin(str(plugin))  # a second time: nothing happens (no duplicate-name error)
    assert os.environ[PLUGINS_ENV] == str(plugin.resolve())
    with pytest.raises(UnknownNameError, match="did you mean 'dog'"):
        zoo.get("dgo")


def test_a_failing_plugin_is_taken_back_and_reported_in_one_line(zoo: Registry, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture):
    plugin = tmp_path / "half.py"
    plugin.write_text("from fiqa_test_zoo import ANIMALS\nANIMALS.add('cow', 'moo', description='moos', "
                      "aliases=('bull',))\nraise RuntimeError('the plugin broke\\nover two lines')\n")
    before = len(plugin_failures())
    assert not load_plugin(str(plugin))
    assert "cow" not in zoo and "bull" not in zoo and zoo.names() == ["cat"]
    err = capsys.readouterr().err
    assert err == (f"fiqa-bench: warning: plugin {plugin} failed to load and is skipped: "
                   "RuntimeError: the plugin broke over two lines\n")
    assert [str(f) for f in plugin_failures()[before:]] == [err.split("warning: ", 1)[1].strip()]
    assert os.environ[PLUGINS_ENV] == ""  # a failed plugin is not handed on
    with pytest.raises(UnknownNameError, match=r"plugins that failed to load: .*half\.py"):
        zoo.get("cow")
    assert not load_plugin("a_module_that_is_not_there_zz")
    assert "ModuleNotFoundError" in capsys.readouterr().err


def test_a_plugin_cannot_take_a_built_in_name_even_before_the_built_ins_were_read(tmp_path: Path,
                                                                                    monkeypatch: pytest.MonkeyPatch):
    """The first add() loads the registry's built-in package, so the built-in wins whatever the order."""
    package = tmp_path / "zoo_builtins"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "cats.py").write_text("from fiqa_test_lazy_zoo import ANIMALS\n"
                                     "ANIMALS.add('cat', 'meow', description='built in')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry: Registry = Registry("animal", plugins="zoo_builtins")
    module = types.ModuleType("fiqa_test_lazy_zoo")
    module.ANIMALS = registry  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fiqa_test_lazy_zoo", module)
    monkeypatch.setenv(PLUGINS_ENV, "")
    plugin = tmp_path / "impostor.py"
    plugin.write_text("from fiqa_test_lazy_zoo import ANIMALS\nANIMALS.add('cat', 'woof', description='not a cat')\n")
    assert not load_plugin(str(plugin))
    assert registry.get("cat") == "meow" and registry.entry("cat").origin == ""
    with pytest.raises(DuplicateNameError):
        registry.add("cat", "again", description="a second built-in")


def test_a_plugin_detector_reaches_the_spawned_alignment_workers(tmp_path: Path, small_folder: Path):
    """Alignment runs in spawned processes, which import nothing of the parent: ``--plugin`` reaches them
    through ``$FIQA_BENCH_PLUGINS``, or they would not know the detector."""
    plugin = tmp_path / "hog_again.py"
    plugin.write_text(textwrap.dedent('''
        from dataclasses import replace

        from fiqa_bench.faces.detector import register
        from fiqa_bench.faces.detectors.hog import HOGDetector


        @register
        class HOGAgain(HOGDetector):
            """dlib's HOG detector under another name."""

            card = replace(HOGDetector.card, name="hog-again", description="HOG, registered by a plugin",
                           named_in_digest=True)
    '''))
    done = cli("list", "detectors", "--plugin", str(plugin))
    assert done.returncode == 0 and "hog-again" in listed(done.stdout), done.stderr
    out = tmp_path / "sharpness.csv"
    done = cli("score", "--plugin", str(plugin), "--detector", "hog-again", "--workers", "2", "--method", "sharpness",
               "--dataset", f"folder:{small_folder}", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
               "--quiet")
    assert done.returncode == 0, done.stderr
    rows = out.read_text().splitlines()[1:]
    assert len(rows) == 18 and sum(1 for r in rows if r.split(",")[2]) == 17
