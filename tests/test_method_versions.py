"""Each method's code version is reconsidered whenever its file changes.

A method's scores are cached under its fingerprint, which holds its card's
``version`` (:attr:`fiqa_bench.method.QualityMethod.version`), so cached
scores survive any edit that leaves the version alone.  This test keeps, per
registered method, the version and the sha256 of the file that defines it
(``tests/data/method_versions.json``) and fails when either moved without the
other being recorded: the person editing a method must decide whether the
change can alter a score (then bump ``version``) or not (then only record the
new hash).  Record with ``python tests/test_method_versions.py --record``.

Scope: the method's own file (or its package's files, for a method that is a folder).  Shared code (the pipeline, the recognition
models, the regression heads) is covered by the model fingerprints, the
checkpoint digests and the alignment settings in the other cache keys, not by
this record.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
from pathlib import Path

from fiqa_bench.method import METHODS, method_class

RECORD = Path(__file__).parent / "data" / "method_versions.json"
REPO = Path(__file__).resolve().parents[1]


def source_digest(source: Path) -> str:
    """sha256 of the method's file, or, for a method that is a package (``methods/sdd/``), of every
    ``.py`` file of the package in name order (its labeller is as much the method as its class)."""
    if source.name != "__init__.py":
        return hashlib.sha256(source.read_bytes()).hexdigest()
    digest = hashlib.sha256()
    for path in sorted(source.parent.rglob("*.py")):
        digest.update(path.relative_to(source.parent).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def current() -> dict[str, dict[str, object]]:
    """Per registered method: its card's version and its defining file (relative path, sha256)."""
    out = {}
    for name in METHODS.names():
        cls = method_class(name)
        source = Path(inspect.getsourcefile(cls)).resolve()
        shown = source.relative_to(REPO) if source.is_relative_to(REPO) else Path("fiqa_bench/methods") / source.name
        out[name] = {"version": cls.version, "file": shown.as_posix(), "sha256": source_digest(source)}
    return out


def test_every_method_file_change_was_weighed_against_its_version():
    recorded = json.loads(RECORD.read_text(encoding="utf-8"))
    now = current()
    assert sorted(now) == sorted(recorded), (
        f"methods registered now {sorted(now)} differ from those recorded {sorted(recorded)}: "
        f"run python tests/test_method_versions.py --record")
    for name, entry in now.items():
        old = recorded[name]
        if entry["sha256"] != old["sha256"] and entry["version"] == old["version"]:
            raise AssertionError(
                f"{entry['file']} changed but method {name!r} is still version {entry['version']}: if the change "
                f"can alter a score, bump its class's version (cached scores are then recomputed); either way, "
                f"record it with python tests/test_method_versions.py --record")
        assert entry == {**old, "file": entry["file"]}, (
            f"method {name!r} is version {entry['version']} (recorded {old['version']}): record it with "
            f"python tests/test_method_versions.py --record")


def test_the_version_is_part_of_the_score_cache_key():
    sharpness = method_class("sharpness")

    class NextVersion(sharpness):  # type: ignore[misc, valid-type]
        version = sharpness.version + 1

    assert NextVersion().fingerprint() != sharpness().fingerprint()


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    RECORD.write_text(json.dumps(current(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"recorded {RECORD}")
