"""One process at a time: an advisory lock file that names the process holding it."""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive(lock_path: Path, what: str, wait: bool) -> Iterator[None]:
    """Hold ``lock_path`` (``flock``, with this process's pid written in it) for ``what``.

    When another process holds it: ``wait`` prints which one and blocks until it is done;
    otherwise a ValueError names it. The lock dies with its process, so a crash never leaves a
    stale one.
    """
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _try_lock(fd):
            holder = _holder(fd)
            if holder is None:  # released while we looked
                fcntl.flock(fd, fcntl.LOCK_EX)
            elif not wait:
                raise ValueError(f"{what} is in use by another process (pid {holder}); wait "
                                 "for it to finish or stop it, then rerun")
            else:
                print(f"memsinks: waiting for pid {holder}, which holds {what}",
                      file=sys.stderr, flush=True)
                fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(fd: int) -> str | None:
    """The holder's pid, or None if the lock came free; it writes its pid just after locking."""
    for _ in range(50):
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if holder:
            return holder
        if _try_lock(fd):
            return None
        time.sleep(0.01)
    return "unknown"


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
