"""Any image folder: the identity is the first-level subfolder.

Layout::

    PATH/<identity>/.../<image>.<jpg|png|...>

Images are found recursively below each identity folder and sorted by their
path, so the sample order is deterministic.  Files directly in ``PATH`` have
no identity and are an error; hidden files and folders are ignored.
"""

from __future__ import annotations

from pathlib import Path

from fiqa_bench.data.base import IMAGE_SUFFIXES, Dataset, DatasetError, Sample

EXPECTED_LAYOUT = "expected PATH/<identity>/<image>.jpg (identity = first-level subfolder)"


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


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
    for identity_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for image in sorted(identity_dir.rglob("*")):
            if image.is_file() and image.suffix.lower() in IMAGE_SUFFIXES and _visible(image, root):
                samples.append(Sample(image, identity_dir.name))
    if not samples:
        raise DatasetError(f"no images found under {root}; {EXPECTED_LAYOUT}")
    return Dataset(name=f"folder:{root}", root=root, samples=tuple(samples))
