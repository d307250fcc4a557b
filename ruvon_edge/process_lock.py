"""One process at a time per database, across processes: ``flock`` on a file beside the db.

Used by ``ruvon-sync`` (two agents would ship and delete the same records)
and ``ruvon-edge serve`` (two workers would run the same steps twice). The
kernel drops the lock when its holder dies, even by kill -9, so a dead
process never blocks the next one and there is nothing to clean up (the
empty lock file itself may stay). Stdlib only: a leaf both sides may import.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class LockBusy(RuntimeError):
    """Another process holds the lock."""


class ProcessLock:
    """A non-blocking exclusive ``flock`` held by ``holder`` (named in the error); a context manager."""

    def __init__(self, path: Path, holder: str) -> None:
        self.path = path
        self.holder = holder
        self._fd: int | None = None

    def __enter__(self) -> ProcessLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockBusy(
                f"another {self.holder} is running on this database (lock {self.path})"
            ) from None
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
