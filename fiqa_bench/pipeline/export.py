"""A dataset's pair list written as an insightface verification ``.bin`` of the project's own aligned chips.

``fiqa-bench export-bin --dataset lfw-view2 --out lfw.bin`` cuts every image of the listed pairs to the
112x112 ArcFace template (:mod:`fiqa_bench.faces.templates`, ``arcface112``) with the run's face detector
(default RetinaFace, whose five points are the template's, as insightface cut its crops), encodes each chip
as PNG (lossless: the file's pixels are the chips' exactly) and writes, pair after pair, the two chips and
whether the pair is genuine (:func:`fiqa_bench.formats.insightface_bin.write_bin`), as insightface's own
``.bin`` files store them (an image in several pairs is stored once per pair).  The tests build their
``.bin`` this way from LFW View 2, and a ``.bin`` of a user's own pairs can be handed to tools that read
insightface's format.

Images that fail upstream (unreadable) cannot be written: their pairs are left out and counted.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fiqa_bench.data import Dataset, DatasetError, Pair
from fiqa_bench.formats.insightface_bin import write_bin
from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.pipeline.embedding import dataset_chips

#: The template of insightface's crops.
TEMPLATE = "arcface112"


def export_bin(dataset: Dataset, pairs: tuple[Pair, ...], context: RunContext, out: Path) -> tuple[int, int]:
    """Write ``pairs`` of ``dataset`` as a ``.bin`` of ``arcface112`` chips cut under ``context``.

    Returns:
        (pairs written, pairs left out because an image failed upstream).

    Raises:
        DatasetError: no pair to write.
    """
    if not pairs:
        raise DatasetError(f"{dataset.name}: the pair list to export is empty")
    chips, failed, _ = dataset_chips(dataset, TEMPLATE, context)
    encoded: dict[int, bytes] = {}
    images: list[bytes] = []
    issame: list[bool] = []
    left_out = 0
    for pair in pairs:
        if failed[pair.first] or failed[pair.second]:
            left_out += 1
            continue
        for index in (pair.first, pair.second):
            if index not in encoded:
                ok, buffer = cv2.imencode(".png", cv2.cvtColor(chips[index], cv2.COLOR_RGB2BGR))
                if not ok:
                    raise RuntimeError(f"OpenCV could not encode the chip of {dataset.samples[index].path} as PNG")
                encoded[index] = np.asarray(buffer).tobytes()
            images.append(encoded[index])
        issame.append(pair.genuine)
    if not issame:
        raise DatasetError(f"{dataset.name}: every listed pair has an image that failed upstream; nothing to write")
    write_bin(Path(out), images, issame)
    return len(issame), left_out
