"""insightface's face verification ``.bin`` files (``lfw.bin``, ``agedb_30.bin``, ``cfp_fp.bin``, ...), read safely.

The layout (insightface's ``recognition/.../lfw2pack.py`` and the files it published): one pickle of
``(bins, issame_list)``, a 2-tuple (or list), where

* ``bins`` is a list of ``2 * P`` *encoded* images: the bytes of a JPEG or PNG file each, already aligned
  112x112 ArcFace crops; files written by Python 2 hold them as ``str`` (read back as ``bytes`` with
  ``encoding="bytes"``), some later ones as 1-D ``numpy.uint8`` arrays of those bytes;
* ``issame_list`` is ``P`` booleans (Python bools, numpy bools, or one numpy bool array): pair ``i`` is images
  ``2i`` and ``2i + 1``, genuine (the same person) when ``issame_list[i]`` is true.

Safety rule: a pickle is a program, and unpickling an untrusted one can run any command.  :func:`read_bin`
therefore unpickles with :class:`RestrictedUnpickler`, whose ``find_class`` admits only the globals these
files contain (:data:`ALLOWED_GLOBALS`): numpy's array and scalar reconstruction (``_reconstruct``,
``ndarray``, ``dtype``, ``scalar``; ``_frombuffer``, which numpy writes for arrays at protocol 5; under both
``numpy.core`` and numpy 2's ``numpy._core``) and ``_codecs.encode`` restricted to Latin-1 (how Python 3 writes
``bytes`` at protocol 2).  Bytes, lists, tuples and bools need no global.  Any other global
(``os.system``, ``builtins.eval``, ``subprocess.Popen`` ...) raises :class:`BinFormatError` naming the file
and the global when the pickle names it, before any call in the pickle runs.

This module imports nothing of :mod:`fiqa_bench.data` (which reads it); the dataset kind ``bin:PATH``
(:mod:`fiqa_bench.data.bin`) turns :class:`BinFormatError` into a ``DatasetError``.
"""

from __future__ import annotations

import io
import os
import pickle
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct, scalar
    from numpy._core.numeric import _frombuffer
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    from numpy.core.numeric import _frombuffer  # type: ignore[no-redef]

#: The pickle protocol :func:`write_bin` uses (what Python 3 insightface tools write, readable since Python 3.4).
PROTOCOL = 4
#: Encoded image signatures -> the file suffix of that format.
SIGNATURES: dict[bytes, str] = {b"\xff\xd8": "jpg", b"\x89PNG": "png"}


class BinFormatError(ValueError):
    """A ``.bin`` file is not an insightface verification file, or asks to run something that is not allowed."""


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as Python 3 pickles ``bytes`` at protocol 2 (``encode(text, "latin1")``), nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode is admitted only as encode(<str>, 'latin1'), "
                                     f"got encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin-1")


#: ``(module, name)`` -> the object :class:`RestrictedUnpickler` hands out for it; every other global is refused.
ALLOWED_GLOBALS: dict[tuple[str, str], Callable[..., Any] | type] = {
    **{(module, "_reconstruct"): _reconstruct for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "scalar"): scalar for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "_frombuffer"): _frombuffer for module in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS` (no import happens for any name).

    Args:
        file: the open pickle, read in binary.
        source: what error messages call the file (its path).
    """

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="bytes")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise BinFormatError(
                f"{self.source}: refused to load the global {module}.{name}: an insightface .bin file holds only "
                f"images, booleans and numpy arrays, and this pickle would run code that is not allowed "
                f"(allowed: {', '.join(sorted(f'{m}.{n}' for m, n in ALLOWED_GLOBALS))})") from None

    def persistent_load(self, pid: Any) -> Any:
        raise BinFormatError(f"{self.source}: refused a persistent id ({pid!r}); insightface .bin files have none")


@dataclass(frozen=True)
class BinFile:
    """The content of a ``.bin`` file: ``2 * P`` encoded images and ``P`` genuine flags (pair ``i`` = ``2i, 2i+1``)."""

    images: tuple[bytes, ...]
    issame: tuple[bool, ...]

    @property
    def n_pairs(self) -> int:
        return len(self.issame)


def image_suffix(data: bytes) -> str | None:
    """``"jpg"`` or ``"png"`` from an encoded image's first bytes (:data:`SIGNATURES`), None for anything else.

    >>> image_suffix(b"\\xff\\xd8\\xff\\xe0..."), image_suffix(b"\\x89PNG\\r\\n\\x1a\\n..."), image_suffix(b"GIF89a")
    ('jpg', 'png', None)
    """
    return next((suffix for signature, suffix in SIGNATURES.items() if data.startswith(signature)), None)


def _as_bytes(item: Any, index: int, source: str) -> bytes:
    """One image entry as bytes: ``bytes``/``bytearray``, or a 1-D 8-bit numpy array of the encoded bytes."""
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    if isinstance(item, np.ndarray) and item.ndim == 1 and item.dtype in (np.uint8, np.int8):
        return item.tobytes()
    shape = f" {item.dtype}{list(item.shape)}" if isinstance(item, np.ndarray) else ""
    raise BinFormatError(f"{source}: image {index} is a {type(item).__name__}{shape}, not the bytes of an "
                         f"encoded image (bytes or a 1-D uint8 array)")


def _as_flags(issame: Any, source: str) -> tuple[bool, ...]:
    """The genuine flags as Python bools: a list/tuple of bools or numpy bools, or a 1-D numpy bool array."""
    if isinstance(issame, np.ndarray):
        if issame.ndim != 1 or issame.dtype != np.bool_:
            raise BinFormatError(f"{source}: issame_list is a {issame.dtype} array of shape {issame.shape}, "
                                 f"not a 1-D bool array")
        return tuple(bool(v) for v in issame)
    if not isinstance(issame, (list, tuple)):
        raise BinFormatError(f"{source}: issame_list is a {type(issame).__name__}, not a list of booleans")
    flags = []
    for i, value in enumerate(issame):
        if not isinstance(value, (bool, np.bool_)):
            raise BinFormatError(f"{source}: issame_list[{i}] is {value!r} ({type(value).__name__}), not a boolean")
        flags.append(bool(value))
    return tuple(flags)


def read_bin(path: Path) -> BinFile:
    """The images and pair flags of the insightface ``.bin`` file ``path``, unpickled safely (module docstring).

    Raises:
        BinFormatError: the pickle names a global that is not allowed (nothing in it has run), is truncated or
            corrupt, is not a ``(images, issame)`` pair, has ``len(images) != 2 * len(issame)``, or an image
            does not start with a JPEG or PNG signature (its index is named).
        OSError: the file cannot be read.
    """
    source = str(path)
    with open(path, "rb") as fh:
        try:
            content = RestrictedUnpickler(fh, source).load()
        except BinFormatError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
                KeyError, UnicodeDecodeError, MemoryError, OverflowError) as err:
            raise BinFormatError(f"{source}: not a readable insightface .bin pickle (truncated or corrupt?): "
                                 f"{type(err).__name__}: {err}") from None
        if fh.read(1):
            raise BinFormatError(f"{source}: data follows the end of the pickle (a corrupt or concatenated file)")
    if not isinstance(content, (tuple, list)) or len(content) != 2:
        what = f"a {len(content)}-item {type(content).__name__}" if isinstance(content, (tuple, list)) \
            else f"a {type(content).__name__}"
        raise BinFormatError(f"{source}: expected a pickled (images, issame_list) pair, found {what}")
    raw_images, raw_issame = content
    if not isinstance(raw_images, (list, tuple)):
        raise BinFormatError(f"{source}: the images are a {type(raw_images).__name__}, not a list")
    images = tuple(_as_bytes(item, i, source) for i, item in enumerate(raw_images))
    issame = _as_flags(raw_issame, source)
    if len(images) != 2 * len(issame):
        raise BinFormatError(f"{source}: {len(images)} images for {len(issame)} pairs; a .bin holds 2 images "
                             f"per pair ({2 * len(issame)} expected)")
    for i, data in enumerate(images):
        if image_suffix(data) is None:
            raise BinFormatError(f"{source}: image {i} is not a JPEG or PNG (it starts with {data[:8].hex(' ')!r}; "
                                 f"expected ff d8 or 89 50 4e 47)")
    return BinFile(images, issame)


def write_bin(path: Path, images: Sequence[bytes], issame: Sequence[bool]) -> None:
    """Write an insightface ``.bin``: ``pickle.dump((list of bytes, list of bool), protocol 4)``, atomically.

    The pickle goes to a hidden temporary beside ``path`` and is renamed over it, so ``path`` is whole or as
    it was.  :func:`read_bin` reads it back.

    Raises:
        BinFormatError: ``len(images) != 2 * len(issame)`` or an image is not JPEG/PNG bytes (nothing is written).
    """
    path = Path(path)
    data = [bytes(image) for image in images]
    flags = [bool(flag) for flag in issame]
    if len(data) != 2 * len(flags):
        raise BinFormatError(f"{path}: {len(data)} images for {len(flags)} pairs; 2 images per pair expected")
    for i, image in enumerate(data):
        if image_suffix(image) is None:
            raise BinFormatError(f"{path}: image {i} is not JPEG or PNG bytes (starts with {image[:8].hex(' ')!r})")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as fh:
            pickle.dump((data, flags), fh, protocol=PROTOCOL)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
