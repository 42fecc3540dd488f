"""From a dataset to aligned chips and embeddings, cached and resumable.

Three stages, each cached per image in a :class:`~fiqa_bench.pipeline.cache.KeyedStore`
keyed by the sha256 of the image file's bytes (hashed once per run:
``context.file_keys``, :class:`~fiqa_bench.pipeline.hashing.FileKeys`), in the
folders :mod:`fiqa_bench.pipeline.stores` names:

1. faces: box + 5 landmarks (or the failure reason)    ``faces/<settings>/``
2. chips: the aligned chip for one template             ``chips/<template>/<settings>/``
   (or lossless WebP in ``chips-webp/``, or none kept: :mod:`fiqa_bench.pipeline.chips`)
3. embeddings: one model's embedding of the chip         ``embeddings/<model fingerprint>/<settings>/``

A stage computes only the keys its store lacks, a shard of
:data:`CHUNK` images at a time, so an interrupted run resumes where it
stopped and a second identical call only hashes the files and reads the
cache.  Images that cannot be read get a NaN embedding and a reason; they
never stop the run.  Detection and chip cutting run in ``context.workers``
processes; the network uses torch's threads.  Every stage takes the
:class:`~fiqa_bench.pipeline.context.RunContext` (cache, alignment settings, workers,
device, progress).
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from tqdm import tqdm

from fiqa_bench.pipeline.cache import KeyedStore, atomic_write
from fiqa_bench.pipeline.chips import ChipStore, RawChips, RecutChips, WebpChips
from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.pipeline.stores import chips_dir, faces_dir, output_dir
from fiqa_bench.data import Dataset, DatasetError
from fiqa_bench.faces.align import NO_FACE_NOTE, FaceAnalysis, ImageResult, face_outcome
from fiqa_bench.faces.detector import DEFAULT_DETECTOR, detector_card
from fiqa_bench.faces.batch import align_images
from fiqa_bench.faces.io import is_load_note
from fiqa_bench.faces.templates import ChipTemplate, get_template
from fiqa_bench.recognition.base import RecognitionModel, TorchRecognitionModel

CHUNK = 512
NOTE_SEPARATOR = "; "


@dataclass(frozen=True)
class Embeddings:
    """A dataset's embeddings, in the dataset's sample order.

    Attributes:
        paths: image paths as strings.
        identities: identity labels.
        embeddings: ``(N, D)`` float32, unit rows; NaN rows for failures.
        failed: ``(N,)`` bool, True where the image could not be embedded.
        reasons: ``(N,)`` str, the failure reason, or non-fatal notes joined
            by ``"; "``, or ``""``.
        face: ``(N,)`` str, whether the face was found and by which detector
            (``"found by hog"``, ``"not found by hog: fallback box"``,
            ``"not analysed"``; :func:`~fiqa_bench.faces.align.face_outcome`).
        image_sha256: ``(N,)`` content hashes (the cache keys).
        meta: model, fingerprint, template, settings, dataset name.
    """

    paths: np.ndarray
    identities: np.ndarray
    embeddings: np.ndarray
    failed: np.ndarray
    reasons: np.ndarray
    face: np.ndarray
    image_sha256: np.ndarray
    meta: dict = field(default_factory=dict)

    def save(self, path: Path) -> None:
        """Write an ``.npz`` with every field (``meta`` as a JSON string)."""
        import json

        with atomic_write(path, "wb") as fh:
            np.savez(fh, paths=self.paths, identities=self.identities, embeddings=self.embeddings,
                     failed=self.failed, reasons=self.reasons, face=self.face, image_sha256=self.image_sha256,
                     meta=np.array(json.dumps(self.meta, sort_keys=True)))

    @classmethod
    def load(cls, path: Path) -> "Embeddings":
        import json

        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if "face" in data:
                face = data["face"]
            else:  # written before the column existed
                detector = meta.get("alignment", {}).get("detector", DEFAULT_DETECTOR)
                face = np.array([face_outcome(r if f else "", r, detector)
                                 for f, r in zip(data["failed"], data["reasons"])], dtype=str)
            return cls(paths=data["paths"], identities=data["identities"], embeddings=data["embeddings"],
                       failed=data["failed"], reasons=data["reasons"], face=face,
                       image_sha256=data["image_sha256"], meta=meta)


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- the stages ------------------------------------------------------------------------------------

def _face_columns(results: list[ImageResult], with_points5: bool) -> dict[str, np.ndarray]:
    """The faces store's columns; ``points5`` (ArcFace points, NaN where none) only for detectors that give them."""
    n = len(results)
    boxes = np.full((n, 4), -1, np.int32)
    marks = np.full((n, 5, 2), -1, np.int32)
    points5 = np.full((n, 5, 2), np.nan, np.float64)
    failure = np.array([r.failure or "" for r in results], dtype=str)
    notes = np.array([NOTE_SEPARATOR.join(r.notes) for r in results], dtype=str)
    for i, r in enumerate(results):
        if r.face is not None:
            boxes[i] = r.face.box
            marks[i] = r.face.landmarks
            if r.face.points5 is not None:
                points5[i] = r.face.points5
    columns = {"box": boxes, "landmarks": marks, "failure": failure, "notes": notes}
    return columns | {"points5": points5} if with_points5 else columns


def open_chip_store(paths: list[Path], keys: list[str], template: ChipTemplate, context: RunContext,
                    faces: KeyedStore) -> ChipStore:
    """The chips of ``template`` under ``context``'s alignment, kept as ``context.chip_store`` says.

    ``paths`` and ``keys`` (the images' content keys, in the same order) are
    where a store that keeps no chips cuts them again from; ``faces`` is the
    faces store of the same settings.
    """
    digest = context.alignment.digest()
    if context.chip_store == "raw":
        return RawChips(template, chips_dir(context.cache_dir, "raw", template.name, digest))
    if context.chip_store == "webp":
        return WebpChips(template, chips_dir(context.cache_dir, "webp", template.name, digest))
    with_points5 = detector_card(context.alignment.detector).gives_points5
    return RecutChips(template, context.alignment, lambda ks: _faces_from_store(faces, ks, with_points5),
                      dict(zip(keys, paths)), context.file_keys.of, context.workers)


def ensure_chips(
    paths: list[Path], keys: list[str], template: ChipTemplate, context: RunContext
) -> tuple[KeyedStore, ChipStore]:
    """Make sure the face and chip stores hold every key; returns (faces, chips).

    A key counts as done only when both stores hold it: a chip whose face row
    was lost (say, ``faces/`` deleted by hand) is aligned again.  A chip store
    that keeps no chips (``context.chip_store == "none"``) needs only the faces.
    """
    faces = faces_store(context)
    chips = open_chip_store(paths, keys, template, context, faces)
    missing = set(chips.missing(keys)) | set(faces.missing(keys))
    todo = [k for k in dict.fromkeys(keys) if k in missing]
    if not todo:
        return faces, chips
    path_of = dict(zip(keys, paths))
    with_points5 = detector_card(context.alignment.detector).gives_points5
    known_keys = [k for k in todo if k in faces]
    known = dict(zip(known_keys, _faces_from_store(faces, known_keys, with_points5))) if known_keys else {}
    cut = (template,) if chips.keeps_chips else ()
    bar = tqdm(total=len(todo), desc=f"aligning faces ({template.name}, unique files)", unit="img",
               disable=not context.progress, file=sys.stderr)
    jobs = [(str(path_of[k]), cut, known.get(k)) for k in todo]
    results = align_images(jobs, context.alignment, context.workers)
    for chunk_keys in _chunks(todo, CHUNK):
        chunk = [next(results) for _ in chunk_keys]
        new = [(k, r) for k, r in zip(chunk_keys, chunk) if k not in known]
        if new:
            faces.put([k for k, _ in new], _face_columns([r for _, r in new], with_points5))
        if chips.keeps_chips:
            stack = np.zeros((len(chunk), template.size, template.size, 3), np.uint8)
            for i, r in enumerate(chunk):
                if r.failure is None:
                    stack[i] = r.chips[template.name]
            chips.put(chunk_keys, stack)
        bar.update(len(chunk))
    bar.close()
    results.close()  # ends the worker pool
    return faces, chips


def _faces_from_store(faces: KeyedStore, keys: list[str], with_points5: bool) -> list[FaceAnalysis | None]:
    cols = faces.get(keys, ["box", "landmarks", "failure", "notes", *(["points5"] if with_points5 else [])])
    points = cols["points5"] if with_points5 else np.full((len(keys), 5, 2), np.nan)
    out: list[FaceAnalysis | None] = []
    for box, marks, failure, notes, p5 in zip(cols["box"], cols["landmarks"], cols["failure"], cols["notes"], points):
        if failure:
            out.append(None)
        else:
            face_notes = tuple(n for n in str(notes).split(NOTE_SEPARATOR) if n and not is_load_note(n))
            out.append(FaceAnalysis(tuple(int(v) for v in box), marks.astype(np.int32), face_notes,
                                    p5.astype(np.float64) if np.isfinite(p5).all() else None))
    return out


def _face_status(faces: KeyedStore, keys: list[str], detector: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per key: failed (bool), the reason (the failure, else the alignment notes) and the face outcome."""
    info = faces.get(keys, ["failure", "notes"])
    failed = info["failure"] != ""
    face = np.array([face_outcome(f, n, detector) for f, n in zip(info["failure"], info["notes"])], dtype=str)
    return failed, np.where(failed, info["failure"], info["notes"]).astype(str), face


def face_status(keys: list[str], context: RunContext) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(failed, reasons, face outcome) of the images ``keys`` as aligned under ``context``'s settings,
    from the cache; None when an image has not been aligned yet."""
    faces = faces_store(context)
    if faces.missing(keys):
        return None
    return _face_status(faces, keys, context.alignment.detector)


def count_fallbacks(reasons: np.ndarray) -> int:
    """Images aligned on the fallback box because no face was found."""
    return int(sum(NO_FACE_NOTE in r for r in np.asarray(reasons).tolist()))


def count_load_notes(reasons: np.ndarray) -> int:
    """Images converted to 8-bit RGB or noted as too small for a face detector when read
    (:func:`~fiqa_bench.faces.io.is_load_note`)."""
    return int(sum(any(is_load_note(n) for n in r.split(NOTE_SEPARATOR)) for r in np.asarray(reasons).tolist()))


def require_usable(dataset: Dataset, failed: np.ndarray, reasons: np.ndarray) -> None:
    """Raise when no image of ``dataset`` could be used (``failed`` everywhere), naming the dataset.

    Raises:
        DatasetError: every image failed (the first reasons are quoted).
    """
    if len(failed) and not np.asarray(failed).all():
        return
    shown = "; ".join(f"{p}: {r}" for p, r in zip(dataset.paths[:3], np.asarray(reasons)[:3].tolist()))
    raise DatasetError(f"none of the {len(failed)} images of {dataset.name} could be read (e.g. {shown})")


def embed_chunk(keys: list[str], faces: KeyedStore, chips: ChipStore,
                compute: Callable[[np.ndarray], tuple[np.ndarray, ...]], dims: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """One ``(len(keys), dim)`` float32 array per output of ``compute``: its outputs for the chips that aligned, in
    one call (one network batch: the unit that makes a row's bits depend on its chunk, so every caller cuts at
    :data:`CHUNK`), NaN rows for the images that failed upstream."""
    failure = faces.get(keys, ["failure"])["failure"]
    stack = chips.get(keys)
    out = tuple(np.full((len(keys), dim), np.nan, np.float32) for dim in dims)
    ok = failure == ""
    if ok.any():
        for array, rows in zip(out, compute(stack[ok])):
            array[ok] = rows
    return out


def faces_store(context: RunContext) -> KeyedStore:
    """The cache store of the face rows (box, landmarks, failure, notes) under ``context``'s alignment settings."""
    return KeyedStore(faces_dir(context.cache_dir, context.alignment.digest()))


def output_store(context: RunContext, model: RecognitionModel, output: str) -> KeyedStore:
    """The cache store of ``model``'s ``output`` under ``context``'s alignment settings."""
    return KeyedStore(output_dir(context.cache_dir, output, model.fingerprint(), context.alignment.digest()))


def output_function(model: RecognitionModel, output: str) -> tuple[Callable[[np.ndarray], np.ndarray], int]:
    """``(compute, dim)`` of one of ``model``'s outputs (see :func:`embed_dataset`)."""
    if output == "embedding":
        return model.embed, model.card.embedding_dim
    if output == "backbone" and isinstance(model, TorchRecognitionModel):
        return model.backbone_features, model.network.backbone_dim
    if output == "stages" and has_stages(model):
        return model.stage_features, sum(model.network.stage_widths)
    raise ValueError(f"output must be 'embedding', or 'backbone' or 'stages' of a PyTorch model that "
                     f"has them; got {output!r} for {model.card.name}")


def has_stages(model: RecognitionModel) -> bool:
    """Whether ``model`` gives stage features (a PyTorch network split into stages)."""
    return isinstance(model, TorchRecognitionModel) and bool(model.network.stage_widths)


#: The largest flattened backbone output (floats per image) that joins the shared pass: dlib-resnet's 256 and
#: mobilefacenet-512's 512 do (1-2 KB a row, next to its embedding); a backbone that ends in a whole feature map
#: (iresnet's 25,088 floats, 100 KB a row) is computed only when a method asks for it.
SHARED_BACKBONE_MAX = 4096


def shared_outputs(model: RecognitionModel) -> tuple[str, ...]:
    """The outputs of ``model`` made together, in one forward pass, whenever one of them is needed
    (:meth:`~fiqa_bench.recognition.base.TorchRecognitionModel.embed_in_one_pass`): the embedding, the stage
    features (SDD-FIQA, PCNet, CR-FIQA, FaceQnet read them) and a small backbone output (SER-FIQ, PFE, feature
    norm read it), so that a study of many methods runs the network over its chips once."""
    if not isinstance(model, TorchRecognitionModel):
        return ()
    return ("embedding", *(("stages",) if has_stages(model) else ()),
            *(("backbone",) if model.network.backbone_dim <= SHARED_BACKBONE_MAX else ()))


def embed_dataset(
    dataset: Dataset, model: RecognitionModel, context: RunContext, output: str = "embedding"
) -> Embeddings:
    """Embeddings (or backbone features) of every sample of ``dataset`` by ``model``, through the cache.

    Args:
        dataset: the samples.
        model: the recognition model; its card names the chip template.
        context: cache, alignment settings, workers and progress.
        output: ``"embedding"`` (L2-normalised embeddings), ``"backbone"``
            (the flattened backbone output of a PyTorch model, before the
            embedding layer; what SER-FIQ and feature-norm read) or ``"stages"`` (each stage's
            output averaged over space, concatenated; what SDD-FIQA's head
            mode reads; see ``TorchRecognitionModel.stage_features``).

    For a PyTorch model, the outputs of :func:`shared_outputs` come from one
    forward pass
    (:meth:`~fiqa_bench.recognition.base.TorchRecognitionModel.embed_in_one_pass`,
    the same numbers as separate passes) and each is stored, so that asking
    for another of them next finds it cached.
    """
    settings = context.alignment
    template = get_template(model.card.template)
    compute, dim = output_function(model, output)
    paths = dataset.paths
    keys = context.file_keys.of(paths, context.progress)
    store = output_store(context, model, output)
    todo = store.missing(keys)
    faces = faces_store(context)
    if todo or faces.missing(keys):
        faces, chips = ensure_chips(paths, keys, template, context)
        bar = tqdm(total=len(todo), desc=f"{output} ({model.card.name}, unique files)", unit="img",
                   disable=not context.progress, file=sys.stderr)
        shared = shared_outputs(model)
        others = [o for o in shared if o != output] if output in shared else []
        other_stores = {o: output_store(context, model, o) for o in others}
        for chunk_keys in _chunks(todo, CHUNK):
            if not others:
                (rows,) = embed_chunk(chunk_keys, faces, chips, lambda c: (compute(c),), (dim,))
            else:  # the shared outputs come from one forward pass; each goes to its store
                names = [output, *others]
                arrays = embed_chunk(chunk_keys, faces, chips,
                                     lambda c: tuple(model.embed_in_one_pass(c, names).values()),
                                     tuple(output_function(model, o)[1] for o in names))
                rows = arrays[0]
                for name, other in zip(others, arrays[1:]):
                    lacking = set(other_stores[name].missing(chunk_keys))
                    kept = [i for i, k in enumerate(chunk_keys) if k in lacking]
                    if kept:
                        other_stores[name].put([chunk_keys[i] for i in kept], {"embedding": other[kept]})
            store.put(chunk_keys, {"embedding": rows})
            bar.update(len(chunk_keys))
        bar.close()
    emb = store.get(keys, ["embedding"])["embedding"]
    failed, reasons, face = _face_status(faces, keys, settings.detector)
    require_usable(dataset, failed, reasons)
    meta = {
        "dataset": dataset.name,
        "model": model.card.name,
        "model_fingerprint": model.fingerprint(),
        "output": output,
        "template": template.name,
        "alignment": asdict(settings),
        "alignment_digest": settings.digest(),
        "n_images": len(paths),
        "n_failed": int(failed.sum()),
        "detector": settings.detector,
        "n_fallback_box": count_fallbacks(reasons),
    }
    return Embeddings(
        paths=np.array([str(p) for p in paths], dtype=str),
        identities=np.array(dataset.identities, dtype=str),
        embeddings=emb,
        failed=failed,
        reasons=reasons,
        face=face,
        image_sha256=np.array(keys, dtype=str),
        meta=meta,
    )


def _aligned(
    dataset: Dataset, template_name: str, context: RunContext
) -> tuple[list[str], KeyedStore, ChipStore, np.ndarray, np.ndarray]:
    """Every sample's face and chip rows made sure of: (keys, faces, chips, failed, reasons)."""
    keys = context.file_keys.of(dataset.paths, context.progress)
    faces, chips = ensure_chips(dataset.paths, keys, get_template(template_name), context)
    failed, reasons, _ = _face_status(faces, keys, context.alignment.detector)
    return keys, faces, chips, failed, reasons


def dataset_chips(
    dataset: Dataset, template_name: str, context: RunContext
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aligned chips ``(N, S, S, 3)`` uint8 of every sample, the ``(N,)`` failure mask and reasons.

    Failed images have an all-zero chip and the reason they failed (e.g.
    "corrupt image: ..."); the others carry their alignment notes (e.g. that
    no face was detected and the fallback box was used), as in
    :func:`embed_dataset`.  Chips come from (and go to) the cache.
    """
    keys, _, chips, failed, reasons = _aligned(dataset, template_name, context)
    return chips.get(keys), failed, reasons


def dataset_landmarks(dataset: Dataset, context: RunContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dlib's five landmarks ``(N, 5, 2)`` float64 in image pixels, the failure mask and the reasons.

    The landmarks are those every chip was cut from (the ``faces`` stage;
    computed on the way to ``dlib150`` chips when missing).  Failed images
    have NaN landmarks.
    """
    keys, faces, _, failed, reasons = _aligned(dataset, "dlib150", context)
    marks = faces.get(keys, ["landmarks"])["landmarks"].astype(np.float64)
    marks[failed] = np.nan
    return marks, failed, reasons
