"""The embedded default store: one SQLite file in WAL mode.

Cost model (measured on the shared 2-core dev box, file database, load ~2):
a ``commit()`` of one transition with an audit row, a log line and a metric is
one thread hop (~65 us) and one SQLite COMMIT: 520-600 us end to end
sequentially with ``synchronous="NORMAL"`` (~1,800/s), 780-830 us with
``"FULL"``. Most of it is SQLite writing ~9 dirty pages as WAL frames (two
syscalls each on this VM), which is why indexed columns are only rewritten when
they change and audit ids are time-ordered. With 50 concurrent callers group
commit puts ~50 calls in one COMMIT: 3,400-3,900 ``commit()``/s either way.
The same transaction through aiosqlite (a hop per execute, fetch and commit)
cost 660-1,100 us even with a simpler schema, so aiosqlite is not used here:
one writer thread (``_sqlite_thread``) runs each whole transaction, and one
reader thread with its own WAL connection serves reads without queueing behind
writes. A read that follows an awaited write always sees it: no write future
resolves before its COMMIT.

Durability: ``synchronous="NORMAL"`` (default) never corrupts the file; after a
power cut the last few transactions before it may be lost, while a crash of the
process alone loses nothing. ``synchronous="FULL"`` fsyncs every COMMIT, so a
power cut loses nothing either, at the price of one fsync per commit.

The WAL stays bounded: ``wal_autocheckpoint`` pages trigger a checkpoint and
``journal_size_limit`` bytes is what the WAL is truncated back to afterwards.
The default of 4000 pages (16 MiB) is above SQLite's 1000 because each
checkpoint costs two fsyncs even under NORMAL (measured 590 -> 400 us/commit).
Needs SQLite >= 3.35 (RETURNING).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from uuid import UUID

from ruvon_edge.providers.persistence import (
    AuditLogRecord,
    DiskFullError,
    PersistenceError,
    PersistenceProvider,
    QuarantinedRecord,
    Transition,
    UnreadableRecord,
    WorkflowRecord,
)

from . import _schema
from . import _sqlite_connect as connect
from . import _sqlite_sync as sync_sql
from . import _sqlite_tasks as task_sql
from . import _sqlite_workflows as wf_sql
from ._disk_reserve import DiskReserve, configured_size
from ._retention import DAY, Retention
from ._sqlite_space import DiskGuard
from ._sqlite_thread import ConnectionThread

_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = 5, 6, 11, 13, 26
_SQLITE_IOERR_SHMSIZE = 4874  # the -shm file could not be grown: the disk is full
_SYNCHRONOUS = ("NORMAL", "FULL", "EXTRA")


class SQLitePersistenceProvider(PersistenceProvider):
    """Workflows, audit trail, task queue and sync bookkeeping in one SQLite file.

    ``synchronous``: ``"NORMAL"`` (default) or ``"FULL"`` (see the module docstring).
    ``busy_timeout_seconds``: how long a write waits for another process's lock
    before failing with ``PersistenceError`` ("database is locked").
    ``journal_size_limit`` (bytes) and ``wal_autocheckpoint`` (pages) bound the WAL.
    ``max_page_count``: cap the database size in pages (``PRAGMA max_page_count``);
    None = SQLite's default. It does not bound the WAL, so it is no guard against a
    full disk: ``disk_reserve_bytes`` is.
    ``max_group``: most write calls one group commit may share.
    ``read_only``: open a plain reader (``mode=ro``, ``query_only``, no migration,
    no writer thread; see ``_sqlite_connect``): works on a read-only file and
    while another process holds the write lock; every write method raises
    ``PersistenceError`` ("... opened read-only").
    ``failed_retention_seconds`` (7 days) and ``idempotency_retention_seconds``
    (30 days): how long a synced failure stays on the device, and how long an
    idempotency key is remembered after its workflow was deleted (``_retention``).
    ``disk_reserve_bytes``: the ballast kept beside the database for sync's deletes
    on a full disk (default ``$RUVON_DISK_RESERVE_BYTES`` or 2 MiB, 0 = none; see
    ``_disk_reserve``). While it is missing, engine writes fail with ``DiskFullError``.
    """

    def __init__(
        self,
        db_path: str | Path,
        *,
        synchronous: str = "NORMAL",
        busy_timeout_seconds: float = 5.0,
        journal_size_limit: int = 32 * 1024 * 1024,
        wal_autocheckpoint: int = 4000,
        max_page_count: int | None = None,
        max_group: int = 64,
        read_only: bool = False,
        disk_reserve_bytes: int | None = None,
        failed_retention_seconds: float = 7 * DAY,
        idempotency_retention_seconds: float = 30 * DAY,
    ) -> None:
        if str(synchronous).upper() not in _SYNCHRONOUS:
            raise ValueError(
                f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, not {synchronous!r}"
            )
        if read_only and str(db_path) == ":memory:":
            raise ValueError("an in-memory database cannot be opened read-only")
        self.db_path = str(db_path)
        self.synchronous = str(synchronous).upper()
        self.busy_timeout_seconds = float(busy_timeout_seconds)
        self.journal_size_limit = int(journal_size_limit)
        self.wal_autocheckpoint = int(wal_autocheckpoint)
        self.max_page_count = max_page_count
        self.read_only = read_only
        no_disk = read_only or self.db_path == ":memory:"
        reserve = DiskReserve(self.db_path, 0 if no_disk else configured_size(disk_reserve_bytes))
        self._disk = DiskGuard(reserve, self.db_path)
        # What the agent reads is fsynced first unless every COMMIT already is (``fsync_wal``).
        durable = self.synchronous != "NORMAL" or self.db_path == ":memory:" or read_only
        self._wal_to_sync = None if durable else self.db_path + "-wal"
        self.retention = Retention(failed_retention_seconds, idempotency_retention_seconds)
        self._max_group = max_group
        self._writer: ConnectionThread | None = None
        self._reader: ConnectionThread | None = None

    @property
    def disk_full_refusals(self) -> int:
        """Engine writes refused because the disk was full (see ``_disk_reserve``)."""
        return self._disk.refusals

    @property
    def commit_count(self) -> int:
        """SQLite COMMITs executed by this provider's writer (a group commit counts once)."""
        return self._writer.commit_count if self._writer else 0

    # -- lifecycle -----------------------------------------------------------------
    async def initialize(self) -> None:
        """Open the connections (``_sqlite_connect``): writer + reader, or one read-only reader."""
        if self._reader is not None:
            return
        if sqlite3.sqlite_version_info < _schema.MIN_SQLITE:
            raise PersistenceError(
                f"SQLite {sqlite3.sqlite_version} is too old for Ruvon Edge (needs >= 3.35 for RETURNING)"
            )
        try:
            if self.read_only:
                self._reader = ConnectionThread(
                    "ruvon-sqlite-ro", self._connect_read_only, self._translate
                )
                await self._reader.start()
                return
            try:
                await self._start_writer()
            except DiskFullError:  # even opening needs a few bytes (-wal, -shm): spend the reserve
                await self._require(self._writer).stop()
                self._disk.reserve.release()
                await self._start_writer()
            self._disk.reserve.restore()
            if self.db_path == ":memory:":  # one connection is the whole database
                self._reader = self._writer
            else:
                self._reader = ConnectionThread(
                    "ruvon-sqlite-reader", self._connect_reader, self._translate
                )
                await self._reader.start()
        except BaseException:
            await self.close()
            raise

    async def _start_writer(self) -> None:
        self._writer = ConnectionThread("ruvon-sqlite-writer", self._connect_writer, self._translate,
                                        max_group=self._max_group)  # fmt: skip
        await self._writer.start()

    async def close(self) -> None:
        """Finish queued work, close the connections; safe to call twice."""
        reader, writer = self._reader, self._writer
        self._reader = self._writer = None
        if reader is not None and reader is not writer:
            await reader.stop()
        if writer is not None:
            await writer.stop()

    def _connect_writer(self) -> sqlite3.Connection:
        tuning = connect.Tuning(self.synchronous, self.busy_timeout_seconds, self.journal_size_limit,
                                self.wal_autocheckpoint, self.max_page_count)  # fmt: skip
        return connect.open_writer(self.db_path, tuning)

    def _connect_reader(self) -> sqlite3.Connection:
        return connect.open_reader(self.db_path, self.busy_timeout_seconds)

    def _connect_read_only(self) -> sqlite3.Connection:
        return connect.open_read_only(self.db_path, self.busy_timeout_seconds)

    def _translate(self, exc: BaseException) -> BaseException:
        """Turn an sqlite3 error into a one-line ``PersistenceError`` naming the file."""
        if not isinstance(exc, sqlite3.Error):
            return exc
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
        if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
            msg = (f"{self.db_path}: database is locked (another connection held the write lock "
                   f"longer than busy_timeout_seconds={self.busy_timeout_seconds:g})")  # fmt: skip
        elif (
            code == _SQLITE_FULL or getattr(exc, "sqlite_errorcode", None) == _SQLITE_IOERR_SHMSIZE
        ):
            full = DiskFullError(
                f"disk full: cannot write {self.db_path} (new workflows are refused until sync frees space)"
            )
            full.__cause__ = exc
            return full
        elif code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
            msg = f"{self.db_path} is not a valid Ruvon Edge database: {exc}"
        else:
            msg = f"{self.db_path}: {exc}"
        err = PersistenceError(msg)
        err.__cause__ = exc
        return err

    def _require(self, thread: ConnectionThread | None) -> ConnectionThread:
        if thread is None:
            raise PersistenceError(
                f"{self.db_path}: the store is not open (call initialize() first)"
            )
        return thread

    def _writer_for(self, fn) -> ConnectionThread:
        if self.read_only:
            raise PersistenceError(
                f"{self.db_path}: opened read-only; {fn.__name__} needs a read-write store"
            )
        return self._require(self._writer)

    async def _write(self, fn, *args):
        return await self._disk.write(self._writer_for(fn), fn, *args)

    async def _freeing_write(self, fn, *args):
        return await self._disk.freeing_write(self._writer_for(fn), fn, *args)

    async def _freeing_delete(self, fn, ids: list[str], *rest) -> int:
        return await self._disk.freeing_delete(self._writer_for(fn), fn, ids, *rest)

    async def _read(self, fn, *args):
        return await self._require(self._reader).call(fn, *args)

    # -- workflows -----------------------------------------------------------------
    async def save_workflow(self, workflow_id: UUID, workflow_data: dict) -> None:
        await self._write(wf_sql.save_workflow, str(workflow_id), workflow_data)

    async def load_workflow(self, workflow_id: UUID) -> dict:
        return await self._read(wf_sql.load_workflow, str(workflow_id))

    async def list_workflows(
        self, status=None, workflow_type=None, limit: int = 20, offset: int = 0
    ) -> list[dict]:
        return await self._read(wf_sql.list_workflows, status, workflow_type, limit, offset)

    async def search_workflows(
        self, statuses: tuple[str, ...] = (), workflow_type: str | None = None, since: str | None = None,
        until: str | None = None, limit: int = 20, offset: int = 0,
    ) -> tuple[list[dict], int]:  # fmt: skip
        """``list_workflows`` with several statuses and a ``created_at`` window [since, until), and the
        total that match; timestamps in ``ruvon_edge.clock``'s format."""
        rows, total = await self._read(
            wf_sql.search_workflows,
            tuple(statuses),
            workflow_type,
            since,
            until,
            limit,
            offset,
            True,
        )
        return rows, int(total or 0)

    async def ids_with_prefix(self, prefix: str, limit: int = 2) -> list[str]:
        """Up to ``limit`` workflow ids starting with ``prefix`` (ids are lower-case UUID text)."""
        return await self._read(wf_sql.ids_with_prefix, prefix.lower(), limit)

    async def commit(self, transitions: list[Transition]) -> list[int]:
        return await self._write(wf_sql.commit, transitions)

    async def log_execution(
        self, workflow_id, step_name, level, message, metadata: dict | None = None
    ) -> None:
        log = {"step_name": step_name, "level": level, "message": message, "metadata": metadata}
        await self._write(wf_sql.log_execution, str(workflow_id), log)

    async def record_metric(self, workflow_id, step_name, metric_name, metric_value: float,
                            metadata: dict | None = None) -> None:  # fmt: skip
        metric = {"step_name": step_name, "metric_name": metric_name, "metric_value": metric_value,
                  "metadata": metadata}  # fmt: skip
        await self._write(wf_sql.record_metric, str(workflow_id), metric)

    async def get_execution_logs(self, workflow_id) -> list[dict]:
        return await self._read(wf_sql.get_execution_logs, str(workflow_id))

    async def get_metrics(self, workflow_id) -> list[dict]:
        return await self._read(wf_sql.get_metrics, str(workflow_id))

    async def get_audit_logs(self, workflow_id) -> list[AuditLogRecord]:
        return await self._read(wf_sql.get_audit_logs, str(workflow_id))

    async def heartbeat_update(
        self, workflow_id, worker_id, current_step, metadata: dict | None = None
    ) -> None:
        """Record a heartbeat; also refreshes ``heartbeat_at`` of this worker's RUNNING tasks of the workflow."""
        await self._write(
            wf_sql.heartbeat_update, str(workflow_id), worker_id, current_step, metadata
        )

    async def scan_stale_heartbeats(self, stale_threshold_seconds: int) -> list[dict]:
        return await self._read(wf_sql.scan_stale_heartbeats, stale_threshold_seconds)

    # -- task queue ----------------------------------------------------------------
    async def enqueue_task(self, task: dict) -> str:
        return await self._write(task_sql.enqueue_task, task)

    async def get_task(self, task_id: str) -> dict:
        return await self._read(task_sql.get_task, str(task_id))

    async def claim_next_task(self, worker_id: str) -> dict | None:
        return await self._write(task_sql.claim_next_task, worker_id)

    async def finish_task(self, task_id: str, status: str, result: dict | None = None,
                          error: str | None = None) -> bool:  # fmt: skip
        return await self._write(task_sql.finish_task, str(task_id), status, result, error)

    async def cancel_task(self, task_id: str) -> bool:
        return await self._write(task_sql.cancel_task, str(task_id))

    async def requeue_stale_tasks(self, stale_threshold_seconds: int) -> list[dict]:
        return await self._write(task_sql.requeue_stale_tasks, stale_threshold_seconds)

    async def requeue_worker_tasks(self, worker_id: str) -> list[dict]:
        return await self._write(task_sql.requeue_worker_tasks, worker_id)

    # -- edge sync -----------------------------------------------------------------
    async def get_pending_sync_workflows(
        self, limit: int, *, after_seq: int = 0
    ) -> list[WorkflowRecord | UnreadableRecord]:
        return await self._read(
            sync_sql.get_pending_sync_workflows, limit, after_seq, self._wal_to_sync
        )

    async def get_audit_logs_for_workflows(
        self, ids: list[str], limit_per_workflow: int = 50
    ) -> list[AuditLogRecord | UnreadableRecord]:
        return await self._read(
            sync_sql.get_audit_logs_for_workflows, list(ids), limit_per_workflow, self._wal_to_sync
        )

    async def delete_synced_workflows(
        self, ids: list[str], *, versions: dict[str, int] | None = None
    ) -> int:
        return await self._freeing_delete(
            sync_sql.delete_synced_workflows, list(ids), versions, self.retention
        )

    async def ack_synced_audit_logs(self, audit_ids: list[str]) -> int:
        return await self._freeing_delete(sync_sql.ack_synced_audit_logs, list(audit_ids))

    async def quarantine_sync_record(
        self, kind: str, record_id: str, reason: str, *, limit_bytes: int | None = None
    ) -> None:
        await self._freeing_write(
            sync_sql.quarantine_sync_record, kind, str(record_id), reason, limit_bytes
        )

    async def list_sync_quarantine(self) -> list[QuarantinedRecord]:
        return await self._read(sync_sql.list_sync_quarantine)

    async def requeue_sync_records(
        self, ids: list[str] | None = None, *, below_limit: int | None = None
    ) -> list[QuarantinedRecord]:
        return await self._freeing_write(sync_sql.requeue_sync_records, ids, below_limit)

    async def purge_sync_records(self, ids: list[str] | None = None) -> list[QuarantinedRecord]:
        return await self._freeing_write(sync_sql.purge_sync_records, ids, self.retention)

    async def sync_backlog(self) -> dict:
        return await self._read(sync_sql.sync_backlog)

    async def get_edge_sync_state(self, key: str) -> str | None:
        return await self._read(sync_sql.get_edge_sync_state, key)

    async def set_edge_sync_state(self, key: str, value: str) -> None:
        await self._freeing_write(sync_sql.set_edge_sync_state, key, value)
