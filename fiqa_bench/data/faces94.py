"""Essex faces94 (Libor Spacek, University of Essex): 152 people x 20 clean frontal images.

Expected layout under ``<data-root>/faces94/`` (or ``faces94:ROOT``)::

    images/<id>/<id>.<n>.jpg      20 colour JPEGs of 180x200 px per person

Identity = the folder name.  One session per person against a plain green
background, frontal, little head movement, speaking expressions, fixed
lighting: a clean control set on which a good quality score should find
little to reject and recognition errors are rare.  No split, no pair list,
no labels beyond identity; none of its people are among LFW's, so trained
methods score it with their shipped models (the tables say there is no
cross-fitting).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fiqa_bench.data.base import DATASETS, Dataset, DatasetError, only_split_all
from fiqa_bench.data.folder import load_folder

IMAGES = "images"
EXPECTED_LAYOUT = "expected <data-root>/faces94/images/<id>/<id>.<n>.jpg (set --data-root or give faces94:ROOT)"


def load_faces94(root: Path) -> Dataset:
    """Every faces94 image under ``root/images``, identity = its folder, named ``faces94``.

    Raises:
        DatasetError: ``root/images`` is missing (the path and the layout are named) or holds no image.
    """
    images = Path(root) / IMAGES
    if not images.is_dir():
        raise DatasetError(f"faces94 not found: {images} does not exist; {EXPECTED_LAYOUT}")
    return replace(load_folder(images), name="faces94")


def _load(argument: str | None, data_root: Path, split: str | None, cache_dir: Path) -> Dataset:
    only_split_all("faces94", split)
    return load_faces94(Path(argument) if argument else Path(data_root) / "faces94")


DATASETS.add("faces94", _load, description="Essex faces94: 152 people x 20 clean frontal images, "
             "<data root>/faces94/images/<id>/ or faces94:ROOT")
