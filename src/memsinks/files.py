"""Files and directories written whole or not at all: into a temporary sibling, then one rename.

A reader (or a run resumed after a crash) sees the old content or the new, never a part of
either. Every result, checkpoint, model directory, token store header and annotation part of
memsinks is written through :func:`replacing`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: str | Path, *, durable: bool = False, unique: bool = False,
              keep: bool = False) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write a file or a directory to; when the block ends
    without an error it replaces ``path`` in one rename (a directory replaces the old one).

    ``durable``: the data (every file of a directory) reaches the disk before the rename, and
    the rename after it. ``unique``: the temporary name carries the process id, for writers
    that may race. ``keep``: an existing ``path`` stays, and this copy is discarded (a cache
    that another process filled first).
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid() if unique else ''}")
    _remove(tmp)
    yield tmp
    if durable:
        for file in sorted(tmp.rglob("*")) if tmp.is_dir() else [tmp]:
            if file.is_file():
                _fsync(file)
    if keep and path.exists():
        _remove(tmp)
        return
    if tmp.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    try:
        os.replace(tmp, path)
    except OSError:
        if not keep:
            raise
        _remove(tmp)  # another process made it in between
        return
    if durable:
        _fsync(path.parent)  # the rename itself survives a crash


def atomic_write(path: str | Path, text: str, *, durable: bool = False,
                 unique: bool = False) -> None:
    """Write ``text`` to ``path`` through :func:`replacing` (``durable``, ``unique`` as there)."""
    with replacing(path, durable=durable, unique=unique) as tmp:
        tmp.write_text(text)


def _fsync(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
