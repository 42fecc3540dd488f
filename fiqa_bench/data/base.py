"""Datasets as lists of samples: an image path and an identity label.

A :class:`Dataset` knows nothing about faces or models; it lists what is on
disk.  Protocol files (such as LFW's verification pairs) hang off the
dataset as :class:`Pair` lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"})


class DatasetError(ValueError):
    """A dataset is missing, malformed or asked for something it lacks."""


@dataclass(frozen=True)
class Sample:
    """One image of one identity."""

    path: Path
    identity: str


@dataclass(frozen=True)
class Pair:
    """Two sample indices and whether they show the same person (a genuine pair)."""

    first: int
    second: int
    genuine: bool


@dataclass(frozen=True)
class Dataset:
    """A named, ordered list of samples.

    Attributes:
        name: how the dataset was asked for, e.g. ``"lfw:devtest"``.
        root: the folder the sample paths live under.
        samples: the samples, in a deterministic order.
        pairs: named verification pair lists (indices into ``samples``).
    """

    name: str
    root: Path
    samples: tuple[Sample, ...]
    pairs: dict[str, tuple[Pair, ...]] = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def paths(self) -> list[Path]:
        return [s.path for s in self.samples]

    @property
    def identities(self) -> list[str]:
        return [s.identity for s in self.samples]

    def relative_paths(self) -> list[str]:
        """Sample paths relative to :attr:`root`, with forward slashes."""
        return [s.path.relative_to(self.root).as_posix() for s in self.samples]
