"""Where aligned chips are kept between stages: three stores behind one interface.

A chip is derived data: it is cut, deterministically, from its image by the
face row the ``faces`` store keeps (box, landmarks, ArcFace points).  Keeping
it only saves cutting it again, so how much to keep is a trade of disk for
time, chosen per run (``--chip-store``, ``$FIQA_BENCH_CHIP_STORE``, or
:attr:`RunContext.chip_store <fiqa_bench.pipeline.context.RunContext>`; :func:`fiqa_bench.pipeline.paths.resolve_chip_store`):

========  ==========================  ==================  ===========================================
store     kept per image              dlib150 chip        a later read of a chip costs
========  ==========================  ==================  ===========================================
``raw``   the pixels (uint8)          66 KB               reading it (the default; fastest reuse)
``webp``  the pixels, lossless WebP   18 KB (3.6x)        reading and decoding it (0.6 ms on LFW)
``none``  nothing                     0                   decoding the image, cutting the chip (0.8 ms)
========  ==========================  ==================  ===========================================

(On LFW, ``benchmarks/bench_chip_store.py``; ``arcface112`` chips take 37 KB
raw and 13 KB as WebP.)  All three give the same chips bit for
bit, so every embedding, score and table is the same whichever is used; only
the raw store's files are where they always were (``chips/<template>/``), the
WebP store has its own folder (``chips-webp/<template>/``), and ``none`` needs
the image files at the paths they were hashed from (a file changed since is
an error naming it, never a chip of the wrong image).
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fiqa_bench.pipeline.cache import KeyedStore
from fiqa_bench.faces.align import AlignmentSettings, FaceAnalysis
from fiqa_bench.faces.batch import align_images
from fiqa_bench.faces.templates import ChipTemplate

#: libwebp's effort (0-6) for lossless chips.  On 300 LFW dlib150 chips (a busy machine, so the times
#: are relative): effort 0 compresses 2.9x at 1.0 ms per chip, 1 3.6x at 2.6 ms, 4 (the default) 3.65x
#: at 9.9 ms, 6 3.56x at 53 ms; decoding took 0.5-0.7 ms after efforts 0-4.
WEBP_METHOD = 1
#: Fewest chips worth a worker pool when cutting again.  On 2 cores and LFW's 250x250 JPEGs one process
#: cuts 0.72 ms per chip, and a pool of two costs 1.1 s to start and 0.63 ms per chip (each chip is
#: pickled back), so it pays only past about 12,000 chips; larger images or more cores pay sooner.
RECUT_POOL_MIN = 8192


class ChipStore(ABC):
    """Aligned chips of one template, looked up by image key.

    Attributes:
        template: the chips' template.
        keeps_chips: whether :meth:`put` keeps anything (alignment need not
            cut chips for a store that keeps none).
    """

    keeps_chips = True

    def __init__(self, template: ChipTemplate) -> None:
        self.template = template

    @abstractmethod
    def missing(self, keys: list[str]) -> list[str]:
        """The distinct keys of ``keys`` whose chips must be cut and :meth:`put`, in first-seen order."""

    @abstractmethod
    def put(self, keys: list[str], chips: np.ndarray) -> None:
        """Keep ``(len(keys), S, S, 3)`` uint8 ``chips`` (all zero for images that failed)."""

    @abstractmethod
    def get(self, keys: list[str]) -> np.ndarray:
        """``(len(keys), S, S, 3)`` uint8 chips in the order of ``keys``; all zero where the image failed."""


class RawChips(ChipStore):
    """The pixels, uncompressed, in a :class:`~fiqa_bench.pipeline.cache.KeyedStore` (column ``chip``)."""

    def __init__(self, template: ChipTemplate, directory: Path) -> None:
        super().__init__(template)
        self.store = KeyedStore(directory)

    def missing(self, keys: list[str]) -> list[str]:
        return self.store.missing(keys)

    def put(self, keys: list[str], chips: np.ndarray) -> None:
        self.store.put(keys, {"chip": chips})

    def get(self, keys: list[str]) -> np.ndarray:
        return self.store.get(keys, ["chip"])["chip"]


def encode_webp(chip: np.ndarray) -> bytes:
    """Lossless WebP of an ``(S, S, 3)`` uint8 RGB chip (effort :data:`WEBP_METHOD`)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(chip, "RGB").save(buffer, "WEBP", lossless=True, method=WEBP_METHOD, quality=0)
    return buffer.getvalue()


def decode_webp(data: bytes, size: int) -> np.ndarray:
    """The ``(size, size, 3)`` uint8 RGB chip :func:`encode_webp` wrote.

    Raises:
        ValueError: the bytes hold no such chip.
    """
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        chip = np.asarray(image.convert("RGB"))
    if chip.shape != (size, size, 3):
        raise ValueError(f"a stored WebP chip is {chip.shape}, expected ({size}, {size}, 3)")
    return chip


class WebpChips(ChipStore):
    """The pixels as lossless WebP, in a compressed :class:`~fiqa_bench.pipeline.cache.KeyedStore`.

    A shard's column ``webp`` is ``(n, longest)`` uint8, each row a chip's
    bytes followed by zeros (which the store's zip compression takes away),
    and ``nbytes`` how many of them are the chip's.
    """

    def __init__(self, template: ChipTemplate, directory: Path) -> None:
        super().__init__(template)
        self.store = KeyedStore(directory, compressed=True)

    def missing(self, keys: list[str]) -> list[str]:
        return self.store.missing(keys)

    def put(self, keys: list[str], chips: np.ndarray) -> None:
        encoded = [encode_webp(chip) for chip in chips]
        nbytes = np.array([len(e) for e in encoded], dtype=np.int64)
        table = np.zeros((len(encoded), int(nbytes.max(initial=0))), np.uint8)
        for row, data in enumerate(encoded):
            table[row, : len(data)] = np.frombuffer(data, np.uint8)
        self.store.put(keys, {"webp": table, "nbytes": nbytes})

    def get(self, keys: list[str]) -> np.ndarray:
        # Shards differ in width: read each key's bytes row by row (KeyedStore stacks a column across shards).
        size = self.template.size
        out = np.empty((len(keys), size, size, 3), np.uint8)
        rows = self.store.get_rows(keys, ["webp", "nbytes"])
        for i, (data, n) in enumerate(rows):
            out[i] = decode_webp(data[: int(n)].tobytes(), size)
        return out


#: The face rows of keys (None where the image failed), as the faces store keeps them.
FacesOf = Callable[[list[str]], list[FaceAnalysis | None]]
#: The content key of each path now (a changed file has a new one).
KeysOf = Callable[[list[Path]], list[str]]


class RecutChips(ChipStore):
    """No chips kept: :meth:`get` cuts them again from the images and their cached face rows.

    Args:
        template: the chips' template.
        settings: the alignment settings the faces were found with.
        faces_of: the face rows of keys.
        path_of: an image path for every key this store will be asked for.
        keys_of: hashes paths (to refuse a file changed since it was aligned).
        workers: processes that cut the chips.
    """

    keeps_chips = False

    def __init__(self, template: ChipTemplate, settings: AlignmentSettings, faces_of: FacesOf,
                 path_of: dict[str, Path], keys_of: KeysOf, workers: int) -> None:
        super().__init__(template)
        self.settings = settings
        self.faces_of = faces_of
        self.path_of = path_of
        self.keys_of = keys_of
        self.workers = workers

    def missing(self, keys: list[str]) -> list[str]:
        return []

    def put(self, keys: list[str], chips: np.ndarray) -> None:
        return None

    def get(self, keys: list[str]) -> np.ndarray:
        """The chips cut again; see the class docstring.

        Raises:
            KeyError: a key this store was given no path for.
            ValueError: an image changed or vanished since it was aligned (the message names the file).
        """
        unknown = [k for k in keys if k not in self.path_of]
        if unknown:
            raise KeyError(f"{len(unknown)} keys have no image path to cut their chips from, e.g. {unknown[0]!r}")
        size = self.template.size
        out = np.zeros((len(keys), size, size, 3), np.uint8)
        faces = self.faces_of(keys)
        todo = [i for i, face in enumerate(faces) if face is not None]
        paths = [self.path_of[keys[i]] for i in todo]
        for i, path, now in zip(todo, paths, self.keys_of(paths)):
            if now != keys[i]:
                raise ValueError(f"{path} changed since it was aligned (sha256 {keys[i][:12]}... is now "
                                 f"{now[:12]}...); its chip cannot be cut again: rerun the command")
        jobs = [(str(path), (self.template,), faces[i]) for i, path in zip(todo, paths)]
        results = align_images(jobs, self.settings, self.workers if len(jobs) >= RECUT_POOL_MIN else 1)
        try:
            for i, path, result in zip(todo, paths, results):
                if result.failure is not None:
                    raise ValueError(f"{path} could be read when it was aligned but not now: {result.failure}")
                out[i] = result.chips[self.template.name]
        finally:
            results.close()
        return out

