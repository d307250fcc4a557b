"""The disk reserve: a ballast file beside the database, given up when the disk fills.

Why a file and not a page limit: SQLite's ``max_page_count`` does not bound
the WAL, and on a full disk the WAL is what every write -- including sync's
deletes, the only thing that frees space -- needs to grow. So the store keeps
``<db>.reserve`` allocated (``posix_fallocate``, so the blocks are really
taken). When a write fails with SQLITE_FULL the reserve is deleted: from then
on sync's writes have that much room, while the engine refuses new work (its
gate is "the reserve exists") until space is back and the reserve could be
allocated again. The file is the state, so every process on the device sees
it: an agent that released it stops the engine in another process too.

Size: ``RUVON_DISK_RESERVE_BYTES`` or 2 MiB (0 turns the reserve off). It is
recreated only when the filesystem has the reserve plus half as much again
free, so recreating it never takes the last bytes of a nearly full disk.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

DEFAULT_BYTES = 2 * 1024 * 1024
ENV = "RUVON_DISK_RESERVE_BYTES"


def configured_size(size: int | None) -> int:
    """The reserve size: the argument, else ``$RUVON_DISK_RESERVE_BYTES``, else 2 MiB."""
    if size is not None:
        return max(0, int(size))
    raw = os.environ.get(ENV, "").strip()
    try:
        return max(0, int(raw)) if raw else DEFAULT_BYTES
    except ValueError:
        raise ValueError(f"{ENV} must be a number of bytes, not {raw!r}") from None


class DiskReserve:
    """``<db>.reserve``: present means the device has room to spare; absent means the disk filled."""

    def __init__(self, db_path: str, size: int) -> None:
        self.path = db_path + ".reserve"
        self.size = size

    @property
    def enabled(self) -> bool:
        return self.size > 0

    def present(self) -> bool:
        """True when the reserve is in place (always True when it is turned off)."""
        return not self.enabled or os.path.exists(self.path)

    def release(self) -> None:
        """Give the reserve's space back to the filesystem (the disk is full)."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return
        log.warning(
            "disk full: released the %d-byte reserve %s so sync can free space",
            self.size,
            self.path,
        )

    def restore(self) -> bool:
        """Allocate the reserve again if the disk has room for it and half as much again."""
        if self.present():
            return True
        directory = os.path.dirname(os.path.abspath(self.path))
        stat = os.statvfs(directory)
        if stat.f_bavail * stat.f_frsize < self.size + self.size // 2:
            return False
        tmp = self.path + ".tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            log.warning("disk reserve %s not restored: %s", self.path, exc.strerror or exc)
            return False
        log.info("disk reserve %s restored (%d bytes)", self.path, self.size)
        return True
