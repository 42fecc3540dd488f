"""Where things live: the dataset root, the cache, and dlib's model files.

Every location can be overridden, by a command-line option or an environment
variable; the defaults are chosen to work in this repository's checkout.

* Dataset root: ``--data-root`` > ``$FIQA_BENCH_DATA`` > ``../shared/datasets``
  next to the repository (or the current directory) when it exists.
* Cache: ``--cache-dir`` > ``$FIQA_BENCH_CACHE`` > ``~/.cache/fiqa-bench``;
  how it keeps aligned chips: ``--chip-store`` > ``$FIQA_BENCH_CHIP_STORE`` >
  ``raw`` (:mod:`fiqa_bench.pipeline.chips`).
* Published model files read in place (one folder per model, e.g.
  ``lightqnet/``): a method's ``model_dir`` setting > ``$FIQA_BENCH_MODELS``
  > ``models/`` beside the dataset root (``../shared/models`` here).
* dlib's pretrained files: ``$FIQA_BENCH_DLIB_MODELS`` > the ``models/``
  folder of the installed ``face-recognition-models`` package.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

DATA_ENV = "FIQA_BENCH_DATA"
CACHE_ENV = "FIQA_BENCH_CACHE"
DLIB_MODELS_ENV = "FIQA_BENCH_DLIB_MODELS"
MODELS_ENV = "FIQA_BENCH_MODELS"
CHIP_STORE_ENV = "FIQA_BENCH_CHIP_STORE"

#: How the cache may keep aligned chips (:mod:`fiqa_bench.pipeline.chips`), the default first.
CHIP_STORES = ("raw", "webp", "none")

REPO_ROOT = Path(__file__).resolve().parents[2]


def default_data_root() -> Path:
    """The dataset root used when neither option nor environment names one."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    for base in (REPO_ROOT, Path.cwd()):
        candidate = base.parent / "shared" / "datasets"
        if candidate.is_dir():
            return candidate
    return REPO_ROOT.parent / "shared" / "datasets"


def default_models_root() -> Path:
    """The folder of published model files: ``$FIQA_BENCH_MODELS``, else ``models/`` beside the dataset root."""
    env = os.environ.get(MODELS_ENV)
    if env:
        return Path(env).expanduser()
    return default_data_root().parent / "models"


def resolve_data_root(option: str | os.PathLike[str] | None) -> Path:
    """The dataset root: the option when given, else :func:`default_data_root`."""
    return Path(option).expanduser() if option else default_data_root()


def resolve_cache_dir(option: str | os.PathLike[str] | None = None) -> Path:
    """The cache directory: option > ``$FIQA_BENCH_CACHE`` > ``~/.cache/fiqa-bench``."""
    if option:
        return Path(option).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "fiqa-bench"


def resolve_chip_store(option: str | None = None) -> str:
    """How the cache keeps chips: option > ``$FIQA_BENCH_CHIP_STORE`` > ``raw``.

    Raises:
        ValueError: the name is not one of :data:`CHIP_STORES` (the message says where it came from).
    """
    kind = option or os.environ.get(CHIP_STORE_ENV) or CHIP_STORES[0]
    if kind not in CHIP_STORES:
        source = "--chip-store" if option else f"${CHIP_STORE_ENV}"
        raise ValueError(f"unknown chip store {kind!r} (from {source}); known: {', '.join(CHIP_STORES)}")
    return kind


def dlib_model_file(name: str) -> Path:
    """Path of one of dlib's pretrained files, e.g. ``shape_predictor_5_face_landmarks.dat``.

    The ``face_recognition_models`` package is located without importing it:
    its ``__init__`` imports ``pkg_resources``, which current setuptools no
    longer ships.
    """
    env = os.environ.get(DLIB_MODELS_ENV)
    if env:
        folder = Path(env).expanduser()
    else:
        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                "dlib's model files were not found: install the 'face-recognition-models' "
                f"package or set ${DLIB_MODELS_ENV} to a folder holding {name}"
            )
        folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    path = folder / name
    if not path.is_file():
        raise FileNotFoundError(f"dlib model file {path} does not exist")
    return path
