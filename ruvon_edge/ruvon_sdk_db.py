"""Read a ruvon-sdk device database (the reference SDK's SQLite file), read-only.

The file is opened with ``mode=ro``, so nothing can write to it: not a row,
not a checkpoint. A file is accepted only if it carries the schema ruvon-sdk
0.1.5 writes: its embedded ``SQLITE_SCHEMA`` (no version stamp, the pip
install's path), or the same tables created by the source tree's migration
tool (``schema_migrations`` holding versions up to ``KNOWN_MIGRATION``).
Anything else is refused as a whole with one line, before anything is read.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ruvon_edge.errors import RuvonError

KNOWN_MIGRATION = 3
"""Highest ``schema_migrations`` version of the reference's SQLite migrations (``003_sqlite_fixed.sql``)."""

REQUIRED_COLUMNS: dict[str, frozenset[str]] = {
    "workflow_executions": frozenset(
        "id workflow_type workflow_version current_step status state steps_config saga_mode "
        "completed_steps_stack parent_execution_id blocked_on_child_id data_region "
        "created_at updated_at completed_at idempotency_key metadata".split()
    ),
    "workflow_audit_log": frozenset(
        "audit_id workflow_id event_type step_name user_id worker_id recorded_at "
        "old_state new_state state_diff decision_rationale metadata".split()
    ),
}
"""What this importer reads; a file lacking one of these is not a schema it knows."""

OPTIONAL_COLUMNS: dict[str, frozenset[str]] = {
    "workflow_execution_logs": frozenset("workflow_id step_name log_level message logged_at metadata".split()),
    "workflow_metrics": frozenset("workflow_id step_name metric_name metric_value unit recorded_at tags".split()),
    "edge_sync_state": frozenset(("key", "value")),
}  # fmt: skip
"""Tables older devices may lack (the reference added them later); read when present and complete."""


class NotARuvonSdkDatabase(RuvonError, ValueError):
    """The file is not a ruvon-sdk database, or carries a schema version this importer does not know."""


class RuvonSdkDatabase:
    """One reference database, open read-only; rows come back as dicts in the file's own order."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.tables = _inspect(self.path)
        self._conn = _connect(self.path)

    def close(self) -> None:
        """Close the read-only connection."""
        self._conn.close()

    def __enter__(self) -> RuvonSdkDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def count_workflows(self) -> int:
        """How many workflows the file holds."""
        return self._conn.execute("SELECT COUNT(*) FROM workflow_executions").fetchone()[0]

    def workflow_batches(self, size: int) -> Iterator[list[dict[str, Any]]]:
        """Every workflow, in the order they finished (unfinished ones by last update), ``size`` at a time."""
        cursor = self._conn.execute(
            "SELECT * FROM workflow_executions "
            "ORDER BY COALESCE(NULLIF(completed_at, ''), updated_at, created_at), rowid"
        )
        while batch := cursor.fetchmany(size):
            yield [dict(row) for row in batch]

    def workflow_type_of(self, workflow_id: str) -> str | None:
        """The type of one workflow (a waiting parent's child), None if the file lacks it."""
        row = self._conn.execute(
            "SELECT workflow_type FROM workflow_executions WHERE id = ?", (workflow_id,)
        ).fetchone()
        return row[0] if row else None

    def audit_rows(self, ids: list[str]) -> list[dict[str, Any]]:
        """Audit rows of these workflows, oldest first, each with its ``rowid``."""
        return self._rows_of("workflow_audit_log", ids)

    def log_rows(self, ids: list[str]) -> list[dict[str, Any]]:
        """Execution log lines of these workflows, oldest first ([] when the table is absent)."""
        return self._rows_of("workflow_execution_logs", ids)

    def metric_rows(self, ids: list[str]) -> list[dict[str, Any]]:
        """Metrics of these workflows, oldest first ([] when the table is absent)."""
        return self._rows_of("workflow_metrics", ids)

    def sync_state(self) -> dict[str, str]:
        """The reference agent's ``edge_sync_state`` key/value pairs ({} when the table is absent)."""
        if "edge_sync_state" not in self.tables:
            return {}
        return dict(self._conn.execute("SELECT key, value FROM edge_sync_state ORDER BY key"))

    def _rows_of(self, table: str, ids: list[str]) -> list[dict[str, Any]]:
        if table not in self.tables or not ids:
            return []
        marks = ", ".join("?" * len(ids))
        sql = f"SELECT rowid AS source_rowid, * FROM {table} WHERE workflow_id IN ({marks}) ORDER BY rowid"
        return [dict(row) for row in self._conn.execute(sql, ids)]


def loads(text: Any) -> Any:
    """Decode one of the reference's JSON text columns; text that is not JSON comes back as is."""
    if not isinstance(text, str) or not text:
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


def _inspect(path: str) -> set[str]:
    """Check the file is a ruvon-sdk database of a known schema; return the tables to read."""
    p = Path(path)
    if not p.is_file():
        raise NotARuvonSdkDatabase(f"{path}: no such file")
    with p.open("rb") as fh:
        if fh.read(16) != b"SQLite format 3\x00":
            raise NotARuvonSdkDatabase(f"{path} is not a ruvon-sdk database (not an SQLite file)")
    try:
        conn = _connect(path)
        try:
            return _check_schema(conn, path)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise NotARuvonSdkDatabase(f"{path}: cannot read it as SQLite ({exc})") from None


def _check_schema(conn: sqlite3.Connection, path: str) -> set[str]:
    columns: dict[str, set[str]] = {}
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        columns[table] = {r[1] for r in conn.execute(f"PRAGMA table_info({_quoted(table)})")}
    if "workflow_executions" not in columns:
        hint = " (it is a Ruvon Edge database)" if "workflows" in columns else ""
        raise NotARuvonSdkDatabase(
            f"{path} is not a ruvon-sdk database: it has no workflow_executions table{hint}"
        )
    user_version = conn.execute("PRAGMA user_version").fetchone()[0]
    if user_version:
        raise NotARuvonSdkDatabase(
            f"{path}: unknown ruvon-sdk schema version (user_version {user_version}); "
            "this importer reads the schema of ruvon-sdk 0.1.5"
        )
    if "schema_migrations" in columns:
        newest = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] or 0
        if newest > KNOWN_MIGRATION:
            raise NotARuvonSdkDatabase(
                f"{path}: unknown ruvon-sdk schema version {newest} "
                f"(this importer knows migrations up to {KNOWN_MIGRATION})"
            )
    for table, needed in REQUIRED_COLUMNS.items():
        missing = sorted(needed - columns.get(table, set()))
        if missing:
            raise NotARuvonSdkDatabase(
                f"{path}: unknown ruvon-sdk schema: {table} lacks {', '.join(missing)}"
            )
    present = set(REQUIRED_COLUMNS)
    present |= {t for t, need in OPTIONAL_COLUMNS.items() if need <= columns.get(t, set())}
    return present


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
