"""insightface verification ``.bin`` files as a dataset: ``--dataset bin:PATH``.

The files CR-FIQA, MagFace and most face recognition papers report on: ``lfw.bin``, ``agedb_30.bin``,
``cfp_fp.bin``, ``cfp_ff.bin``, ``calfw.bin``, ``cplfw.bin``, ``XQLFW``'s ``xqlfw.bin``, each ``P`` pairs of
already aligned 112x112 ArcFace crops (the format, and how it is read without running the pickle:
:mod:`fiqa_bench.formats.insightface_bin`).  ``PATH`` is absolute, or relative to the current directory when
it exists there, else to the data root.

The images are extracted once, byte for byte (no re-encoding), into the cache::

    <cache>/datasets/bin/<first 16 hex digits of the .bin file's sha256>/<index:05d>.<jpg|png>
    <cache>/datasets/bin/<...>/.complete      written last: the file it came from and the image count

Each image file is written through a temporary renamed into place, so an interrupted extraction leaves whole
files and no ``.complete``; the next load writes only the images that are missing (or of the wrong size) and
then the marker, and a complete folder is reused as it is.  Writers of one folder take its ``.lock``.

The dataset, named ``bin:<stem>``: the ``2P`` images in file order; one pair list ``bin``, pair ``i`` =
samples ``2i`` and ``2i + 1``, in 10 contiguous folds (``fold = i * 10 // P``, insightface's unshuffled
10-fold split), and it is a pair-list set (``pair_list="bin"``).  Identities are not in the file: they are
pseudo-identities joined by the genuine pairs (``<stem>-00000``, ...;
:func:`~fiqa_bench.data.base.identities_from_pairs`), so ``has_identities`` is False.  ``aligned_to`` is
``"arcface112"`` when every image is 112x112 (read from the image headers, nothing decoded); otherwise None,
with a note: such images are detected like photos.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

from PIL import Image

from fiqa_bench.data.base import (
    DATASETS,
    Dataset,
    DatasetError,
    Pair,
    Sample,
    identities_from_pairs,
    only_split_all,
)
from fiqa_bench.formats.insightface_bin import BinFile, BinFormatError, image_suffix, read_bin
from fiqa_bench.pipeline.cache import atomic_write, file_lock, remove_temporaries
from fiqa_bench.pipeline.hashing import sha256_file
from fiqa_bench.pipeline.stores import bin_images_dir

#: Written into a folder after its last image: a folder without it is completed on the next load.
MARKER = ".complete"
LOCK = ".lock"
#: The pair list a ``.bin`` dataset is evaluated on.
PAIR_LIST = "bin"
#: insightface's verification evaluation: 10 contiguous folds of the pairs.
FOLDS = 10
#: The image size of insightface's aligned crops.
ALIGNED_SIZE = (112, 112)
ALIGNED_TEMPLATE = "arcface112"


def resolve_bin_path(argument: str, data_root: Path) -> Path:
    """``argument`` as a path: absolute, or relative to the current directory if it exists, else to ``data_root``.

    Raises:
        DatasetError: no file there (the paths tried are named).
    """
    given = Path(argument).expanduser()
    tried = [given] if given.is_absolute() else [given.absolute(), Path(data_root) / given]
    for path in tried:
        if path.is_file():
            return path
    raise DatasetError(f"insightface .bin file not found: tried {' and '.join(str(p) for p in tried)} "
                       f"(give bin:PATH, absolute or relative to the current directory or the data root)")


def image_names(content: BinFile) -> list[str]:
    """``<index:05d>.<jpg|png>`` of every image, the suffix from its signature."""
    return [f"{i:05d}.{image_suffix(data)}" for i, data in enumerate(content.images)]


def extract_images(content: BinFile, folder: Path, source: Path) -> list[Path]:
    """Write ``content``'s images into ``folder`` unless already there (module docstring); returns their paths.

    An image file counts as there when it exists with the image's size (files are only ever renamed into
    place whole, so a file of the right size holds the right bytes unless changed by hand).
    """
    paths = [folder / name for name in image_names(content)]
    marker = folder / MARKER

    def complete() -> bool:
        return marker.is_file() and all(_has_size(p, len(d)) for p, d in zip(paths, content.images))

    if complete():
        return paths
    with file_lock(folder / LOCK):
        if complete():  # another process finished it while this one waited
            return paths
        remove_temporaries(folder)
        marker.unlink(missing_ok=True)
        for path, data in zip(paths, content.images):
            if not _has_size(path, len(data)):
                with atomic_write(path, "wb") as fh:
                    fh.write(data)
        info = {"source": str(source), "images": len(paths), "pairs": content.n_pairs}
        with atomic_write(marker) as fh:
            fh.write(json.dumps(info, indent=1) + "\n")
    return paths


def _has_size(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False


def image_sizes(content: BinFile) -> list[tuple[int, int] | None]:
    """Each image's (width, height) from its header (nothing is decoded), None where the header is unreadable."""
    sizes: list[tuple[int, int] | None] = []
    for data in content.images:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(io.BytesIO(data)) as image:
                    sizes.append(image.size)
        except (OSError, ValueError, Image.DecompressionBombError):
            sizes.append(None)
    return sizes


def bin_pairs(n_pairs: int, issame: tuple[bool, ...]) -> tuple[Pair, ...]:
    """Pair ``i`` = samples ``2i`` and ``2i + 1``, genuine as ``issame[i]`` says, in fold ``i * 10 // P``.

    >>> [(p.first, p.second, p.genuine, p.fold) for p in bin_pairs(2, (True, False))]
    [(0, 1, True, 0), (2, 3, False, 5)]
    """
    return tuple(Pair(2 * i, 2 * i + 1, bool(issame[i]), i * FOLDS // n_pairs) for i in range(n_pairs))


def load_bin(path: Path, cache_dir: Path) -> Dataset:
    """The dataset of the insightface ``.bin`` file ``path``, its images extracted under ``cache_dir``.

    Raises:
        DatasetError: the file cannot be read, is not a safe and well-formed ``.bin``, or holds no pair.
    """
    path = Path(path)
    try:
        digest = sha256_file(path)
        content = read_bin(path)
    except BinFormatError as err:
        raise DatasetError(str(err)) from None
    except OSError as err:
        raise DatasetError(f"cannot read the .bin file {path}: {err.strerror or err}") from None
    if content.n_pairs == 0:
        raise DatasetError(f"{path} holds no pairs")
    folder = bin_images_dir(cache_dir, digest)
    try:
        paths = extract_images(content, folder, path)
    except OSError as err:
        raise DatasetError(f"cannot extract the images of {path} into {folder}: {err}") from None
    stem = path.stem
    pairs = bin_pairs(content.n_pairs, content.issame)
    identities = identities_from_pairs(len(paths), pairs, prefix=f"{stem}-")
    samples = tuple(Sample(p, identity) for p, identity in zip(paths, identities))
    notes: list[str] = []
    sizes = image_sizes(content)
    unreadable = [i for i, size in enumerate(sizes) if size is None]
    if unreadable:
        notes.append(f"{path}: {len(unreadable)} image(s) have an unreadable header (first: image {unreadable[0]}, "
                     f"{paths[unreadable[0]]}); they are reported as unreadable when loaded")
    other = [(i, size) for i, size in enumerate(sizes) if size is not None and size != ALIGNED_SIZE]
    aligned = not other and len(unreadable) < len(sizes)
    if other:
        first, (width, height) = other[0]
        notes.append(f"{path}: {len(other)} of {len(sizes)} images are not 112x112 (first: image {first}, "
                     f"{width}x{height}), so they are not taken as insightface's aligned ArcFace crops; they will "
                     f"be detected like photos")
    return Dataset(name=f"bin:{stem}", root=folder, samples=samples, pairs={PAIR_LIST: pairs}, notes=tuple(notes),
                   has_identities=False, pair_list=PAIR_LIST, aligned_to=ALIGNED_TEMPLATE if aligned else None)


def _load(argument: str | None, data_root: Path, split: str | None, cache_dir: Path) -> Dataset:
    if not argument:
        raise DatasetError("'bin' needs a path: --dataset bin:PATH (an insightface .bin, e.g. agedb_30.bin)")
    only_split_all("bin", split)
    return load_bin(resolve_bin_path(argument, data_root), cache_dir)


DATASETS.add("bin", _load, description="an insightface verification .bin of aligned 112x112 pairs (LFW, AgeDB-30, "
             "CFP-FP, CALFW, CPLFW, XQLFW .bin): bin:PATH, evaluated on its pairs in 10 folds")
