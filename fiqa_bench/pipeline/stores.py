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
    trained/<stem>-<model>-<dataset>[-<key>].pt                checkpoints trained on first use
    studies/                                                   an EVRC study's finished steps

Each per-image folder is a :class:`~fiqa_bench.pipeline.cache.KeyedStore`
(keyed by the image's content, :func:`~fiqa_bench.pipeline.hashing.file_key`);
the folder encodes everything else a row depends on.  These names are what
an existing cache is found by: change one and every cached row is computed
again.
"""

from __future__ import annotations

from pathlib import Path

#: The folder of each chip store that keeps chips (:data:`~fiqa_bench.pipeline.paths.CHIP_STORES`).
CHIP_FOLDERS = {"raw": "chips", "webp": "chips-webp"}
#: The folder of each output of a recognition model (:func:`~fiqa_bench.pipeline.embedding.embed_dataset`).
OUTPUT_FOLDERS = {"embedding": "embeddings", "backbone": "backbone", "stages": "stages"}
#: Characters of a fingerprint (a sha256 hex digest) that name its folder.
FINGERPRINT_CHARS = 32


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


def trained_checkpoint(cache: Path, stem: str, model: str, dataset: str, key: str = "") -> Path:
    """Where a checkpoint trained in the cache lives: ``trained/<stem>-<model>-<dataset>[-<key>].pt``.

    Args:
        cache: the cache root.
        stem: the method's (or objective's) file stem, e.g. ``"sdd"``.
        model: the recognition model's name or reference (``name@weights``: the part before ``@``).
        dataset: what it was trained on, e.g. ``"lfw:devtest"`` (``:`` becomes ``-``).
        key: a digest of the training settings, when the file name must tell settings apart.
    """
    name = f"{stem}-{model.partition('@')[0]}-{dataset.replace(':', '-')}" + (f"-{key}" if key else "")
    return Path(cache) / "trained" / f"{name}.pt"


def studies_dir(cache: Path) -> Path:
    """Where an EVRC study keeps its finished random-band seeds and bootstrap steps
    (:class:`~fiqa_bench.pipeline.cache.StepStore`)."""
    return Path(cache) / "studies"
