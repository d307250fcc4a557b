"""Giving disk space back to the filesystem after sync deleted rows on a full disk.

Deleting rows frees pages inside the database file, not on the disk: the WAL
keeps its size and freed pages sit on SQLite's freelist. On a full disk that
is not enough, because the next write needs the WAL to grow. So, while the
disk reserve is missing, the store checkpoints the WAL and truncates it to
zero, and databases created with ``auto_vacuum = INCREMENTAL`` (every database
this release creates) return free pages to the filesystem a few at a time, so
that each step fits in the little space there is.
"""

from __future__ import annotations

import sqlite3

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
