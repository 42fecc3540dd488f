"""Nothing lost, nothing silently wrong: the command line killed, resumed, rerun and run twice at once.

Every test runs ``fiqa-bench`` in subprocesses (``python -m fiqa_bench.cli``)
on a folder of 60 real LFW images of 12 people, with a private cache, and
compares the files it writes byte for byte:

* **Interruption.**  ``run`` and ``compare`` are killed with SIGKILL (the
  whole process group) at several points: a fixed time after start, as soon
  as one or more new cache entries or result files appear (stage boundaries),
  and as soon as a new temporary file appears (in the middle of writing a
  shard, a study step or a result).  A final run in the same cache must finish
  and write exactly what an uninterrupted run in a fresh cache writes, leaving
  no temporary file anywhere.
* **Changed inputs.**  An image's content (same path), a method's setting,
  the study's seed, the face detector and a user checkpoint (same path) each
  give new results, equal to those of a fresh cache, never the cached ones.
* **Concurrency.**  Two processes sharing one cache directory, on overlapping
  datasets, both finish; a third run reads the cache and writes what each of
  them wrote; every key is stored once.
* **Determinism.**  Two runs with the same seeds in two fresh caches write
  byte-identical tables, score files and study JSON.  Scope: the same machine
  and the same library versions (torch's kernels differ between CPU families;
  see README.md, "Reproducibility").

``provenance.json`` is compared without ``created_utc`` and ``command`` (the
time, and the command's own ``--cache-dir``/``--out``).  The folder's images
are the same files at the same path in every run that is compared, because
``scores.csv`` and ``table.md`` name them.  The FMRs are the paper's (1e-2,
1e-3, 1e-4), so every AOC is n/a on so few images (an AOC needs 10/FMR impostor
comparisons left at 95% discarded); 60 images give 1,650 impostor comparisons,
enough for the FMR = 1e-2 curves (thresholds, FNMR, the random band in the
figures) to hold numbers that depend on every embedding and score.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

PEOPLE = ("Ariel_Sharon", "Colin_Powell", "Donald_Rumsfeld", "George_W_Bush", "Gerhard_Schroeder",
          "Hugo_Chavez", "Jacques_Chirac", "Jean_Chretien", "John_Ashcroft", "Junichiro_Koizumi",
          "Serena_Williams", "Tony_Blair")
IMAGES_PER_PERSON = 5
STUDY = ("--protocol", "evrc", "--n-boot", "4", "--random-seeds", "3")
#: provenance.json fields that differ between any two runs.
VOLATILE = ("created_utc", "command")
#: Longest a single command may take here before the test gives up (seconds).
COMMAND_TIMEOUT = 300

#: Each test runs the command line several times on real LFW images: 10-40 s each on 2 cores.
pytestmark = pytest.mark.slow


def copy_people(lfw_root: Path, root: Path, people: tuple[str, ...] = PEOPLE) -> Path:
    """A folder dataset ``root/<person>/<person>_000k.jpg``, k = 1..5, copied from real LFW."""
    images = lfw_root / "lfw" / "images_deepfunneled"
    for person in people:
        (root / person).mkdir(parents=True, exist_ok=True)
        for k in range(1, IMAGES_PER_PERSON + 1):
            name = f"{person}_{k:04d}.jpg"
            shutil.copyfile(images / person / name, root / person / name)
    return root


@pytest.fixture(scope="module")
def faces(lfw_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 LFW images of 12 people, never modified (the tests that change an image copy it first)."""
    return copy_people(lfw_root, tmp_path_factory.mktemp("faces") / "data")


@pytest.fixture(scope="module")
def few_faces(lfw_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 LFW images of 4 people, for the tests that score only."""
    return copy_people(lfw_root, tmp_path_factory.mktemp("few-faces") / "data", PEOPLE[:4])


def command(args: tuple[str, ...] | list[str], cache: Path) -> list[str]:
    """The ``fiqa-bench`` command line with a private cache, one alignment process and no progress bars."""
    return [sys.executable, "-m", "fiqa_bench.cli", *args, "--cache-dir", str(cache), "--workers", "1", "--quiet"]


def run_cli(args: tuple[str, ...] | list[str], cache: Path, cwd: Path) -> str:
    """Run ``fiqa-bench args`` to completion; fail the test with its stderr if it fails."""
    done = subprocess.run(command(args, cache), cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    if done.returncode != 0:
        pytest.fail(f"fiqa-bench {' '.join(args)} exited with {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``fresh(*args)``: the results of ``fiqa-bench args --out OUT`` run once in a fresh cache (memoised)."""
    done: dict[tuple[str, ...], Path] = {}

    def run(*args: str) -> Path:
        if args not in done:
            base = tmp_path_factory.mktemp("fresh")
            run_cli([*args, "--out", str(base / "out")], base / "cache", base)
            done[args] = base / "out"
        return done[args]

    return run


# --- comparing results ------------------------------------------------------------------------------


def files_under(folder: Path) -> list[str]:
    """Every file below ``folder``, as sorted relative paths (hidden ones included)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def stable_provenance(path: Path) -> dict:
    stamp = json.loads(path.read_text())
    for key in VOLATILE:
        stamp.pop(key, None)
    return stamp


def assert_same_results(got: Path, want: Path) -> None:
    """The same files, byte for byte (provenance.json without its volatile fields)."""
    assert files_under(got) == files_under(want)
    for name in files_under(want):
        if Path(name).name == "provenance.json":
            assert stable_provenance(got / name) == stable_provenance(want / name), name
        else:
            assert (got / name).read_bytes() == (want / name).read_bytes(), f"{name} differs"


def files_now(*folders: Path) -> tuple[set[str], set[str]]:
    """``(finished, temporaries)`` below ``folders`` in one walk: cache entries and results (not hidden
    temporaries or locks), and temporary files (``.*.tmp``).  The kill loop polls this every 5 ms, so it walks
    with ``os.walk`` once rather than globbing twice: the poller leaves the cores to the run it watches."""
    finished, temporary = set(), set()
    for folder in folders:
        for root, _, names in os.walk(folder):
            for name in names:
                if not name.startswith("."):
                    finished.add(os.path.join(root, name))
                elif name.endswith(".tmp"):
                    temporary.add(os.path.join(root, name))
    return finished, temporary


def temporaries(*folders: Path) -> list[str]:
    """Temporary files (``.*.tmp``) anywhere below ``folders``."""
    return sorted(files_now(*folders)[1])


def visible_files(*folders: Path) -> set[str]:
    """Finished files below ``folders``: cache entries and results (not hidden temporaries or locks)."""
    return files_now(*folders)[0]


# --- killing a run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kill:
    """When to SIGKILL one attempt: ``after`` seconds from its start, or once ``new_files`` finished files
    appeared since it started, or (``mid_write``) as soon as a new temporary file appears."""

    after: float | None = None
    new_files: int | None = None
    mid_write: bool = False

    def due(self, started: float, before: set[str], temps_before: set[str], folders: tuple[Path, ...]) -> bool:
        if self.after is not None and time.monotonic() - started >= self.after:
            return True
        if self.new_files is None and not self.mid_write:
            return False
        finished, temporary = files_now(*folders)
        if self.new_files is not None and len(finished - before) >= self.new_files:
            return True
        return self.mid_write and bool(temporary - temps_before)


def attempt(args: list[str], cache: Path, cwd: Path, kill: Kill, watch: tuple[Path, ...]) -> bool:
    """Start ``fiqa-bench args`` and SIGKILL its process group when ``kill`` is due.

    Returns True when it was killed, False when it finished first (successfully: a failure fails the test).
    """
    before, temps_before = files_now(*watch)
    log = cwd / "attempt.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(command(args, cache), cwd=cwd, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)
        started = time.monotonic()
        try:
            while proc.poll() is None:
                if kill.due(started, before, temps_before, watch):
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:  # it ended on its own meanwhile
                        pass
                    proc.wait()
                    if proc.returncode == -signal.SIGKILL:
                        return True
                    break  # it ended on its own just before: judged below
                if time.monotonic() - started > COMMAND_TIMEOUT:
                    pytest.fail(f"fiqa-bench {' '.join(args)} ran for more than {COMMAND_TIMEOUT} s")
                time.sleep(0.005)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if proc.returncode != 0:
        pytest.fail(f"fiqa-bench {' '.join(args)} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
    return False


def run_with_kills(args: list[str], tmp_path: Path, schedule: list[Kill]) -> tuple[Path, Path, int]:
    """``fiqa-bench args`` killed as ``schedule`` says, attempt after attempt, then run to the end.

    Returns (results folder, cache, number of attempts killed).
    """
    cache, out = tmp_path / "cache", tmp_path / "out"
    full = [*args, "--out", str(out)]
    kills = 0
    for kill in schedule:
        started = time.monotonic()
        if not attempt(full, cache, tmp_path, kill, (cache, out)):
            break  # finished before the kill was due: nothing left to interrupt
        kills += 1
        print(f"{args[0]} killed ({kill}) after {time.monotonic() - started:.1f} s: "
              f"{len(visible_files(cache, out))} files, {len(temporaries(cache, out))} temporaries")
    else:
        run_cli(full, cache, tmp_path)
    return out, cache, kills


#: Kill points: during start-up, at stage boundaries (once 1, 2 or 3 new cache entries or result files
#: exist) and in the middle of writing a shard, a study step or a result (as soon as a new temporary
#: exists).  Every second attempt waits for a finished file, so the run gets on.
SCHEDULE = [Kill(after=1.0), Kill(new_files=1), Kill(mid_write=True, new_files=2), Kill(new_files=2),
            Kill(mid_write=True, new_files=1), Kill(new_files=3), Kill(mid_write=True, new_files=2)]


@pytest.mark.parametrize("method", ["sharpness", "sdd"])
def test_run_killed_at_many_points_resumes_to_identical_results(
    method: str, faces: Path, fresh: Callable[..., Path], tmp_path: Path,
) -> None:
    args = ["run", "--method", method, *STUDY, "--dataset", f"folder:{faces}"]
    out, cache, kills = run_with_kills(args, tmp_path, SCHEDULE)
    assert kills >= 5, f"only {kills} attempts were killed before the run finished"
    assert_same_results(out, fresh(*args))
    assert not temporaries(cache, out), "a killed writer's temporary file was left behind"


def test_compare_killed_at_many_points_resumes_to_identical_results(
    faces: Path, fresh: Callable[..., Path], tmp_path: Path,
) -> None:
    args = ["compare", "--methods", "sdd,random", *STUDY, "--dataset", f"folder:{faces}"]
    out, cache, kills = run_with_kills(args, tmp_path, SCHEDULE)
    assert kills >= 5, f"only {kills} attempts were killed before the run finished"
    reference = fresh(*args)
    assert {"scores/sdd.csv", "scores/random.csv"} <= set(files_under(reference))
    assert_same_results(out, reference)
    assert not temporaries(cache, out)


def test_same_seeds_give_byte_identical_results_in_fresh_caches(
    faces: Path, fresh: Callable[..., Path], tmp_path: Path,
) -> None:
    """Determinism on one machine with one set of library versions (the scope README.md states)."""
    args = ["compare", "--methods", "sdd,random", *STUDY, "--dataset", f"folder:{faces}"]
    run_cli([*args, "--out", str(tmp_path / "out")], tmp_path / "cache", tmp_path)
    assert_same_results(tmp_path / "out", fresh(*args))
    # A rerun in the now warm cache writes the same files again.
    run_cli([*args, "--out", str(tmp_path / "again")], tmp_path / "cache", tmp_path)
    assert_same_results(tmp_path / "again", fresh(*args))


# --- changed inputs give new results ----------------------------------------------------------------


def read_scores(path: Path) -> dict[str, tuple[str, str]]:
    """path -> (quality, face) of a ``score`` CSV."""
    lines = path.read_text().splitlines()
    assert lines[0] == "path,identity,quality,native,face,reason"
    return {row.split(",")[0]: (row.split(",")[2], row.split(",")[4]) for row in lines[1:]}


def test_changed_image_content_at_the_same_path_is_scored_anew(
    lfw_root: Path, tmp_path: Path,
) -> None:
    """The new image is aligned, embedded and scored anew; the others come from the cache unchanged.

    Its score equals a fresh cache's to float32 precision, not bit for bit: the recognition network
    computes it alone here and in a batch with the others there, and torch's CPU kernels give the last
    bits of a sample's output by batch size (a resumed run recomputes whole chunks, so it is exact).
    """
    data = copy_people(lfw_root, tmp_path / "data", PEOPLE[:4])
    args = ["score", "--method", "sdd", "--dataset", f"folder:{data}"]
    cache = tmp_path / "cache"
    run_cli([*args, "--out", str(tmp_path / "before.csv")], cache, tmp_path)
    changed = str(data / PEOPLE[0] / f"{PEOPLE[0]}_0001.jpg")
    other = lfw_root / "lfw" / "images_deepfunneled" / PEOPLE[5] / f"{PEOPLE[5]}_0001.jpg"
    shutil.copy2(other, changed)  # new bytes, same path (and the other file's modification time)
    run_cli([*args, "--out", str(tmp_path / "after.csv")], cache, tmp_path)
    run_cli([*args, "--out", str(tmp_path / "fresh.csv")], tmp_path / "fresh-cache", tmp_path)
    before, after, fresh = (read_scores(tmp_path / f"{name}.csv") for name in ("before", "after", "fresh"))
    assert float(after[changed][0]) == pytest.approx(float(fresh[changed][0]), rel=1e-5)
    assert float(after[changed][0]) != pytest.approx(float(before[changed][0]), rel=1e-3)
    del before[changed], after[changed], fresh[changed]
    assert after == before == fresh


@pytest.mark.parametrize(("method", "first", "second"), [
    ("random", "seed=0", "seed=1"),
    ("sharpness", "template=dlib150", "template=arcface112"),
])
def test_changed_method_setting_is_scored_anew(
    method: str, first: str, second: str, few_faces: Path, tmp_path: Path,
) -> None:
    args = ["score", "--method", method, "--dataset", f"folder:{few_faces}"]
    cache = tmp_path / "cache"
    run_cli([*args, "--set", first, "--out", str(tmp_path / "first.csv")], cache, tmp_path)
    run_cli([*args, "--set", second, "--out", str(tmp_path / "second.csv")], cache, tmp_path)
    run_cli([*args, "--set", second, "--out", str(tmp_path / "fresh.csv")], tmp_path / "fresh-cache", tmp_path)
    a, b = read_scores(tmp_path / "first.csv"), read_scores(tmp_path / "second.csv")
    assert all(a[p][0] != b[p][0] for p in a), "some scores were read from the other setting's cache"
    assert (tmp_path / "second.csv").read_bytes() == (tmp_path / "fresh.csv").read_bytes()


def test_changed_study_seed_gives_a_new_study(faces: Path, fresh: Callable[..., Path], tmp_path: Path) -> None:
    args = ["run", "--method", "random", *STUDY, "--dataset", f"folder:{faces}"]
    cache = tmp_path / "cache"
    run_cli([*args, "--seed", "0", "--out", str(tmp_path / "seed0")], cache, tmp_path)
    steps = set((cache / "studies").glob("*.json"))
    run_cli([*args, "--seed", "1", "--out", str(tmp_path / "seed1")], cache, tmp_path)
    assert len(set((cache / "studies").glob("*.json")) - steps) == 3 + 1  # every random seed and bootstrap step anew
    seed0, seed1 = tmp_path / "seed0", tmp_path / "seed1"
    assert (seed0 / "scores.csv").read_bytes() == (seed1 / "scores.csv").read_bytes()  # the method's own seed is 0
    # dlib-resnet makes no error on these people at FMR 1e-2, so the random band's curves are the same for
    # every seed; that no step was reused is what shows the seed is part of the key.
    assert (seed0 / "study.json").read_bytes() != (seed1 / "study.json").read_bytes()
    assert_same_results(seed1, fresh(*args, "--seed", "1"))


def test_changed_detector_aligns_anew(few_faces: Path, tmp_path: Path) -> None:
    args = ["score", "--method", "sharpness", "--dataset", f"folder:{few_faces}"]
    cache = tmp_path / "cache"
    run_cli([*args, "--out", str(tmp_path / "hog.csv")], cache, tmp_path)
    run_cli([*args, "--detector", "retinaface", "--out", str(tmp_path / "retinaface.csv")], cache, tmp_path)
    hog, retina = read_scores(tmp_path / "hog.csv"), read_scores(tmp_path / "retinaface.csv")
    assert {face for _, face in hog.values()} == {"found by hog"}
    assert {face for _, face in retina.values()} == {"found by retinaface"}
    assert sum(hog[p][0] != retina[p][0] for p in hog) >= len(hog) - 2  # other chips, other sharpness
    assert len(list((cache / "faces").iterdir())) == 2  # one store per alignment setting


def test_changed_user_checkpoint_at_the_same_path_is_scored_anew(few_faces: Path, tmp_path: Path) -> None:
    """A trained method's scores are keyed by its checkpoint's sha256, not by its path."""
    import torch

    from fiqa_bench.method.learned import shipped_checkpoint

    payload = torch.load(shipped_checkpoint("sdd", "lfw:devtrain"), map_location="cpu", weights_only=True)
    user = tmp_path / "mine" / "sdd-user.pt"
    user.parent.mkdir()

    def save(scale: float) -> None:
        state = {k: v * scale if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
        torch.save({**payload, "state_dict": state}, user)

    args = ["score", "--method", "sdd", "--weights", str(user), "--dataset", f"folder:{few_faces}"]
    cache = tmp_path / "cache"
    save(1.0)
    run_cli([*args, "--out", str(tmp_path / "first.csv")], cache, tmp_path)
    save(0.5)
    run_cli([*args, "--out", str(tmp_path / "second.csv")], cache, tmp_path)
    run_cli([*args, "--out", str(tmp_path / "fresh.csv")], tmp_path / "fresh-cache", tmp_path)
    first, second = read_scores(tmp_path / "first.csv"), read_scores(tmp_path / "second.csv")
    assert all(first[p][0] != second[p][0] for p in first)
    assert (tmp_path / "second.csv").read_bytes() == (tmp_path / "fresh.csv").read_bytes()
    assert len(list((cache / "scores").iterdir())) == 2  # one store per checkpoint digest


# --- two processes, one cache -----------------------------------------------------------------------


def start(args: list[str], cache: Path, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(command(args, cache), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=COMMAND_TIMEOUT)
    if proc.returncode != 0:
        pytest.fail(f"a concurrent fiqa-bench exited with {proc.returncode}:\n{err[-3000:]}")


def stored_keys(store_root: Path) -> list[str]:
    """Every key of every shard below ``store_root`` (a key stored twice appears twice)."""
    keys: list[str] = []
    for shard in sorted(store_root.rglob("shard-*.npz")):
        with np.load(shard) as data:
            keys += data["keys"].tolist()
    return keys


def same_output(a: Path, b: Path) -> bool:
    """Whether two ``score`` CSVs are identical, or two ``embed`` npz hold identical arrays (an npz's
    zip entries carry the time they were written)."""
    if a.suffix == ".csv":
        return a.read_bytes() == b.read_bytes()
    with np.load(a) as x, np.load(b) as y:
        return sorted(x.files) == sorted(y.files) and all(
            x[k].dtype == y[k].dtype and x[k].tobytes() == y[k].tobytes() for k in x.files)


@pytest.mark.parametrize("job", ["score", "embed"])
def test_two_processes_sharing_a_cache_agree_with_a_third(job: str, lfw_root: Path, tmp_path: Path) -> None:
    """Two datasets sharing 4 of their 8 people (other paths, same bytes: the same cache keys), run at once.

    An embedding can differ in its last bits with the batch it was computed in, so both processes may
    compute a shared image differently; the cache keeps the first row written and both read that one.
    """
    first = copy_people(lfw_root, tmp_path / "first", PEOPLE[:8])
    second = copy_people(lfw_root, tmp_path / "second", PEOPLE[4:])
    what = ["score", "--method", "sharpness"] if job == "score" else ["embed", "--model", "dlib-resnet"]
    suffix = ".csv" if job == "score" else ".npz"
    cache = tmp_path / "cache"
    procs = [start([*what, "--dataset", f"folder:{data}", "--out", str(tmp_path / f"{data.name}-together{suffix}")],
                   cache, tmp_path) for data in (first, second)]
    for proc in procs:
        finish(proc)
    for data in (first, second):
        run_cli([*what, "--dataset", f"folder:{data}", "--out", str(tmp_path / f"{data.name}-after{suffix}")],
                cache, tmp_path)
        together, after = tmp_path / f"{data.name}-together{suffix}", tmp_path / f"{data.name}-after{suffix}"
        assert same_output(together, after), f"{data.name}: the cache disagrees with the process that wrote it"
    for store in ("faces", "chips", "scores" if job == "score" else "embeddings"):
        keys = stored_keys(cache / store)
        assert len(keys) == len(set(keys)) == len(PEOPLE) * IMAGES_PER_PERSON, f"{store}: a key stored twice or lost"
    assert not temporaries(cache)
