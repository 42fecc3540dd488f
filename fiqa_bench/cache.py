"""A content-addressed, append-only, resumable cache of per-image rows.

A :class:`KeyedStore` is a folder of shard files (``shard-*.npz``).  Each
shard holds a ``keys`` column (one string per row, normally the sha256 of an
image file's bytes) and any number of equally long columns (chips,
landmarks, embeddings, reasons).  Work is written a shard at a time, each
shard atomically (written to a temporary name, then renamed), so an
interrupted job loses at most the shard in progress and a rerun computes
only the keys still missing.  Which store a row lives in encodes everything
else it depends on (model fingerprint, alignment settings), so a key plus a
store fully determine the row.

A :class:`StepStore` keeps the finished steps of one long computation (an
EVRC study's random band and bootstrap) so that a rerun, or a run resumed
after an interruption, skips them.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

import numpy as np

KEY_COLUMN = "keys"


@contextmanager
def atomic_write(path: Path, mode: str = "w") -> Iterator[IO]:
    """Write ``path`` through a temporary file beside it, renamed over ``path`` on success.

    Readers never see a partial file, and an interrupted write leaves ``path``
    as it was (the temporary file is removed).  Text mode uses ``newline=""``
    (what the csv module needs; plain text is unaffected).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, mode, **({} if "b" in mode else {"newline": ""})) as fh:
            yield fh
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class KeyedStore:
    """Rows of named numpy columns, looked up by string key.

    Args:
        directory: the store's folder (created on first write).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._index: dict[str, tuple[Path, int]] | None = None

    def _shards(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("shard-*.npz"))

    def _load_index(self) -> dict[str, tuple[Path, int]]:
        if self._index is None:
            index: dict[str, tuple[Path, int]] = {}
            for shard in self._shards():
                with np.load(shard, allow_pickle=False) as data:
                    for row, key in enumerate(data[KEY_COLUMN].tolist()):
                        index[key] = (shard, row)
            self._index = index
        return self._index

    def __contains__(self, key: object) -> bool:
        return key in self._load_index()

    def __len__(self) -> int:
        return len(self._load_index())

    def missing(self, keys: list[str]) -> list[str]:
        """The distinct keys of ``keys`` not yet stored, in first-seen order."""
        index = self._load_index()
        return list(dict.fromkeys(k for k in keys if k not in index))

    def put(self, keys: list[str], columns: dict[str, np.ndarray]) -> None:
        """Store one shard of rows; every column must have ``len(keys)`` rows."""
        if KEY_COLUMN in columns:
            raise ValueError(f"column name {KEY_COLUMN!r} is reserved")
        for name, col in columns.items():
            if len(col) != len(keys):
                raise ValueError(f"column {name!r} has {len(col)} rows for {len(keys)} keys")
        if not keys:
            return
        final = self.directory / f"shard-{len(self._shards()):06d}-{uuid.uuid4().hex[:8]}.npz"
        with atomic_write(final, "wb") as fh:
            np.savez(fh, **{KEY_COLUMN: np.asarray(keys, dtype=str)}, **columns)
        index = self._load_index()
        for row, key in enumerate(keys):
            index[key] = (final, row)

    def get(self, keys: list[str], columns: list[str]) -> dict[str, np.ndarray]:
        """The named columns for ``keys``, stacked in the order of ``keys``.

        Raises:
            KeyError: a key is not stored (the message names it).
        """
        index = self._load_index()
        missing = [k for k in keys if k not in index]
        if missing:
            raise KeyError(f"{len(missing)} keys not in {self.directory}, e.g. {missing[0]!r}")
        by_shard: dict[Path, list[tuple[int, int]]] = {}
        for position, key in enumerate(keys):
            shard, row = index[key]
            by_shard.setdefault(shard, []).append((position, row))
        out: dict[str, np.ndarray] = {}
        for shard, wanted in by_shard.items():
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


class StepStore:
    """Finished steps of one long computation, a JSON file each, so that a rerun skips them.

    ``context`` is a digest of everything the computation depends on (its
    inputs and settings); a step's file is named by a hash of the context and
    the step's name, so changed inputs never meet stale results.  Each file
    is written atomically: an interrupted run loses at most the step in
    progress.  ``directory=None`` stores nothing (every step is computed).

    Args:
        directory: folder of the step files (created on first write), or None.
        context: digest of the computation's inputs and settings.
    """

    def __init__(self, directory: Path | None, context: str) -> None:
        self.directory = None if directory is None else Path(directory)
        self.context = context

    def _path(self, step: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{hashlib.sha256(f'{self.context}/{step}'.encode()).hexdigest()[:32]}.json"

    def get(self, step: str) -> dict | None:
        """The stored value of ``step``, or None when it has not finished (or cannot be read)."""
        if self.directory is None:
            return None
        try:
            return json.loads(self._path(step).read_text())
        except (OSError, ValueError):
            return None

    def put(self, step: str, value: dict) -> None:
        """Store ``value`` (JSON-serialisable; NaN allowed) as the result of ``step``."""
        if self.directory is None:
            return
        with atomic_write(self._path(step)) as fh:
            fh.write(json.dumps({"step": step, **value}))
