"""Shared fixtures: a private cache per test and the location of real LFW.

Tests that need the real LFW caches built here (a minute or more on 2 cores)
are marked ``slow`` automatically, so ``pytest -m "not slow"`` runs the quick
part of the suite.

The suite runs in two pytest-xdist workers (``-n 2 --dist loadgroup`` in
pyproject.toml).  Each worker, and every command a test starts from it, runs
torch and BLAS on one thread, so the two never fight over the 2 cores.  The
tests that read the session's LFW caches are one group (run by one worker, so
those caches are built once), and so are the files in :data:`GROUPED_FILES`,
whose module fixtures cost more than running them twice; every other test
goes to whichever worker is free.  ``-n 0`` runs everything in one process.
"""

from __future__ import annotations

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    # before numpy and torch load: their thread pools read these once
    for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.pipeline.paths import CHIP_STORE_ENV, default_data_root


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the user's cache, or keeps chips as the user's environment asks."""
    monkeypatch.setenv("FIQA_BENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv(CHIP_STORE_ENV, raising=False)


@pytest.fixture(scope="session")
def lfw_root() -> Path:
    """The data root holding real LFW; tests that need it skip when it is absent."""
    root = default_data_root()
    if not (root / "lfw" / "images_deepfunneled").is_dir():
        pytest.skip(f"real LFW not found under {root} (set FIQA_BENCH_DATA)")
    return root


@pytest.fixture(scope="session")
def lfw_face_jpeg(lfw_root: Path) -> Path:
    """One real LFW image with a clearly detectable face."""
    return lfw_root / "lfw" / "images_deepfunneled" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg"


@pytest.fixture(scope="session")
def retinaface_weights() -> Path:
    """RetinaFace's official weights file; tests that need it skip when it is absent."""
    from fiqa_bench.faces import retinaface

    try:
        return retinaface.weights_file()
    except FileNotFoundError as err:
        pytest.skip(str(err))


SMALL_FOLDER_PEOPLE = ["Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder"]


@pytest.fixture()
def small_folder(tmp_path: Path, lfw_root: Path) -> Path:
    """A folder dataset: 4 people x 4 LFW images, one person with a single image, and a zero-byte file."""
    root = tmp_path / "faces"
    images = lfw_root / "lfw" / "images_deepfunneled"
    for person in SMALL_FOLDER_PEOPLE:
        (root / person).mkdir(parents=True)
        for k in range(1, 5):
            name = f"{person}_{k:04d}.jpg"
            shutil.copy(images / person / name, root / person / name)
    (root / "Aaron_Eckhart").mkdir()
    shutil.copy(images / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg", root / "Aaron_Eckhart")
    (root / SMALL_FOLDER_PEOPLE[0] / "broken.jpg").write_bytes(b"")
    return root


def random_texture(seed: int, size: int = 120) -> np.ndarray:
    """An RGB uint8 image of smooth random texture (no face in it)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
    return np.kron(small, np.ones((8, 8, 1), dtype=np.uint8))


@pytest.fixture(scope="session")
def lfw_devtest_cache(lfw_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding LFW devtest faces, chips, embeddings and stage features of dlib-resnet.

    Built once per test session (about a minute on 2 cores) and shared by
    the tests that need real LFW numbers.
    """
    from fiqa_bench.data import load_dataset
    from fiqa_bench.pipeline.embedding import embed_dataset
    from fiqa_bench.recognition import create_model

    cache = tmp_path_factory.mktemp("lfw-devtest-cache")
    dataset = load_dataset("lfw", lfw_root, "devtest")
    model = create_model("dlib-resnet")
    for output in ("embedding", "stages"):  # what its tests' methods read (sdd, sharpness, random: no backbone)
        embed_dataset(dataset, model, RunContext(cache, progress=False), output=output)
    return cache


@pytest.fixture(scope="session")
def lfw_heldout(lfw_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """LFW images of people the shipped peopleDevTest model never saw, with their cache.

    Every fourth peopleDevTrain person with at least two images, in name
    order, at most 20 images each: 1,318 images of 296 people (no
    randomness, so the same set on every machine).  The cache holds their
    dlib-resnet embeddings and stage features.  Returns ``(dataset, cache)``.
    """
    from fiqa_bench.data import identity_subset, load_dataset
    from fiqa_bench.pipeline.embedding import embed_dataset
    from fiqa_bench.recognition import create_model

    cache = tmp_path_factory.mktemp("lfw-heldout-cache")
    dataset = identity_subset(load_dataset("lfw", lfw_root, "devtrain"), every=4, min_images=2,
                              max_per_identity=20)
    model = create_model("dlib-resnet")
    for output in ("embedding", "stages"):
        embed_dataset(dataset, model, RunContext(cache, progress=False), output=output)
    return dataset, cache


SLOW_FIXTURES = frozenset({"lfw_devtest_cache", "lfw_heldout"})
#: Test files whose module-scoped fixtures are expensive (torchrun with two processes: ~15 s; a .bin cut from LFW: ~40 s).
GROUPED_FILES = frozenset({"test_distributed", "test_bin_against_folder"})


def reads_lfw_caches(item: pytest.Item) -> bool:
    """Whether the test uses one of the session's LFW caches (:data:`SLOW_FIXTURES`)."""
    return bool(SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())))


def pytest_itemcollected(item: pytest.Item) -> None:
    """The slow mark, and the item's pytest-xdist group (given as each item is collected: pytest-xdist reads the
    groups in its own ``pytest_collection_modifyitems``)."""
    if reads_lfw_caches(item):
        item.add_marker(pytest.mark.slow)
        item.add_marker(pytest.mark.xdist_group("lfw-caches"))
    elif item.path.stem in GROUPED_FILES:
        item.add_marker(pytest.mark.xdist_group(item.path.stem))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests on the LFW caches first (a stable sort): the longest unit of work starts at once on one worker
    while the other takes everything else, so neither waits for it at the end."""
    items.sort(key=lambda item: not reads_lfw_caches(item))


#: The installed packages of the project: methods/ and protocols/ install as fiqa_bench.methods and
#: fiqa_bench.protocols (setuptools package-dir in pyproject.toml), so they are found by these names.
PACKAGES = ("fiqa_bench", "fiqa_bench.methods", "fiqa_bench.protocols")


def package_modules() -> dict[str, Path]:
    """Installed module name -> source file, for every module of :data:`PACKAGES`, sorted by name.

    Found on disk without importing the modules (only ``fiqa_bench/__init__.py``, to locate the
    subpackages): a folder is a package when it holds ``__init__.py`` (data folders such as
    ``methods/weights`` are not), ``<folder>/__init__.py`` is the package itself and
    ``<folder>/<stem>.py`` is ``<package>.<stem>``.
    """
    modules: dict[str, Path] = {}

    def walk(package: str, folder: Path) -> None:
        modules[package] = folder / "__init__.py"
        for path in sorted(folder.iterdir()):
            if path.suffix == ".py" and path.name != "__init__.py":
                modules[f"{package}.{path.stem}"] = path
            elif path.is_dir() and (path / "__init__.py").is_file():
                walk(f"{package}.{path.name}", path)

    for package in PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(f"package {package!r} is not installed (pip install -e .)")
        walk(package, Path(spec.origin).parent)
    return dict(sorted(modules.items()))
