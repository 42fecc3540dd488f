"""Datasets and how they are named on the command line.

``--dataset lfw`` (with ``--split all|devtrain|devtest``), ``--dataset
folder:PATH``, ``utkface``, ``adience``, ``ijbc[:PATH]``
(``fiqa-bench list datasets``).
Pair lists (``pairs.py``): ``pairs:LIST[@IMAGES]`` (LFW's pairs.txt format or a .csv) and ``lfw-view2[:ROOT]``.
An insightface verification ``.bin`` (``bin.py``): ``bin:PATH`` (AgeDB-30, CFP-FP, CALFW, CPLFW, XQLFW, LFW .bin).
Each kind is an entry of :data:`DATASETS`,
a loader ``(argument, data_root, split, cache_dir) -> Dataset`` registered by the
module that reads it (``lfw.py``, ``folder.py``, ``attributes.py``,
``ijbc.py``); the :class:`~fiqa_bench.data.base.Dataset` it returns carries
the facts protocols ask for (pair lists, cross-fitting, attributes,
templates: :mod:`fiqa_bench.data.base`).
"""

from __future__ import annotations

from fiqa_bench.data.base import (
    DATASETS,
    CrossFitting,
    Dataset,
    DatasetError,
    DatasetLoader,
    Pair,
    Sample,
    identities_from_pairs,
    identity_subset,
    load_dataset,
)

__all__ = ["DATASETS", "CrossFitting", "Dataset", "DatasetError", "DatasetLoader", "Pair", "Sample",
           "identities_from_pairs", "identity_subset",
           "load_dataset"]
