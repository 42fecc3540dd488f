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
    """Two sample indices, whether they show the same person (a genuine pair), and the pair list's fold."""

    first: int
    second: int
    genuine: bool
    fold: int = 0


@dataclass(frozen=True)
class Dataset:
    """A named, ordered list of samples.

    Attributes:
        name: how the dataset was asked for, e.g. ``"lfw:devtest"``.
        root: the folder the sample paths live under.
        samples: the samples, in a deterministic order.
        pairs: named verification pair lists (indices into ``samples``).
        notes: what the loader skipped and why (e.g. a folder link that loops), for the user.
    """

    name: str
    root: Path
    samples: tuple[Sample, ...]
    pairs: dict[str, tuple[Pair, ...]] = field(default_factory=dict, compare=False)
    notes: tuple[str, ...] = field(default=(), compare=False)

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


def identity_subset(
    dataset: Dataset,
    every: int = 1,
    min_images: int = 1,
    max_per_identity: int | None = None,
) -> Dataset:
    """A deterministic subset of ``dataset``'s identities (no randomness, no dependence on the machine).

    The identities with at least ``min_images`` images are sorted by name and
    every ``every``-th of them is kept (the first, the ``every + 1``-th, ...);
    of each, at most ``max_per_identity`` images, the first in dataset order.
    Pairs are not carried over (their indices would not hold).
    """
    if every < 1 or min_images < 1 or (max_per_identity is not None and max_per_identity < 1):
        raise ValueError(f"every, min_images and max_per_identity must be >= 1, "
                         f"got {every}, {min_images}, {max_per_identity}")
    by_identity: dict[str, list[Sample]] = {}
    for sample in dataset.samples:
        by_identity.setdefault(sample.identity, []).append(sample)
    kept = sorted(name for name, samples in by_identity.items() if len(samples) >= min_images)[::every]
    samples = tuple(s for name in kept for s in by_identity[name][:max_per_identity])
    label = f"{dataset.name}[every {every} of identities with >= {min_images} images, <= {max_per_identity} each]"
    return Dataset(label, dataset.root, samples)
