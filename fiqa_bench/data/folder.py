"""Any image folder: the identity is the first-level subfolder.

Layout::

    PATH/<identity>/.../<image>.<jpg|png|...>

Images are found recursively below each identity folder and sorted by their
path, so the sample order is deterministic.  Files directly in ``PATH`` have
no identity and are an error; hidden files and folders are ignored.

Symbolic links to folders are followed, except one that leads back to a
folder it sits in (``PATH/a/loop -> ..``, or an identity linking to
``PATH``): that would list the same images forever, so it is skipped and
noted in :attr:`~fiqa_bench.data.base.Dataset.notes`, as is a folder that
cannot be listed.  File names are taken as the file system gives them, so a
name that is not valid UTF-8 is kept (as Python's surrogate escapes).
"""

from __future__ import annotations

import os
from pathlib import Path

from fiqa_bench.data.base import DATASETS, IMAGE_SUFFIXES, Dataset, DatasetError, Sample

EXPECTED_LAYOUT = "expected PATH/<identity>/<image>.jpg (identity = first-level subfolder)"


def _images_below(folder: Path, ancestors: tuple[str, ...], notes: list[str]) -> list[Path]:
    """Visible image files below ``folder``, following folder links that do not loop.

    Args:
        folder: the folder to list.
        ancestors: real paths of ``folder`` and the folders above it, down from the dataset root.
        notes: where skipped links and unlistable folders are recorded.
    """
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as err:
        notes.append(f"{folder}: cannot be listed ({err.strerror or err}), skipped")
        return []
    found: list[Path] = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = folder / entry.name
        if entry.is_dir():  # follows links
            real = os.path.realpath(path)
            if real in ancestors:
                notes.append(f"{path}: link back to {real}, a folder it is in (a loop), skipped")
                continue
            found += _images_below(path, ancestors + (real,), notes)
        elif entry.is_file() and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES:
            found.append(path)
    return found


def load_folder(path: Path) -> Dataset:
    """All images under ``path``, labelled by their first-level subfolder.

    Raises:
        DatasetError: ``path`` is not a folder, holds loose images, or holds
            no image at all.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist; {EXPECTED_LAYOUT}")
    loose = sorted(p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if loose:
        raise DatasetError(f"{root} holds images outside any identity folder ({', '.join(loose[:3])}); "
                           f"{EXPECTED_LAYOUT}")
    samples = []
    notes: list[str] = []
    top = (os.path.realpath(root),)
    for identity_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        real = os.path.realpath(identity_dir)
        if real in top:
            notes.append(f"{identity_dir}: link back to {real}, a folder it is in (a loop), skipped")
            continue
        for image in sorted(_images_below(identity_dir, top + (real,), notes)):
            samples.append(Sample(image, identity_dir.name))
    if not samples:
        skipped = f" ({'; '.join(notes)})" if notes else ""
        raise DatasetError(f"no images found under {root}{skipped}; {EXPECTED_LAYOUT}")
    return Dataset(name=f"folder:{root}", root=root, samples=tuple(samples), notes=tuple(notes))


def _load(argument: str | None, data_root: Path, split: str | None, cache_dir: Path) -> Dataset:
    if not argument:
        raise DatasetError("'folder' needs a path: --dataset folder:PATH")
    if split not in (None, "all"):
        raise DatasetError(f"an image folder has no split {split!r}; only 'all'")
    return load_folder(Path(argument))


DATASETS.add("folder", _load, description="any image folder: folder:PATH, identity = first-level subfolder")
