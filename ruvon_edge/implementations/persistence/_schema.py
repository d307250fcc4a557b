"""SQLite schema and its forward migrations, keyed by ``PRAGMA user_version``.

Each entry of ``MIGRATIONS`` takes a database from version ``i`` to ``i + 1``;
``migrate`` applies the missing ones and bumps ``user_version`` in the same
transaction, so a crash mid-migration leaves the old schema intact. There are
no foreign keys on purpose: a workflow is deleted only on its own merits,
never by a cascade from another one.
"""

from __future__ import annotations

import sqlite3

from ruvon_edge.providers.persistence import PersistenceError
from ruvon_edge.status import FAILED, TERMINAL

TERMINAL_SQL = ", ".join(f"'{s}'" for s in sorted(TERMINAL))
"""The terminal statuses as an SQL list (constants from ``ruvon_edge.status``, never user input)."""
FAILED_SQL = ", ".join(f"'{s}'" for s in sorted(FAILED))
"""The failed terminal statuses (kept on the device for a while after sync) as an SQL list."""

MIN_SQLITE = (3, 35, 0)  # RETURNING; window functions and UPDATE ... FROM are older

_V1_CORE = (
    """CREATE TABLE workflows (
        id TEXT PRIMARY KEY,
        workflow_type TEXT NOT NULL,
        workflow_version TEXT,
        status TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT '{}',
        current_step TEXT,
        definition TEXT,
        parent_id TEXT,
        idempotency_key TEXT,
        owner_id TEXT,
        data_region TEXT,
        saga_log TEXT,
        context TEXT,
        error TEXT,
        extra TEXT,
        version INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        completed_at TEXT
    )""",
    "CREATE UNIQUE INDEX workflows_idempotency_key ON workflows(idempotency_key) WHERE idempotency_key IS NOT NULL",
    "CREATE INDEX workflows_created ON workflows(created_at)",
    "CREATE INDEX workflows_status_created ON workflows(status, created_at)",
    "CREATE INDEX workflows_type_created ON workflows(workflow_type, created_at)",
    "CREATE INDEX workflows_parent ON workflows(parent_id) WHERE parent_id IS NOT NULL",
    """CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,  -- no AUTOINCREMENT: its sqlite_sequence row is one more page per step
        audit_id TEXT NOT NULL UNIQUE,
        workflow_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        step_name TEXT,
        old_status TEXT,
        new_status TEXT,
        details TEXT,
        recorded_at TEXT NOT NULL
    )""",
    "CREATE INDEX audit_log_workflow ON audit_log(workflow_id, seq)",
    """CREATE TABLE execution_logs (
        id INTEGER PRIMARY KEY,
        workflow_id TEXT NOT NULL,
        step_name TEXT,
        level TEXT NOT NULL,
        message TEXT NOT NULL,
        metadata TEXT,
        logged_at TEXT NOT NULL
    )""",
    "CREATE INDEX execution_logs_workflow ON execution_logs(workflow_id, id)",
    """CREATE TABLE metrics (
        id INTEGER PRIMARY KEY,
        workflow_id TEXT NOT NULL,
        step_name TEXT,
        metric_name TEXT NOT NULL,
        metric_value REAL NOT NULL,
        metadata TEXT,
        recorded_at TEXT NOT NULL
    )""",
    "CREATE INDEX metrics_workflow ON metrics(workflow_id, id)",
    """CREATE TABLE tasks (
        task_id TEXT PRIMARY KEY,
        workflow_id TEXT,
        step_name TEXT,
        function_path TEXT,
        payload TEXT,
        status TEXT NOT NULL CHECK (status IN ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED')),
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        worker_id TEXT,
        claimed_at TEXT,
        heartbeat_at TEXT,
        result TEXT,
        error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    "CREATE INDEX tasks_status_created ON tasks(status, created_at)",
    "CREATE INDEX tasks_workflow ON tasks(workflow_id)",
    """CREATE TABLE heartbeats (
        workflow_id TEXT PRIMARY KEY,
        worker_id TEXT NOT NULL,
        current_step TEXT,
        metadata TEXT,
        last_heartbeat TEXT NOT NULL
    )""",
    "CREATE INDEX heartbeats_last ON heartbeats(last_heartbeat)",
)

_V2_EDGE_SYNC = (
    "ALTER TABLE workflows ADD COLUMN sync_seq INTEGER",
    "CREATE INDEX workflows_sync_seq ON workflows(sync_seq) WHERE sync_seq IS NOT NULL",
    # Workflows that were already terminal before sync existed queue up in the order they finished.
    f"""UPDATE workflows SET sync_seq = ranked.n
        FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY updated_at, rowid) AS n
              FROM workflows WHERE status IN ({TERMINAL_SQL})) AS ranked
        WHERE workflows.id = ranked.id""",
    # A counter, not MAX()+1: deleting synced rows must never make a sequence number come back.
    "CREATE TABLE sync_counter (id INTEGER PRIMARY KEY CHECK (id = 1), last_seq INTEGER NOT NULL)",
    "INSERT INTO sync_counter VALUES (1, (SELECT COALESCE(MAX(sync_seq), 0) FROM workflows))",
    "CREATE TABLE edge_sync_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE sync_quarantine (
        kind TEXT NOT NULL CHECK (kind IN ('workflow', 'audit')),
        record_id TEXT NOT NULL,
        workflow_id TEXT,
        reason TEXT NOT NULL,
        quarantined_at TEXT NOT NULL,
        PRIMARY KEY (kind, record_id)
    )""",
    "CREATE INDEX sync_quarantine_workflow ON sync_quarantine(workflow_id)",
)

_V3_RETENTION = (
    # A FAILED* workflow stays on the device after it was synced (until retried, cancelled or
    # its retention ends); synced_at is when, and its sync_seq goes back to NULL meanwhile.
    "ALTER TABLE workflows ADD COLUMN synced_at TEXT",
    "CREATE INDEX workflows_synced_at ON workflows(synced_at) WHERE synced_at IS NOT NULL",
    # An idempotency key outlives its workflow's deletion: a second start with it runs nothing.
    """CREATE TABLE idempotency_tombstones (
        idempotency_key TEXT PRIMARY KEY,
        workflow_id TEXT NOT NULL,
        workflow_type TEXT NOT NULL,
        status TEXT NOT NULL,
        synced_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    )""",
    "CREATE INDEX idempotency_tombstones_expiry ON idempotency_tombstones(expires_at)",
)

# The batch byte limit a too-large record exceeded: raising the limit releases it.
_V4_QUARANTINE_LIMIT = ("ALTER TABLE sync_quarantine ADD COLUMN limit_bytes INTEGER",)

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    _V1_CORE,
    _V2_EDGE_SYNC,
    _V3_RETENTION,
    _V4_QUARANTINE_LIMIT,
)
SCHEMA_VERSION = len(MIGRATIONS)


def inspect(conn: sqlite3.Connection, path: str) -> int:
    """Return the schema version found, reading only (no transaction, no pragma that writes).

    Refuses a database written by a newer Ruvon Edge, and an SQLite file that
    belongs to some other application (no user_version, but tables): both
    before anything is written, so a refused file is left exactly as it was.
    """
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found > SCHEMA_VERSION:
        raise PersistenceError(
            f"{path} has schema version {found}, newer than this Ruvon Edge understands "
            f"({SCHEMA_VERSION}); upgrade ruvon-edge to open it"
        )
    if found == 0:
        foreign = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        if foreign:
            raise PersistenceError(
                f"{path} is not a valid Ruvon Edge database: it holds other tables ({', '.join(sorted(foreign))})"
            )
    return found


def migrate(conn: sqlite3.Connection, path: str) -> int:
    """Bring the schema to ``SCHEMA_VERSION`` in one transaction; return the version found.

    A database that is already current is only read: opening it writes
    nothing, so it opens on a full disk.
    """
    if inspect(conn, path) == SCHEMA_VERSION:
        return SCHEMA_VERSION
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Again, under the write lock: another process may have migrated meanwhile.
        found = inspect(conn, path)
        for statements in MIGRATIONS[found:]:
            for sql in statements:
                conn.execute(sql)
        if found < SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return found
