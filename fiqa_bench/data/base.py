"""Datasets as lists of samples (an image path and an identity label) and the facts each one owns.

A :class:`Dataset` knows nothing about faces or models; it lists what is on
disk, and says what else it holds, so that a protocol asks the dataset and
never branches on its name:

* ``pairs``: named verification pair lists (LFW's ``pairs.txt`` ...) as :class:`Pair` lists;
* ``cross_fitting``: identity-disjoint parts and the training set whose model scores each
  (:class:`CrossFitting`; LFW's View 1 people split), or None when no shipped model can be kept away
  from the dataset's people;
* ``attributes``: group labels for the bias study (an
  :class:`~fiqa_bench.data.attributes.AttributeTable`), or None;
* ``templates``: a template protocol of its own (IJB-C's 1:1 templates), or None;
* ``has_identities``: whether the identity labels name people (UTKFace's do not: one image each; a
  ``.bin`` file's are pseudo-identities joined by its genuine pairs: :func:`identities_from_pairs`);
* ``pair_list``: the pair list a *pair-list set* is evaluated on (a ``.bin`` file, ``pairs:LIST``), or None for
  an identity set (compared all against all);
* ``aligned_to``: the chip template its images are already aligned to (``"arcface112"`` for insightface's
  ``.bin`` crops), or None for ordinary photos that need a face detector.

The three facts that read more files are functions, called when a protocol asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from fiqa_bench.pipeline.paths import resolve_cache_dir
from fiqa_bench.registry import Registry

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
class CrossFitting:
    """How a dataset is scored so that no image meets a model trained on its identity.

    Attributes:
        folds: ``(part, trained_on)`` pairs: the images of ``part`` are scored by the model trained on
            the dataset ``trained_on`` (e.g. ``"lfw:devtrain"``); the parts hold every image once.
        note: what the tables and provenance say about it.
    """

    folds: tuple[tuple[Dataset, str], ...]
    note: str


@dataclass(frozen=True)
class Dataset:
    """A named, ordered list of samples, and the facts it owns (see the module docstring).

    Attributes:
        name: how the dataset was asked for, e.g. ``"lfw:devtest"``.
        root: the folder the sample paths live under.
        samples: the samples, in a deterministic order.
        pairs: named verification pair lists (indices into ``samples``).
        notes: what the loader skipped and why (e.g. a folder link that loops), for the user.
        has_identities: whether identities name people (False: pseudo-identities, e.g. one per image).
        pair_list: the name of the entry of :attr:`pairs` this dataset is evaluated on (a pair-list set),
            or None (an identity set: all against all).
        aligned_to: the template (:mod:`fiqa_bench.faces.templates`) its images are already aligned to, or None.
        cross_fitting: ``() -> CrossFitting``, or None when the dataset has no such split.
        attributes: ``() -> AttributeTable`` of its group labels, or None when it has none.
        templates: ``() -> IJBCTemplates`` (aligned with ``samples``), or None.
    """

    name: str
    root: Path
    samples: tuple[Sample, ...]
    pairs: dict[str, tuple[Pair, ...]] = field(default_factory=dict, compare=False)
    notes: tuple[str, ...] = field(default=(), compare=False)
    has_identities: bool = field(default=True, compare=False)
    pair_list: str | None = field(default=None, compare=False)
    aligned_to: str | None = field(default=None, compare=False)
    cross_fitting: Callable[[], CrossFitting] | None = field(default=None, compare=False, repr=False)
    attributes: Callable[[], Any] | None = field(default=None, compare=False, repr=False)
    templates: Callable[[], Any] | None = field(default=None, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def paths(self) -> list[Path]:
        return [s.path for s in self.samples]

    @property
    def identities(self) -> list[str]:
        return [s.identity for s in self.samples]

    @property
    def evaluation_pairs(self) -> tuple[Pair, ...]:
        """The pairs of :attr:`pair_list` (a pair-list set).

        Raises:
            DatasetError: the dataset is an identity set (no :attr:`pair_list`).
        """
        if self.pair_list is None:
            raise DatasetError(f"{self.name} is an identity set, not a pair list (its pair lists: "
                               f"{', '.join(self.pairs) or 'none'})")
        return self.pairs[self.pair_list]

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
    Pairs are not carried over (their indices would not hold), nor the dataset's cross-fitting,
    attributes or templates (they describe the whole dataset).
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


def identities_from_pairs(n_samples: int, pairs: Sequence[Pair], prefix: str = "id") -> list[str]:
    """Pseudo-identities for samples whose people are unknown: the samples joined by genuine pairs share one.

    The connected components of the graph whose edges are the genuine pairs (union-find), numbered in
    the order of their first sample: ``"<prefix>00000"``, ...  Two samples of one person that no chain of
    genuine pairs joins get different labels, so these labels serve a pair list (its bootstrap units, a
    training set's positives) and never an all-against-all comparison.

    >>> identities_from_pairs(5, [Pair(0, 1, True), Pair(1, 2, True), Pair(3, 4, False)])
    ['id00000', 'id00000', 'id00000', 'id00001', 'id00002']
    """
    parent = list(range(n_samples))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for pair in pairs:
        if pair.genuine:
            a, b = root(pair.first), root(pair.second)
            if a != b:
                parent[max(a, b)] = min(a, b)
    numbers: dict[int, int] = {}
    return [f"{prefix}{numbers.setdefault(root(i), len(numbers)):05d}" for i in range(n_samples)]


#: A dataset kind's loader: ``(argument after ':' or None, data root, split or None, cache dir) -> Dataset``;
#: the cache dir is where a loader may write what it derives from the data (a ``.bin`` file's images), never
#: the data root.
DatasetLoader = Callable[[str | None, Path, str | None, Path], Dataset]

#: The dataset kinds: every module of ``fiqa_bench.data`` registers the kinds it reads here.
DATASETS: Registry[DatasetLoader] = Registry("dataset", plugins="fiqa_bench.data", entry_points="fiqa_bench.datasets")


def load_dataset(spec: str, data_root: Path, split: str | None = None, cache_dir: Path | None = None) -> Dataset:
    """The dataset named by ``spec``: ``KIND`` or ``KIND:ARGUMENT`` (``"lfw"``, ``"folder:PATH"``).

    ``cache_dir`` (default: :func:`fiqa_bench.pipeline.paths.resolve_cache_dir`) is where a loader may keep
    what it derives from the data.

    A bare path (``/data/faces``) is refused with the hint to write
    ``folder:/data/faces``: guessing would let a typo in a dataset name
    read some folder of the same name.
    """
    kind, _, argument = spec.partition(":")
    if kind not in DATASETS and ("/" in spec or Path(spec).is_dir()):
        raise DatasetError(f"unknown dataset {spec!r}: to use a folder of images (one subfolder per identity), "
                           f"write --dataset folder:{spec}")
    return DATASETS.get(kind)(argument or None, Path(data_root), split,
                              Path(cache_dir) if cache_dir is not None else resolve_cache_dir())


def only_split_all(kind: str, split: str | None) -> None:
    """Refuse a split other than ``all`` for a dataset kind that has none."""
    if split not in (None, "all"):
        raise DatasetError(f"{kind} has no split {split!r}; only 'all'")
