"""Datasets and how they are named on the command line.

``--dataset lfw`` (with ``--split all|devtrain|devtest``) or
``--dataset folder:PATH``.  Each kind is an entry of :data:`DATASETS`, a
loader ``(argument, data_root, split) -> Dataset``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from fiqa_bench.data.base import Dataset, DatasetError, Pair, Sample, identity_subset
from fiqa_bench.data.folder import load_folder
from fiqa_bench.data.lfw import load_lfw
from fiqa_bench.registry import Registry

DatasetLoader = Callable[[str | None, Path, str | None], Dataset]

DATASETS: Registry[DatasetLoader] = Registry("dataset")


def _lfw(argument: str | None, data_root: Path, split: str | None) -> Dataset:
    if argument:
        raise DatasetError(f"'lfw' takes no argument after ':', got {argument!r}; use --split")
    return load_lfw(data_root, split or "all")


def _folder(argument: str | None, data_root: Path, split: str | None) -> Dataset:
    if not argument:
        raise DatasetError("'folder' needs a path: --dataset folder:PATH")
    if split not in (None, "all"):
        raise DatasetError(f"an image folder has no split {split!r}; only 'all'")
    return load_folder(Path(argument))


def _no_split(kind: str, split: str | None) -> None:
    if split not in (None, "all"):
        raise DatasetError(f"{kind} has no split {split!r}; only 'all'")


def _utkface(argument: str | None, data_root: Path, split: str | None) -> Dataset:
    from fiqa_bench.data.attributes import load_utkface

    _no_split("utkface", split)
    return load_utkface(Path(argument) if argument else data_root)


def _adience(argument: str | None, data_root: Path, split: str | None) -> Dataset:
    from fiqa_bench.data.attributes import load_adience

    _no_split("adience", split)
    return load_adience(Path(argument) if argument else data_root)[0]


def _ijbc(argument: str | None, data_root: Path, split: str | None) -> Dataset:
    from fiqa_bench.data.ijbc import load_ijbc

    _no_split("ijbc", split)
    root = Path(argument) if argument else data_root / "ijbc"
    if not root.is_dir():
        raise DatasetError(f"dataset not found at {root}")
    return load_ijbc(root)[0]


DATASETS.add("lfw", _lfw, description="Labeled Faces in the Wild, deep-funneled; splits all/devtrain/devtest")
DATASETS.add("folder", _folder, description="any image folder: folder:PATH, identity = first-level subfolder")
DATASETS.add("utkface", _utkface, description="UTKFace aligned faces (age, gender, race in the names; no "
             "identities): <data root>/utkface or utkface:ROOT")
DATASETS.add("adience", _adience, description="Adience aligned faces with fold files: <data root>/adience or "
             "adience:ROOT")
DATASETS.add("ijbc", _ijbc, description="IJB-C 1:1 in the insightface layout (meta/, loose_crop/): <data root>/ijbc "
             "or ijbc:PATH")


def load_dataset(spec: str, data_root: Path, split: str | None = None) -> Dataset:
    """The dataset named by ``spec`` (``"lfw"`` or ``"folder:PATH"``).

    A bare path (``/data/faces``) is refused with the hint to write
    ``folder:/data/faces``: guessing would let a typo in a dataset name
    read some folder of the same name.
    """
    kind, _, argument = spec.partition(":")
    if kind not in DATASETS and ("/" in spec or Path(spec).is_dir()):
        raise DatasetError(f"unknown dataset {spec!r}: to use a folder of images (one subfolder per identity), "
                           f"write --dataset folder:{spec}")
    return DATASETS.get(kind)(argument or None, Path(data_root), split)


__all__ = ["DATASETS", "Dataset", "DatasetError", "Pair", "Sample", "identity_subset", "load_dataset"]
