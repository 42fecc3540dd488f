"""The cache's layout: the one place that names its folders.

Every folder of the cache, relative to its root (``--cache-dir``,
:func:`~fiqa_bench.pipeline.paths.resolve_cache_dir`)::

    faces/<alignment digest>/                                  box, landmarks, failure per image
    chips/<template>/<alignment digest>/                       aligned chips, raw
    chips-webp/<template>/<alignment digest>/                  aligned chips, lossless WebP
    embeddings/<model fingerprint[:32]>/<alignment digest>/    a recognition model's embeddings
    backbone/<model fingerprint[:32]>/<alignment digest>/      its backbone features
    stages/<model fingerprint[:32]>/<alignment digest>/        its pooled stage outputs
    scores/<method fingerprint[:32]>/<alignment digest>/       a quality method's native scores
    trained/<stem>-<model>-<dataset slug>[-<key>].pt           checkpoints trained on first use
    studies/                                                   an EVRC study's finished steps
    datasets/bin/<.bin file's sha256[:16]>/                    an insightface .bin's images, extracted

Each per-image folder is a :class:`~fiqa_bench.pipeline.cache.KeyedStore`
(keyed by the image's content, :func:`~fiqa_bench.pipeline.hashing.file_key`);
the folder encodes everything else a row depends on.  These names are what
an existing cache is found by: change one and every cached row is computed
again.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

#: The folder of each chip store that keeps chips (:data:`~fiqa_bench.pipeline.paths.CHIP_STORES`).
CHIP_FOLDERS = {"raw": "chips", "webp": "chips-webp"}
#: The folder of each output of a recognition model (:func:`~fiqa_bench.pipeline.embedding.embed_dataset`).
OUTPUT_FOLDERS = {"embedding": "embeddings", "backbone": "backbone", "stages": "stages"}
#: Characters of a fingerprint (a sha256 hex digest) that name its folder.
FINGERPRINT_CHARS = 32
#: At most this many characters of a dataset spec (or model name) in a trained checkpoint's file name.
SLUG_CHARS = 48


def faces_dir(cache: Path, alignment_digest: str) -> Path:
    """The faces store of one alignment setting (its :meth:`~fiqa_bench.faces.align.AlignmentSettings.digest`)."""
    return Path(cache) / "faces" / alignment_digest


def chips_dir(cache: Path, chip_store: str, template: str, alignment_digest: str) -> Path:
    """The store of ``template``'s chips kept as ``chip_store`` says, under one alignment setting.

    Raises:
        ValueError: ``chip_store`` keeps no chips (``"none"``) or is unknown.
    """
    if chip_store not in CHIP_FOLDERS:
        raise ValueError(f"chip store {chip_store!r} has no folder; those that keep chips: {', '.join(CHIP_FOLDERS)}")
    return Path(cache) / CHIP_FOLDERS[chip_store] / template / alignment_digest


def output_dir(cache: Path, output: str, model_fingerprint: str, alignment_digest: str) -> Path:
    """The store of a recognition model's ``output`` (``"embedding"``, ``"backbone"``, ``"stages"``).

    Args:
        cache: the cache root.
        output: which of the model's outputs.
        model_fingerprint: the model's full fingerprint (its first :data:`FINGERPRINT_CHARS` name the folder).
        alignment_digest: the alignment settings' digest.

    Raises:
        ValueError: an unknown ``output``.
    """
    if output not in OUTPUT_FOLDERS:
        raise ValueError(f"unknown model output {output!r}; known: {', '.join(OUTPUT_FOLDERS)}")
    return Path(cache) / OUTPUT_FOLDERS[output] / model_fingerprint[:FINGERPRINT_CHARS] / alignment_digest


def scores_dir(cache: Path, method_fingerprint: str, alignment_digest: str) -> Path:
    """The store of a quality method's scores (first :data:`FINGERPRINT_CHARS` of its fingerprint)."""
    return Path(cache) / "scores" / method_fingerprint[:FINGERPRINT_CHARS] / alignment_digest


def dataset_slug(spec: str) -> str:
    """A short, safe file-name part for the dataset spec ``spec``: its kind and the last component of its
    argument, characters other than letters, digits and ``._=+-`` as ``_``, at most :data:`SLUG_CHARS`.

    ``lfw:devtrain`` -> ``lfw-devtrain``; ``folder:/data/My faces/`` -> ``folder-My_faces``;
    ``bin:/data/lfw.bin`` -> ``bin-lfw.bin``.  Readable, not unique: the digest beside it tells specs apart.
    """
    kind, _, argument = spec.partition(":")
    tail = argument.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    slug = re.sub(r"[^A-Za-z0-9._=+-]+", "_", "-".join(p for p in (kind, tail) if p))
    return slug[:SLUG_CHARS].strip("._-") or "dataset"


def trained_checkpoint(cache: Path, stem: str, model: str, dataset: str, key: str = "") -> Path:
    """Where a checkpoint trained in the cache lives: ``trained/<stem>-<model>-<dataset slug>[-<key>].pt``.

    Args:
        cache: the cache root.
        stem: the method's (or objective's) file stem, e.g. ``"sdd"``.
        model: the recognition model's name or reference (``name@weights``: the part before ``@``).
        dataset: the spec it was trained on, e.g. ``"lfw:devtest"`` or ``"folder:/data/faces"``, named by
            :func:`dataset_slug`.
        key: a digest of the training settings and data, when the file name must tell them apart.  Without
            one, a spec that the slug does not spell out in full (``:`` -> ``-`` aside: a path, a long
            name) gets the first 16 hex digits of its sha256, so two specs never share a file.
    """
    slug = dataset_slug(dataset)
    if not key and slug != dataset.replace(":", "-"):
        key = hashlib.sha256(dataset.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    model_part = re.sub(r"[^A-Za-z0-9._=+-]+", "_", model.partition("@")[0])[:SLUG_CHARS].strip("._-") or "model"
    name = f"{stem}-{model_part}-{slug}" + (f"-{key}" if key else "")
    return Path(cache) / "trained" / f"{name}.pt"


def studies_dir(cache: Path) -> Path:
    """Where an EVRC study keeps its finished random-band seeds and bootstrap steps
    (:class:`~fiqa_bench.pipeline.cache.StepStore`)."""
    return Path(cache) / "studies"


def bin_images_dir(cache: Path, bin_sha256: str) -> Path:
    """``datasets/bin/<sha256[:16]>``: where the images of the ``.bin`` file with this sha256 are extracted."""
    return Path(cache) / "datasets" / "bin" / bin_sha256[:16]
