"""Opening the store's SQLite connections: the writer, its WAL reader, and a read-only one.

The order is the point. The schema is checked before any pragma, so a file
that is not ours (or is from a newer release) is refused exactly as it was
found -- never switched to WAL first -- and a database whose schema is current
is opened without writing a byte, so it still opens on a full disk.

The read-only open (``ruvon-edge list``/``show``, ``ruvon-sync status``) is a
plain SQLite reader: ``mode=ro`` and ``query_only``, no migration, no writer,
no pragma that writes. In WAL mode it reads committed data at once even while
another process holds the write lock. A missing or zero-byte file is refused,
never initialised. If SQLite cannot create the ``-shm`` file (a read-only
directory or filesystem, a full disk) and no ``-wal`` file holds data (so all
committed data is in the database file), the file is opened ``immutable``.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from urllib.parse import quote

from ruvon_edge.providers.persistence import PersistenceError

from . import _schema

# SQLite cannot create the -shm file: a read-only directory (EACCES) or filesystem (EROFS),
# or a full disk.
_NO_SHM = frozenset(
    {14, 1544, 4874}
)  # SQLITE_CANTOPEN, SQLITE_READONLY_DIRECTORY, SQLITE_IOERR_SHMSIZE


@dataclass(frozen=True)
class Tuning:
    """The writer's per-connection pragmas (see ``SQLitePersistenceProvider``)."""

    synchronous: str
    busy_timeout_seconds: float
    journal_size_limit: int
    wal_autocheckpoint: int
    max_page_count: int | None


def connect(target: str, busy_timeout_seconds: float, *, uri: bool = False) -> sqlite3.Connection:
    """A connection with our row factory, busy timeout and cache size (none of which writes)."""
    conn = sqlite3.connect(target, isolation_level=None, timeout=busy_timeout_seconds,
                           cached_statements=256, uri=uri)  # fmt: skip
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_seconds * 1000)}")
        # 1 MiB of page cache per connection (SQLite's default is 2): the OS caches the file
        # anyway, and on a small device RSS matters more than the odd re-read page.
        conn.execute("PRAGMA cache_size = -1024")
    except BaseException:
        conn.close()
        raise
    return conn


def open_writer(path: str, tuning: Tuning) -> sqlite3.Connection:
    """The writer: schema checked first, then WAL and the pragmas, then a migration if one is due."""
    conn = connect(path, tuning.busy_timeout_seconds)
    try:
        if _schema.inspect(conn, path) == 0:  # a new database: freed pages can go back to the disk
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {tuning.synchronous}")
        conn.execute(f"PRAGMA journal_size_limit = {tuning.journal_size_limit}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {tuning.wal_autocheckpoint}")
        conn.execute("PRAGMA temp_store = MEMORY")
        if tuning.max_page_count is not None:
            conn.execute(f"PRAGMA max_page_count = {int(tuning.max_page_count)}")
        _schema.migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def open_reader(path: str, busy_timeout_seconds: float) -> sqlite3.Connection:
    """The writer's companion: reads on its own WAL connection, never writes."""
    conn = connect(path, busy_timeout_seconds)
    conn.execute("PRAGMA query_only = ON")
    return conn


def open_read_only(path: str, busy_timeout_seconds: float) -> sqlite3.Connection:
    """A plain reader of an existing, current Ruvon Edge database (see the module docstring)."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise PersistenceError(f"{path}: no such database") from None
    if size == 0:
        raise PersistenceError(
            f"{path} is empty (0 bytes), not a Ruvon Edge database; a read-only open never initialises one"
        )
    target = "file:" + quote(os.path.abspath(path)) + "?mode=ro"
    try:
        conn, found = _read_only_at(target, path, busy_timeout_seconds)
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode not in _NO_SHM or _wal_holds_data(path):
            raise
        conn, found = _read_only_at(target + "&immutable=1", path, busy_timeout_seconds)
    try:
        if found == 0:
            raise PersistenceError(f"{path} is not a Ruvon Edge database (no schema)")
        if found < _schema.SCHEMA_VERSION:
            raise PersistenceError(
                f"{path} has schema version {found}, older than this Ruvon Edge's "
                f"({_schema.SCHEMA_VERSION}); open it read-write once (e.g. ruvon-edge serve) to upgrade it"
            )
    except BaseException:
        conn.close()
        raise
    return conn


def _wal_holds_data(path: str) -> bool:
    """True when a -wal file with content exists: committed data may be there, not in the file."""
    try:
        return os.path.getsize(path + "-wal") > 0
    except FileNotFoundError:
        return False


def _read_only_at(
    target: str, path: str, busy_timeout_seconds: float
) -> tuple[sqlite3.Connection, int]:
    """Open ``target`` read-only and return it with the schema version it holds."""
    conn = connect(target, busy_timeout_seconds, uri=True)
    try:
        conn.execute("PRAGMA query_only = ON")
        return conn, _schema.inspect(conn, path)
    except BaseException:
        conn.close()
        raise
