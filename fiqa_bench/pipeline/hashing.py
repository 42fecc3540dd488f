"""Content hashes used to key caches and stamp results.

An image's cache key is the sha256 of its file's bytes (:func:`file_key`);
:class:`FileKeys` computes those of one run, reading each file once however
many stages ask (a :class:`~fiqa_bench.pipeline.context.RunContext` and all
its copies hold one).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

#: What identifies a file's bytes without reading them: (path, size, mtime_ns, inode, ctime_ns).
Stamp = tuple[str, int, int, int, int]


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """sha256 of the canonical JSON form of ``obj`` (sorted keys, no spaces)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def file_key(path: str | os.PathLike[str]) -> str:
    """An image's cache key: the sha256 of the file's bytes; an unreadable file gets a key naming its path.

    Byte-identical files at two paths share one key, so they share every
    cached row (face, chip, embedding, score): each is computed once and
    both paths keep their own row in every output.
    """
    try:
        return sha256_file(path)
    except OSError:
        return "unreadable:" + hashlib.sha256(os.fsencode(path)).hexdigest()


def file_stamp(path: str | os.PathLike[str]) -> Stamp | None:
    """(path, size, mtime_ns, inode, ctime_ns) of ``path``, or None when it cannot be stat'ed.

    The inode and ctime too: a file replaced by one of the same size with its
    mtime copied (``cp -p``) changes them.
    """
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return (str(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


class FileKeys:
    """The :func:`file_key` of one run's files, each file read and hashed once per run.

    One command asks for the keys of the same images at several stages
    (scores, chips, embeddings, stage features, a count of unique files); the
    run's :class:`~fiqa_bench.pipeline.context.RunContext` holds one
    ``FileKeys`` that every copy of it shares, so the second stage reads no
    file.  A key is reused only while the file's :func:`file_stamp` is
    unchanged, so a file rewritten during the run is read again; a new run
    starts empty, so a file changed between runs always gets its new key.
    """

    def __init__(self) -> None:
        self._keys: dict[Stamp, str] = {}

    def of(self, paths: Sequence[str | os.PathLike[str]], progress: bool = False) -> list[str]:
        """The :func:`file_key` of every path, in order.

        Args:
            paths: the files (a path that cannot be stat'ed is hashed every time: its key names the path).
            progress: draw a progress bar on stderr counting the files hashed now (none when all are known).

        Returns:
            One key per path.
        """
        stamps = [file_stamp(p) for p in paths]
        todo = stamps.count(None) + len({st for st in stamps if st is not None and st not in self._keys})
        bar = tqdm(total=todo, desc="hashing images", unit="img", disable=not progress or todo == 0,
                   file=sys.stderr, leave=False)
        keys = []
        for path, st in zip(paths, stamps):
            if st is None:
                keys.append(file_key(path))
                bar.update()
                continue
            if st not in self._keys:
                self._keys[st] = file_key(path)
                bar.update()
            keys.append(self._keys[st])
        bar.close()
        return keys
