"""Writing on a disk that may fill: the reserve's rules (``_disk_reserve``) applied to the store.

``DiskGuard`` wraps the store's writes. Engine writes pass only while the
reserve is in place (or can be allocated again); sync's acks and deletes may
spend it, are split in halves when even it is too small, and give the space
they free back to the filesystem.

Giving space back after sync deleted rows on a full disk:

Deleting rows frees pages inside the database file, not on the disk: the WAL
keeps its size and freed pages sit on SQLite's freelist. On a full disk that
is not enough, because the next write needs the WAL to grow. So, while the
disk reserve is missing, the store checkpoints the WAL and truncates it to
zero, and databases created with ``auto_vacuum = INCREMENTAL`` (every database
this release creates) return free pages to the filesystem a few at a time, so
that each step fits in the little space there is.
"""

from __future__ import annotations

import logging
import sqlite3

from ruvon_edge.providers.persistence import DiskFullError, PersistenceError

from ._disk_reserve import DiskReserve
from ._sqlite_thread import ConnectionThread

logger = logging.getLogger(__name__)

STEP_PAGES = 64
"""Pages given back per incremental vacuum: each step's WAL frames must fit in a nearly full disk."""


def truncate_wal(conn: sqlite3.Connection) -> bool:
    """Checkpoint the whole WAL into the database and truncate it; False if a reader held it."""
    busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return busy == 0


def shrink(conn: sqlite3.Connection) -> bool:
    """Give up to ``STEP_PAGES`` free pages back to the filesystem; True if any went."""
    before = conn.execute("PRAGMA freelist_count").fetchone()[0]
    if before == 0 or conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:  # 2 = INCREMENTAL
        return False
    conn.execute(f"PRAGMA incremental_vacuum({STEP_PAGES})").fetchall()
    return conn.execute("PRAGMA freelist_count").fetchone()[0] < before


class DiskGuard:
    """The disk-full policy of one store: who may write while the reserve is missing."""

    def __init__(self, reserve: DiskReserve, db_path: str) -> None:
        self.reserve = reserve
        self.db_path = db_path
        self.refusals = 0
        self.refusing = False

    async def write(self, writer: ConnectionThread, fn, *args):
        """Run ``fn`` in a write transaction, unless the disk reserve is gone (``DiskFullError``).

        Most "full" disks on a small device are a WAL grown between
        checkpoints, so a write that hits SQLITE_FULL gives space back and is
        retried once -- but only if the reserve could be allocated again: the
        reserve's space is for sync's deletes, never for new engine work.
        """
        await self.admit(writer)
        try:
            return await writer.call(fn, *args, write=True)
        except DiskFullError:
            self.reserve.release()
            await self.admit(writer)
            return await writer.call(fn, *args, write=True)

    async def freeing_write(self, writer: ConnectionThread, fn, *args):
        """A write of sync's (acks, deletes, cursors): it may spend the reserve, then gives space back.

        While the reserve is missing the WAL is truncated and free pages go
        back to the filesystem after each such write, so what sync deleted
        becomes disk space again and the reserve is allocated again when it fits.
        """
        try:
            result = await writer.call(fn, *args, write=True)
        except DiskFullError:
            self.reserve.release()
            await self.give_back_space(writer)
            result = await writer.call(fn, *args, write=True)
        if not self.reserve.present():
            await self.give_back_space(writer)
            self.reserve.restore()
        return result

    async def freeing_delete(self, writer: ConnectionThread, fn, ids: list[str], *rest) -> int:
        """Delete in one transaction or, when even the reserve is too small for it, in halves.

        Each half that commits frees space for the next, so a full disk never
        blocks sync's deletes whatever the batch size; every row keeps its own
        safety predicate, so splitting changes nothing about what is deleted.
        """
        try:
            return await self.freeing_write(writer, fn, ids, *rest)
        except DiskFullError:
            if len(ids) < 2:
                raise
            half = len(ids) // 2
            first = await self.freeing_delete(writer, fn, ids[:half], *rest)
            return first + await self.freeing_delete(writer, fn, ids[half:], *rest)

    async def admit(self, writer: ConnectionThread) -> None:
        """Let an engine write through while the reserve is in place or can be allocated again."""
        if self.reserve.present():  # one stat; no query
            return
        await self.give_back_space(writer)
        if self.reserve.restore():
            if self.refusing:
                self.refusing = False
                logger.warning(
                    "disk space is back: writes accepted again (%d refused)", self.refusals
                )
            return
        self.refusals += 1
        if not self.refusing:  # one line when refusing starts, not one per poll of a worker
            self.refusing = True
            logger.warning("disk full: refusing writes until sync frees space (%s)", self.db_path)
        raise DiskFullError(
            f"disk full: no room for the {self.reserve.size}-byte reserve beside {self.db_path} "
            "that sync needs; new work is refused until sync frees space"
        )

    async def give_back_space(self, writer: ConnectionThread) -> None:
        """Truncate the WAL and return free pages to the filesystem; best effort."""
        try:
            await writer.call(truncate_wal)
            for _ in range(256):  # at most 64 MiB per call, a step at a time
                if not await writer.call(shrink):
                    break
                await writer.call(truncate_wal)
        except PersistenceError as exc:
            logger.info("disk space not given back yet: %s", exc)
