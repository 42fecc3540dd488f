"""Several processes, on one machine or many, with ``torch.distributed`` (``torchrun``).

The expensive stages of training a learned method shard over the processes
of a process group and give every process the whole result, in dataset
order, equal to what one process computes:

* **embeddings** (:func:`embed_dataset_distributed`): each process aligns and
  embeds a contiguous run of the images missing from the cache, cut at
  multiples of :data:`fiqa_bench.pipeline.embedding.CHUNK` (512), the unit in which
  :func:`~fiqa_bench.pipeline.embedding.embed_dataset` hands images to the network.
  Every forward pass therefore sees exactly the chips it sees in one process,
  and the embeddings are **bit for bit** those of one process (a batched
  forward pass on a CPU may pick other kernels, hence other roundings, for
  other batch contents or sizes, so a cut at any other place would not be:
  dlib-resnet's embeddings of 36 LFW chips embedded in chunks of 8 instead of
  512 all differ, by up to 2.4e-7), given the same cache state on every
  process as in the one-process run (a cold cache, say);
* **pseudo-labels** (:func:`fiqa_bench.methods.sdd.labels.sdd_pseudo_labels` with
  ``draws="per-chunk"``, the default under a process group): **exactly** those
  of one process with ``draws="per-chunk"``;
* **regression training** (:func:`fiqa_bench.method.training.fit_module`
  for row-mean losses: the head ensemble and full fine-tuning): data-parallel
  with ``DistributedDataParallel``; every step sees the same global batch
  and the same dropout masks as in one process, each process the gradient of
  its contiguous slice of the batch, all-reduced.  The model differs from the
  one-process model only by the order in which the per-sample gradients are
  summed (float32): about 1e-8 after a few dozen steps, but the difference
  grows as training goes on, as any float32 training's does when its sums are
  reordered.  Measured on 3,000 x 736 synthetic features, default head
  training (five heads, 30 epochs of 47 steps), two processes against one:
  predictions (0-100 scale) differ by at most 8e-6 after 1 epoch, 2e-3 after
  5, 0.71 after 30 (mean 0.13, Spearman correlation 0.99991; largest
  parameter difference 0.05).  The same run with 1 or 2 torch threads in one
  process gives identical models, so this is the sharding's summation order
  and nothing else.  Every process ends with the same model, bit for bit.

Backends: ``gloo`` on CPUs; with CUDA, ``"cpu:gloo,cuda:nccl"`` (NCCL for
tensors on the GPU, gloo for the CPU tensors the head mode and the gathers
use).  Without an initialised process group, every function here is the
one-process case (rank 0 of 1) and no collective is called.  Every process
of the group must call these functions in the same order with the same
arguments (they are collectives).
"""

from __future__ import annotations

import atexit
import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from fiqa_bench.method.dropout_tape import cpu_dropout_draw

if TYPE_CHECKING:
    from fiqa_bench.pipeline.context import RunContext
    from fiqa_bench.data import Dataset
    from fiqa_bench.pipeline.embedding import Embeddings
    from fiqa_bench.recognition.base import RecognitionModel

__all__ = [
    "DEFAULT_ALIGN",
    "all_ranks_any",
    "all_reduce_sum",
    "barrier",
    "broadcast_object",
    "current",
    "data_parallel",
    "embed_dataset_distributed",
    "gather_rows",
    "init_from_env",
    "init_if_launched",
    "is_distributed",
    "local_rank",
    "shard_range",
    "sharded_dropout",
]

#: Default granularity of :func:`shard_range`: the recognition models' forward batch (64 chips).
DEFAULT_ALIGN = 64
#: The variables ``torchrun`` sets that :func:`init_from_env` reads.
ENV_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


# --- the process group ---------------------------------------------------------------------------------


def current() -> tuple[int, int]:
    """``(rank, world_size)`` of this process; ``(0, 1)`` when no process group is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_distributed() -> bool:
    """Whether a process group of more than one process is initialised (the sharded paths run)."""
    return current()[1] > 1


def local_rank() -> int:
    """This process's index on its machine (``LOCAL_RANK``, set by torchrun; 0 without it)."""
    value = os.environ.get("LOCAL_RANK", "0")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"LOCAL_RANK must be an integer, got {value!r}") from None


def init_from_env(backend: str | None = None, cuda: bool | None = None) -> tuple[int, int]:
    """Join the process group ``torchrun`` describes in the environment; returns ``(rank, world_size)``.

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
    ``MASTER_PORT`` (``torchrun`` sets them all; a launcher of your own must
    too).  Does nothing but report when a group is already initialised.

    Args:
        backend: a ``torch.distributed`` backend; default ``"gloo"`` on CPUs and
            ``"cpu:gloo,cuda:nccl"`` with CUDA (NCCL moves GPU tensors; the
            CPU tensors of head-mode training and of the gathers go by gloo,
            which NCCL cannot carry).
        cuda: whether this process uses a GPU (default: whether CUDA is
            available); it then takes GPU ``LOCAL_RANK`` (``torch.cuda.set_device``).

    Raises:
        ValueError: a variable is missing or not an integer, or ``RANK`` is
            outside ``[0, WORLD_SIZE)``; the message names it.
    """
    if dist.is_initialized():
        return current()
    missing = [name for name in ENV_VARIABLES if name not in os.environ]
    if missing:
        raise ValueError(f"torch.distributed needs {', '.join(missing)} in the environment (torchrun sets "
                         f"{', '.join(ENV_VARIABLES)}); start with 'torchrun --nproc_per_node=N ...'")
    values = {}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT"):
        try:
            values[name] = int(os.environ[name])
        except ValueError:
            raise ValueError(f"{name} must be an integer, got {os.environ[name]!r}") from None
    rank, world = values["RANK"], values["WORLD_SIZE"]
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"need 0 <= RANK < WORLD_SIZE, got RANK={rank}, WORLD_SIZE={world}")
    use_cuda = torch.cuda.is_available() if cuda is None else bool(cuda)
    if use_cuda:
        torch.cuda.set_device(values["LOCAL_RANK"])
    dist.init_process_group(backend or ("cpu:gloo,cuda:nccl" if use_cuda else "gloo"), rank=rank,
                            world_size=world)
    return current()


def init_if_launched(device: str = "cpu") -> str:
    """Join torchrun's process group when this process was started by it with ``WORLD_SIZE`` > 1.

    Returns the torch device this process should use: ``device``, except that
    ``"cuda"`` becomes ``"cuda:<LOCAL_RANK>"`` (one GPU per process).  Nothing
    happens (and ``device`` is returned) without torchrun's ``WORLD_SIZE`` or with one process.

    Raises:
        ValueError: ``WORLD_SIZE`` is not an integer, or :func:`init_from_env` refuses the environment.
    """
    value = os.environ.get("WORLD_SIZE", "1")
    try:
        world = int(value)
    except ValueError:
        raise ValueError(f"WORLD_SIZE must be an integer, got {value!r}") from None
    if world <= 1:
        return device
    init_from_env(cuda=device.startswith("cuda"))
    atexit.register(_shut_down)
    return f"cuda:{local_rank()}" if device == "cuda" else device


def _shut_down() -> None:
    """Leave the process group at exit (NCCL warns when a group is never destroyed)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every process of the group is here (nothing without a group)."""
    if is_distributed():
        dist.barrier()


def broadcast_object(value: Any, src: int = 0) -> Any:
    """``value`` of process ``src`` on every process (pickled; for small objects)."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def _collective_device() -> torch.device:
    """Where collective tensors must live: the GPU for a pure NCCL group, else the CPU (gloo)."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_ranks_any(mask: np.ndarray) -> np.ndarray:
    """Element-wise OR of a boolean array over the processes (every process passes the same shape)."""
    mask = np.asarray(mask, dtype=bool)
    if not is_distributed():
        return mask.copy()
    t = torch.from_numpy(mask.astype(np.uint8)).to(_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.cpu().numpy().astype(bool)


def all_reduce_sum(values: np.ndarray) -> np.ndarray:
    """Element-wise float64 sum of an array over the processes (every process passes the same shape).

    The order of the additions is the backend's: equal on every process, not
    necessarily that of a sum in one process.
    """
    values = np.asarray(values, dtype=np.float64)
    if not is_distributed():
        return values.copy()
    t = torch.from_numpy(values.copy()).to(_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().numpy()


def shard_range(n: int, rank: int, world: int, align: int = DEFAULT_ALIGN) -> tuple[int, int]:
    """Process ``rank``'s contiguous share ``[start, stop)`` of ``n`` items.

    The items are cut in blocks of ``align`` (the last may be shorter) and
    the blocks dealt out as evenly as possible, in order: every boundary is a
    multiple of ``align`` (or ``n``), the ranges of ranks ``0 .. world-1`` are
    consecutive and cover ``[0, n)``, and a rank may get none (``start ==
    stop``) when there are fewer blocks than processes.  Aligning to the unit
    a computation is batched in keeps every batch the same as in one process.

    Raises:
        ValueError: ``n < 0``, ``world < 1``, ``rank`` outside ``[0, world)`` or ``align < 1``.
    """
    for name, value, low in (("n", n, 0), ("world", world, 1), ("align", align, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < world:
        raise ValueError(f"rank must be an integer in [0, {world}), got {rank!r}")
    blocks = -(-int(n) // int(align))
    first, last = rank * blocks // world, (rank + 1) * blocks // world
    return min(int(n), first * int(align)), min(int(n), last * int(align))


def gather_rows(local: np.ndarray, n_total: int) -> np.ndarray:
    """Every process's rows, concatenated in rank order, on every process.

    Each process passes its rows (``(n_r, ...)``, any ``n_r`` including 0; the
    same dtype and trailing shape everywhere); with contiguous shares in rank
    order (:func:`shard_range`) the result is in dataset order.  Numeric and
    boolean rows travel as their raw bytes in a ``uint8`` tensor through
    ``all_gather`` (padded to the longest share): bit for bit, with no
    pickling and one copy per process, and over NCCL when the group is pure
    NCCL.  Strings and objects (whose width or size differs between
    processes) go through ``all_gather_object`` (pickled).

    Raises:
        ValueError: the shares' dtypes or trailing shapes differ, or their row
            counts do not add up to ``n_total``.
    """
    local = np.asarray(local)
    if local.ndim == 0:
        raise ValueError(f"local must have a row axis, got a 0-d array {local!r}")
    if not is_distributed():
        if len(local) != n_total:
            raise ValueError(f"rows add up to {len(local)}, not n_total={n_total}")
        return local.copy()
    numeric = local.dtype.kind in "biufc"
    heads: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(heads, (len(local), local.dtype.str if numeric else local.dtype.kind, local.shape[1:]))
    if len({h[1:] for h in heads}) != 1:
        raise ValueError(f"processes hold rows of different dtypes or shapes: {[h[1:] for h in heads]}")
    counts = [h[0] for h in heads]
    if sum(counts) != n_total:
        raise ValueError(f"rows of the processes add up to {sum(counts)} ({counts}), not n_total={n_total}")
    if not numeric:
        parts: list[Any] = [None] * len(counts)
        dist.all_gather_object(parts, local)
        return np.concatenate([np.asarray(p).reshape((-1,) + local.shape[1:]) for p in parts])
    row_bytes = local.dtype.itemsize * int(np.prod(local.shape[1:], dtype=np.int64))
    device = _collective_device()
    flat = np.ascontiguousarray(local).view(np.uint8).reshape(-1)
    padded = torch.zeros(max(counts) * row_bytes, dtype=torch.uint8, device=device)
    padded[: flat.size] = torch.from_numpy(flat).to(device)
    received = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(received, padded)
    data = b"".join(t[: c * row_bytes].cpu().numpy().tobytes() for t, c in zip(received, counts))
    return np.frombuffer(data, dtype=local.dtype).reshape((n_total,) + local.shape[1:]).copy()


# --- embeddings ----------------------------------------------------------------------------------------


def _face_column_names(detector: str) -> list[str]:
    """The faces store's columns (``points5`` only for a detector that gives the ArcFace points; see
    ``pipeline.embedding._face_columns``)."""
    from fiqa_bench.faces.detector import detector_card

    return ["box", "landmarks", "failure", "notes", *(["points5"] if detector_card(detector).gives_points5 else [])]


def embed_dataset_distributed(
    dataset: Dataset, model: RecognitionModel, context: RunContext, output: str = "embedding"
) -> Embeddings:
    """:func:`~fiqa_bench.pipeline.embedding.embed_dataset`, the work shared by the processes of the group.

    1. Every process hashes the files (cheap next to alignment) and says which
       images its cache lacks; the images missing from *any* process's cache
       are the work, in first-seen order: the order ``embed_dataset`` computes
       them in.
    2. Process ``r`` aligns and embeds its share (:func:`shard_range` with
       ``align = pipeline.CHUNK``) chunk by chunk exactly as ``embed_dataset``
       does, and stores the rows in its cache.
    3. When some process's cache still lacks rows (caches not shared, e.g. a
       local disk per node), the computed rows (embeddings and face rows, not
       chips) are gathered in memory (:func:`gather_rows`) and each process
       stores those it lacks.  On a shared cache nothing is gathered.
    4. Every process returns ``embed_dataset(...)``, now read whole from its cache.

    Exact: from the same cache state on every process (a cold cache, say),
    the result is bit for bit what ``embed_dataset`` returns in one process,
    on every process, because every chunk of 512 holds the same images and
    the network gets the same batches.  To compare, run both with the same
    torch thread count per process (1 and 2 threads gave identical
    embeddings here, but nothing in torch promises it).  Without a process
    group it is ``embed_dataset``.

    Each process aligns with ``context.workers`` processes of its own: give
    each ``cores / processes per machine``.  Chips are not gathered: on
    caches that are not shared, a later stage that reads chips (full-mode
    training) cuts those of the other processes' images again.

    Raises:
        ValueError: ``output`` is not one the model has.
    """
    from fiqa_bench.pipeline.cache import KeyedStore
    from fiqa_bench.faces.templates import get_template
    from fiqa_bench.pipeline import embedding as pipeline
    from fiqa_bench.pipeline import stores

    compute, dim = pipeline.output_function(model, output)
    if not is_distributed():
        return pipeline.embed_dataset(dataset, model, context, output)
    rank, world = current()
    context = context if rank == 0 else context.but(progress=False)
    settings = context.alignment
    template = get_template(model.card.template)
    paths = list(dataset.paths)
    keys = context.file_keys.of(paths, context.progress)  # the run's keys: embed_dataset below reads no file again
    path_of = dict(zip(keys, paths))  # byte-identical files share a key: one path serves (as in ensure_chips)
    unique = list(dict.fromkeys(keys))  # first-seen order, as KeyedStore.missing gives embed_dataset its work
    store_dir = pipeline.output_store(context, model, output).directory
    faces_dir = stores.faces_dir(context.cache_dir, settings.digest())
    lacks_emb = set(KeyedStore(store_dir).missing(unique))
    lacks_faces = set(KeyedStore(faces_dir).missing(unique))
    need_emb = all_ranks_any(np.array([k in lacks_emb for k in unique], dtype=bool))
    need_face = all_ranks_any(np.array([k in lacks_faces for k in unique], dtype=bool)) & ~need_emb
    todo = [k for k, t in zip(unique, need_emb) if t]
    face_only = [k for k, t in zip(unique, need_face) if t]
    lo, hi = shard_range(len(todo), rank, world, align=pipeline.CHUNK)
    flo, fhi = shard_range(len(face_only), rank, world, align=1)
    mine, mine_faces = todo[lo:hi], face_only[flo:fhi]

    if mine or mine_faces:
        aligned = mine + mine_faces
        faces, chips = pipeline.ensure_chips([path_of[k] for k in aligned], aligned, template, context)
        store = KeyedStore(store_dir)
        for chunk_keys in pipeline._chunks(mine, pipeline.CHUNK):  # exactly as embed_dataset: bit for bit
            (emb,) = pipeline.embed_chunk(chunk_keys, faces, chips, lambda c: (compute(c),), (dim,))
            lacking = set(store.missing(chunk_keys))  # all, unless this cache held some already
            rows = [i for i, k in enumerate(chunk_keys) if k in lacking]
            if rows:
                store.put([chunk_keys[i] for i in rows], {"embedding": emb[rows]})
    barrier()

    still = bool(KeyedStore(store_dir).missing(todo)) or bool(KeyedStore(faces_dir).missing(todo + face_only))
    if all_ranks_any(np.array([still]))[0]:  # some cache is not shared: send the computed rows everywhere
        sent = mine + mine_faces
        face_rows = KeyedStore(faces_dir).get(sent, _face_column_names(settings.detector)) if sent else {}
        shares: list[Any] = [None] * world
        dist.all_gather_object(shares, (sent, face_rows, mine))  # small per-image rows, pickled
        emb_rows = (KeyedStore(store_dir).get(mine, ["embedding"])["embedding"] if mine
                    else np.zeros((0, dim), np.float32))
        all_emb = gather_rows(emb_rows, len(todo))  # float32 bytes, exact
        faces, store = KeyedStore(faces_dir), KeyedStore(store_dir)
        for share_keys, share_faces, _ in shares:
            lacking = set(faces.missing(share_keys))
            rows = [i for i, k in enumerate(share_keys) if k in lacking]
            if rows:
                faces.put([share_keys[i] for i in rows], {name: col[rows] for name, col in share_faces.items()})
        emb_keys = [k for _, _, share_mine in shares for k in share_mine]
        lacking = set(store.missing(emb_keys))
        rows = [i for i, k in enumerate(emb_keys) if k in lacking]
        if rows:
            store.put([emb_keys[i] for i in rows], {"embedding": all_emb[rows]})
        barrier()
    return pipeline.embed_dataset(dataset, model, context, output)


# --- data-parallel training ----------------------------------------------------------------------------


class _BatchShardDropout(nn.Module):
    """``nn.Dropout`` whose mask is drawn for the whole global batch, of which this process keeps its rows.

    Every process draws the mask of the global batch's shape from the same
    (identically seeded) default generator, with the same operation
    ``F.dropout`` uses for that shape in one process (on the CPU:
    ``empty.bernoulli_(1 - p).div_(1 - p)``, then a product; on CUDA the fused
    kernel, applied to ones), and keeps rows ``[lo, hi)``: each sample gets
    the mask it gets in one process, and the generators stay in step.
    """

    def __init__(self, original: nn.Dropout) -> None:
        super().__init__()
        self.p = float(original.p)
        self.rows = (0, 0, 0)  # (global batch length, lo, hi), set before each step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, lo, hi = self.rows
        if x.shape[0] != hi - lo:
            raise RuntimeError(f"dropout got {x.shape[0]} rows, expected {hi - lo} of a batch of {n}")
        if not self.training or self.p == 0.0 or n == 0:
            return x
        if self.p == 1.0:
            return x * torch.zeros((), dtype=x.dtype, device=x.device)
        shape = (n, *x.shape[1:])
        if x.device.type == "cpu":
            noise = cpu_dropout_draw(shape, 1.0 - self.p, x.dtype).div_(1.0 - self.p)
        else:
            noise = torch.native_dropout(torch.ones(shape, dtype=x.dtype, device=x.device), self.p, True)[0]
        return x * noise[lo:hi]


@contextmanager
def sharded_dropout(model: nn.Module) -> Iterator[list[_BatchShardDropout]]:
    """Within the block, every ``nn.Dropout`` of ``model`` draws global-batch masks (:class:`_BatchShardDropout`).

    Yields the replacements (set their ``rows`` before each step); the
    original modules are put back on exit.  Dropout modules hold no
    parameters, so the state dict is unchanged.

    Raises:
        ValueError: the model holds another kind of dropout (``Dropout2d`` ...),
            whose masks this does not reproduce.
    """
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                swapped.append((parent, name, child))
            elif isinstance(child, nn.modules.dropout._DropoutNd) and child.p > 0:
                raise ValueError(f"data-parallel training reproduces nn.Dropout masks only, not {type(child).__name__} "
                                 f"({name})")
    replacements = []
    for parent, name, child in swapped:
        new = _BatchShardDropout(child)
        setattr(parent, name, new)
        replacements.append(new)
    try:
        yield replacements
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


def data_parallel(model: nn.Module, parameters: list[nn.Parameter]) -> nn.Module:
    """``model`` in ``DistributedDataParallel``, all-reducing (averaging) the gradients of ``parameters``.

    Parameters of ``model`` outside ``parameters`` stop requiring gradients
    (DDP would wait for their gradients forever); the caller restores them
    (see ``fit_module``).  Buffers are broadcast from process 0 at every
    forward pass, so every process holds the same model.
    """
    from torch.nn.parallel import DistributedDataParallel

    trained = {id(p) for p in parameters}
    for p in model.parameters():
        if id(p) not in trained:
            p.requires_grad_(False)
    device = next(model.parameters()).device
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
