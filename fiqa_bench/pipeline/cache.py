"""A content-addressed, append-only, resumable cache of per-image rows.

A :class:`KeyedStore` is a folder of shard files (``shard-*.npz``).  Each
shard holds a ``keys`` column (one string per row, normally the sha256 of an
image file's bytes) and any number of equally long columns (chips,
landmarks, embeddings, reasons).  Which store a row lives in encodes everything
else it depends on (model fingerprint, alignment settings), so a key plus a
store fully determine the row.

Interruption and concurrency
----------------------------

* Every file is written whole or not at all (:func:`atomic_write`: a hidden
  temporary beside it, flushed to disk, then renamed over the final name).
  A process killed at any point (SIGKILL included) leaves at most a hidden
  ``.*.tmp`` file, which no reader looks at; a rerun computes only the keys
  still missing.
* Shards are immutable once they appear: nothing rewrites or replaces a
  shard, so a reader never sees one change under it, and readers take no lock.
* Writers of one store (several processes sharing a cache directory) take an
  exclusive ``fcntl.flock`` on the store's ``.lock`` file only while they look
  for shards written meanwhile and write theirs.  Under that lock a writer
  stores only the keys no shard holds yet (*first writer wins*), names its
  shard with the next shard number (so name order is write order), and removes
  the temporaries that killed writers left.  Each key is therefore stored once,
  and every process reads a key's row back from the store, so processes that
  computed the same key at the same time (an embedding can differ in its last
  bits with the batch it was computed in) still agree with each other and
  with every later run.
* A shard that cannot be read (a file damaged outside this module's control,
  e.g. by a crash of the machine before the disk was written) is renamed
  aside (``.<name>.unreadable``) with a warning, and its keys are computed again.

A :class:`StepStore` keeps the finished steps of one long computation (an
EVRC study's random band and bootstrap) so that a rerun, or a run resumed
after an interruption, skips them.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import uuid
import warnings
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterable, Iterator

import numpy as np

KEY_COLUMN = "keys"
#: The lock file of a store's writers (hidden: no shard pattern matches it).
LOCK_NAME = ".lock"
_SHARD_NUMBER = re.compile(r"shard-(\d+)-")
#: What :func:`atomic_write` names its temporary: ``.<final name>.<32 hex digits>.tmp``.
_TEMPORARY = re.compile(r"\.(.+)\.[0-9a-f]{32}\.tmp")


def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def remove_temporaries(directory: Path, names: Iterable[str] | None = None) -> int:
    """Delete the temporaries :func:`atomic_write` left in ``directory`` when it was killed; returns how many.

    Only those of ``names`` (final file names) when given, else every one.
    Call it only where no live process is writing: under the folder's writer
    lock, or in a folder that has one writer (a results folder).
    """
    if not Path(directory).is_dir():
        return 0
    wanted = None if names is None else set(names)
    removed = 0
    for tmp in Path(directory).glob(".*.tmp"):
        match = _TEMPORARY.fullmatch(tmp.name)
        if match and (wanted is None or match.group(1) in wanted) and tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


@contextmanager
def atomic_write(path: Path, mode: str = "w") -> Iterator[IO]:
    """Write ``path`` through a temporary file beside it, renamed over ``path`` on success.

    Readers never see a partial file, and an interrupted write leaves ``path``
    as it was (the temporary file is removed; after SIGKILL a hidden
    ``.<name>.<random>.tmp`` may remain, which nothing reads).  The data is
    flushed to disk before the rename, so a crash of the machine cannot leave
    ``path`` truncated either.  Text mode uses ``newline=""`` (what the csv
    module needs; plain text is unaffected) and UTF-8.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path)
    try:
        with open(tmp, mode, **({} if "b" in mode else {"newline": "", "encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """``path.write_text(text)``, but whole or not at all (:func:`atomic_write`)."""
    with atomic_write(path) as fh:
        fh.write(text)


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``fcntl.flock`` on ``path`` (created if needed), released on exit.

    The kernel releases it when the holder dies, so a killed process never
    leaves a store locked.  On a file system without locks it warns once and
    goes on unlocked.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            locked = True
        except OSError as err:
            if err.errno not in _NO_LOCKS:
                raise
            _warn_no_locks(path, err)
            locked = False
        try:
            yield
        finally:
            if locked:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


#: flock errors of file systems that have no locks: the cache still works, for one process at a time.
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)
_warned_no_locks: set[str] = set()


def _warn_no_locks(path: Path, err: OSError) -> None:
    folder = str(path.parent.parent)
    if folder not in _warned_no_locks:
        _warned_no_locks.add(folder)
        warnings.warn(f"the file system of {path.parent} has no file locks ({err.strerror}); the cache works, "
                      "but two processes must not write to it at the same time", RuntimeWarning, stacklevel=4)


class KeyedStore:
    """Rows of named numpy columns, looked up by string key.

    Safe to share between processes (see the module docstring): each key is
    stored once, by the first process to write it.

    Args:
        directory: the store's folder (created on first write).
        compressed: write shards zip-compressed (``np.savez_compressed``);
            for columns with much redundancy, e.g. padding.  Either kind is read.
    """

    def __init__(self, directory: Path, compressed: bool = False) -> None:
        self.directory = Path(directory)
        self.compressed = compressed
        self._index: dict[str, tuple[Path, int]] = {}
        self._indexed: set[str] = set()
        self._loaded = False

    def _shards(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("shard-*.npz"))

    def _refresh(self) -> dict[str, tuple[Path, int]]:
        """The index, with the shards that appeared since the last look (this or another process's).

        Shards are read in name order, which is write order, and a key keeps
        the row of the first shard that holds it.
        """
        for shard in self._shards():
            if shard.name in self._indexed:
                continue
            try:
                with np.load(shard, allow_pickle=False) as data:
                    keys = data[KEY_COLUMN].tolist()
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
                self._set_aside(shard, err)
                continue
            self._indexed.add(shard.name)
            for row, key in enumerate(keys):
                self._index.setdefault(key, (shard, row))
        self._loaded = True
        return self._index

    def _set_aside(self, shard: Path, err: Exception) -> None:
        """Rename an unreadable shard out of the store (its keys count as missing) and say so."""
        aside = shard.with_name(f".{shard.name}.unreadable")
        try:
            shard.rename(aside)
        except OSError:  # another process moved it first, or the folder is read-only
            aside = shard
        warnings.warn(f"cache shard {shard} cannot be read ({type(err).__name__}: {err}); its rows will be "
                      f"computed again (the file is now {aside.name})", RuntimeWarning, stacklevel=3)

    def _load_index(self) -> dict[str, tuple[Path, int]]:
        """The index as last read (read once on first use)."""
        return self._index if self._loaded else self._refresh()

    def __contains__(self, key: object) -> bool:
        return key in self._load_index()

    def __len__(self) -> int:
        return len(self._refresh())

    def missing(self, keys: list[str]) -> list[str]:
        """The distinct keys of ``keys`` not yet stored (by any process), in first-seen order."""
        index = self._refresh()
        return list(dict.fromkeys(k for k in keys if k not in index))

    def put(self, keys: list[str], columns: dict[str, np.ndarray]) -> None:
        """Store one shard of rows; every column must have ``len(keys)`` rows.

        Keys already stored (by another process meanwhile, or repeated in
        ``keys``) keep their first row: :meth:`get` returns that one.
        """
        if KEY_COLUMN in columns:
            raise ValueError(f"column name {KEY_COLUMN!r} is reserved")
        for name, col in columns.items():
            if len(col) != len(keys):
                raise ValueError(f"column {name!r} has {len(col)} rows for {len(keys)} keys")
        if not keys:
            return
        with file_lock(self.directory / LOCK_NAME):
            remove_temporaries(self.directory)  # a killed writer's: under the lock no live writer has one
            index = self._refresh()
            first: dict[str, int] = {}
            for row, key in enumerate(keys):
                if key not in index:
                    first.setdefault(key, row)
            if not first:
                return
            rows = np.fromiter(first.values(), dtype=np.int64, count=len(first))
            numbers = [int(m.group(1)) for m in map(_SHARD_NUMBER.match, (s.name for s in self._shards())) if m]
            final = self.directory / f"shard-{max(numbers, default=-1) + 1:06d}-{uuid.uuid4().hex[:8]}.npz"
            save = np.savez_compressed if self.compressed else np.savez
            with atomic_write(final, "wb") as fh:
                save(fh, **{KEY_COLUMN: np.asarray(list(first), dtype=str)},
                     **{name: np.asarray(col)[rows] for name, col in columns.items()})
            self._indexed.add(final.name)
            for row, key in enumerate(first):
                index[key] = (final, row)

    def _where(self, keys: list[str]) -> dict[Path, list[tuple[int, int]]]:
        """(position in ``keys``, row) of every key, grouped by the shard that holds it.

        Raises:
            KeyError: a key is not stored (the message names it).
        """
        index = self._load_index()
        if any(k not in index for k in keys):
            index = self._refresh()  # written by another process since the last look?
        missing = [k for k in keys if k not in index]
        if missing:
            raise KeyError(f"{len(missing)} keys not in {self.directory}, e.g. {missing[0]!r}")
        by_shard: dict[Path, list[tuple[int, int]]] = {}
        for position, key in enumerate(keys):
            shard, row = index[key]
            by_shard.setdefault(shard, []).append((position, row))
        return by_shard

    def get(self, keys: list[str], columns: list[str]) -> dict[str, np.ndarray]:
        """The named columns for ``keys``, stacked in the order of ``keys``.

        Raises:
            KeyError: a key is not stored (the message names it).
        """
        out: dict[str, np.ndarray] = {}
        for shard, wanted in self._where(keys).items():
            positions = np.array([p for p, _ in wanted])
            rows = np.array([r for _, r in wanted])
            with np.load(shard, allow_pickle=False) as data:
                for name in columns:
                    col = data[name]
                    if name not in out:
                        out[name] = np.empty((len(keys),) + col.shape[1:], dtype=col.dtype)
                    elif out[name].dtype != col.dtype and out[name].dtype.kind == "U":
                        wider = np.promote_types(out[name].dtype, col.dtype)
                        out[name] = out[name].astype(wider)
                    out[name][positions] = col[rows]
        if not keys:
            out = {name: np.empty((0,)) for name in columns}
        return out

    def get_rows(self, keys: list[str], columns: list[str]) -> list[tuple[np.ndarray, ...]]:
        """Per key, in the order of ``keys``, its row of each named column, unstacked.

        For columns whose row shape differs between shards (which :meth:`get`
        cannot stack), e.g. variable-length bytes padded to each shard's longest.

        Raises:
            KeyError: a key is not stored (the message names it).
        """
        out: list[tuple[np.ndarray, ...] | None] = [None] * len(keys)
        for shard, wanted in self._where(keys).items():
            with np.load(shard, allow_pickle=False) as data:
                cols = [data[name] for name in columns]
                for position, row in wanted:
                    out[position] = tuple(col[row] for col in cols)
        return out  # type: ignore[return-value]  # every position was filled


class StepStore:
    """Finished steps of one long computation, a JSON file each, so that a rerun skips them.

    ``context`` is a digest of everything the computation depends on (its
    inputs and settings); a step's file is named by a hash of the context and
    the step's name, so changed inputs never meet stale results.  Each file
    is written atomically: an interrupted run loses at most the step in
    progress, and a file that cannot be read counts as not finished.  Writers
    of one folder take its ``.lock`` (as a :class:`KeyedStore`'s) while they
    write, and the first writer of a step wins: a process that finished a step
    another wrote meanwhile leaves that file as it is (it removes temporaries
    that killed writers left).
    ``directory=None`` stores nothing (every step is computed).

    Args:
        directory: folder of the step files (created on first write), or None.
        context: digest of the computation's inputs and settings.
    """

    def __init__(self, directory: Path | None, context: str) -> None:
        self.directory = None if directory is None else Path(directory)
        self.context = context

    def _path(self, step: str) -> Path:
        if self.directory is None:
            raise RuntimeError("a StepStore without a directory has no files")
        return self.directory / f"{hashlib.sha256(f'{self.context}/{step}'.encode()).hexdigest()[:32]}.json"

    def get(self, step: str) -> dict | None:
        """The stored value of ``step``, or None when it has not finished (or cannot be read)."""
        if self.directory is None:
            return None
        try:
            value = json.loads(self._path(step).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) and value.get("step") == step else None

    def put(self, step: str, value: dict) -> None:
        """Store ``value`` (JSON-serialisable; NaN allowed) as the result of ``step``."""
        if self.directory is None:
            return
        with file_lock(self.directory / LOCK_NAME):
            remove_temporaries(self.directory)
            if self.get(step) is None:
                write_text_atomic(self._path(step), json.dumps({"step": step, **value}))
