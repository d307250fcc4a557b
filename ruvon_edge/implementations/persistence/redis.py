"""Redis persistence: rows as hashes, sorted-set indexes, every multi-key write one Lua script.

Why Lua: a script runs atomically on the server, so a step transition (the
compare-and-set on ``version``, the index moves, audit rows, logs, metrics,
queued tasks, clearing the heartbeat) is all-or-nothing for every other
client. Python reads a snapshot of the rows, shapes the new ones with the
rules every store shares (``_rows``), and the script writes them only if
each row's ``version`` is still the snapshot's. Task claiming is a script
too: it pops the oldest queued task, so two workers never get the same one.
The key layout is documented in ``_redis_lua``.

redis-py is imported when the provider is initialized (the ``[redis]`` extra).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from ruvon_edge.providers.persistence import (
    AuditLogRecord,
    ConcurrentUpdateError,
    DuplicateIdempotencyKeyError,
    PersistenceError,
    PersistenceProvider,
    TaskNotFoundError,
    Transition,
    WorkflowNotFoundError,
)

from . import _redis_lua as lua
from . import _rows

_SNAPSHOT = ("version", "status", "created_at", "completed_at", "sync_seq")
_TASK_COLS = tuple(_rows.task_row({"workflow_id": None}, "").keys())
_SAVE_RETRIES = (
    20  # save_workflow has no expected version: re-read and retry when a writer raced it
)


def _micros(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1_000_000)


def _pairs(row: dict, skip: tuple = ()) -> list:
    """Flatten a row's non-NULL fields into ``n, field, value, ...`` (a missing field is NULL)."""
    flat = [x for k, v in row.items() if v is not None and k not in skip for x in (k, v)]
    return [len(flat), *flat]


def _int_or_none(value: str | None) -> int | None:
    return None if value is None else int(value)


def _decode_workflow(fields: dict) -> dict:
    row: dict[str, Any] = {c: fields.get(c) for c in _rows.WORKFLOW_COLUMNS}
    row["version"] = int(row["version"])
    row["sync_seq"] = _int_or_none(row["sync_seq"])
    return _rows.decode_workflow(row)


def _decode_task(fields: dict) -> dict:
    row: dict[str, Any] = {c: fields.get(c) for c in _TASK_COLS}
    row["attempts"] = int(row["attempts"])
    row["max_attempts"] = int(row["max_attempts"])
    return _rows.decode_task(row)


class RedisPersistenceProvider(PersistenceProvider):
    """Workflows, audit trail, logs, metrics, tasks and heartbeats under one Redis key prefix.

    ``url`` is a ``redis://`` (or ``rediss://``) URL; ``prefix`` isolates
    deployments sharing one Redis.
    """

    def __init__(self, url: str, *, prefix: str = "ruvon", socket_timeout: float = 30.0) -> None:
        if not prefix or any(c.isspace() for c in prefix):
            raise ValueError(f"Redis key prefix {prefix!r} must be non-empty without whitespace")
        self.url = url
        self.prefix = prefix
        self._socket_timeout = socket_timeout
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._errors: tuple[type[BaseException], ...] = (OSError,)

    # -- lifecycle ----------------------------------------------------------------
    async def initialize(self) -> None:
        """Connect and check the server answers (keys are created on write: nothing to migrate)."""
        if self._client is not None:
            return
        try:
            import redis.asyncio as aioredis
            from redis.exceptions import RedisError
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise PersistenceError(
                "Redis support needs redis-py: pip install 'ruvon-edge[redis]'"
            ) from exc
        self._errors = (RedisError, OSError, TimeoutError)
        client = aioredis.from_url(
            self.url, decode_responses=True, socket_timeout=self._socket_timeout
        )
        names = ("COMMIT", "ENQUEUE", "CLAIM", "MOVE_TASK", "REQUEUE_STALE", "HEARTBEAT")
        self._scripts = {name: client.register_script(getattr(lua, name)) for name in names}
        try:
            await client.ping()
        except self._errors as exc:
            await client.aclose()
            raise PersistenceError(
                f"Redis store (prefix {self.prefix}) could not start: {exc}"
            ) from exc
        self._client = client

    async def close(self) -> None:
        """Close the connection pool; safe to call twice."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    @asynccontextmanager
    async def _redis(self, what: str) -> AsyncIterator[Any]:
        """Lend the client; driver errors become one-line ``PersistenceError``s."""
        if self._client is None:
            raise PersistenceError(
                f"Redis store (prefix {self.prefix}): {what} before initialize()"
            )
        try:
            yield self._client
        except PersistenceError:
            raise
        except self._errors as exc:
            raise PersistenceError(
                f"Redis store (prefix {self.prefix}): {what} failed: {exc}"
            ) from exc

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # -- workflows ------------------------------------------------------------------
    async def save_workflow(self, workflow_id: UUID, workflow_data: dict) -> None:
        """Insert or replace a workflow row (no version check; bumps ``version``)."""
        t = Transition(workflow={**workflow_data, "id": str(workflow_id)}, expected_version=None)
        for _ in range(_SAVE_RETRIES):
            if await self._write("save_workflow", [t], cas=False, clear_hb=False) is not None:
                return
        raise PersistenceError(
            f"Redis store (prefix {self.prefix}): workflow {workflow_id} kept changing while saved"
        )

    async def commit(self, transitions: list[Transition]) -> list[int]:
        """Write all transitions atomically (one Lua script), each a compare-and-set on ``version``."""
        versions = await self._write("commit", transitions, cas=True, clear_hb=True)
        assert versions is not None  # with cas, a lost race raises instead
        return versions

    async def _write(
        self, what: str, transitions: list[Transition], *, cas: bool, clear_hb: bool
    ) -> list[int] | None:
        """Shape rows from a snapshot and let the script apply them; None when a race lost (no cas)."""
        now = _rows.now_iso()
        ids = [str(t.workflow["id"]) for t in transitions]
        async with self._redis(what) as r:
            async with r.pipeline(transaction=False) as pipe:
                for wid in ids:
                    pipe.hmget(self._key("wf", wid), *_SNAPSHOT)
                snapshots = await pipe.execute()
            args: list[Any] = [self.prefix, "1" if clear_hb else "0", len(transitions)]
            versions = []
            for wid, t, snap in zip(ids, transitions, snapshots, strict=True):
                current = dict(zip(_SNAPSHOT, snap, strict=True)) if snap[0] is not None else None
                if current is not None:
                    current["version"] = int(current["version"])
                    current["sync_seq"] = _int_or_none(current["sync_seq"])
                actual = current["version"] if current else None
                if cas and actual != t.expected_version:
                    raise ConcurrentUpdateError(wid, t.expected_version, actual)
                row, needs_seq = _rows.shape_workflow(wid, t.workflow, current, now)
                versions.append(row["version"])
                args += [
                    wid,
                    "" if actual is None else actual,
                    "1" if needs_seq else "0",
                    _micros(row["created_at"]),
                ]
                args += [
                    row["status"],
                    row["workflow_type"],
                    row["idempotency_key"] or "",
                    *_pairs(row),
                ]
                args += [len(t.audit), *(json.dumps(_rows.audit_row(wid, a, now)) for a in t.audit)]
                args += [len(t.logs), *(json.dumps(_rows.log_row(wid, g, now)) for g in t.logs)]
                args += [
                    len(t.metrics),
                    *(json.dumps(_rows.metric_row(wid, m, now)) for m in t.metrics),
                ]
                args.append(len(t.tasks))
                for task in t.tasks:
                    trow = _rows.task_row({"workflow_id": wid, **task}, now)
                    args += [trow["task_id"], wid, *_pairs(trow)]
            reply = await self._scripts["COMMIT"](args=args)
        if reply[0] == "dup":
            raise DuplicateIdempotencyKeyError(reply[1], reply[2])
        if reply[0] == "conflict":
            if not cas:
                return None
            expected = next(
                t.expected_version
                for wid, t in zip(ids, transitions, strict=True)
                if wid == reply[1]
            )
            raise ConcurrentUpdateError(reply[1], expected, _int_or_none(reply[2] or None))
        return versions

    async def load_workflow(self, workflow_id: UUID) -> dict:
        """Return the workflow row; raise ``WorkflowNotFoundError`` when absent."""
        async with self._redis("load_workflow") as r:
            fields = await r.hgetall(self._key("wf", str(workflow_id)))
        if not fields:
            raise WorkflowNotFoundError(workflow_id)
        return _decode_workflow(fields)

    async def list_workflows(
        self,
        status: str | None = None,
        workflow_type: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> list[dict]:
        """Return workflow rows, newest first (ties: newest inserted first), from the matching index."""
        if status is not None and workflow_type is not None:
            index = self._key("idx", "st", str(status), workflow_type)
        elif status is not None:
            index = self._key("idx", "s", str(status))
        elif workflow_type is not None:
            index = self._key("idx", "t", workflow_type)
        else:
            index = self._key("idx", "all")
        if int(limit) <= 0:
            return []
        start = max(int(offset), 0)
        async with self._redis("list_workflows") as r:
            members = await r.zrevrange(index, start, start + int(limit) - 1)
            async with r.pipeline(transaction=False) as pipe:
                for member in members:
                    pipe.hgetall(self._key("wf", member.split(":", 1)[1]))
                rows = await pipe.execute()
        return [_decode_workflow(fields) for fields in rows if fields]

    # -- logs, metrics, audit ----------------------------------------------------------
    async def log_execution(
        self, workflow_id, step_name, level, message, metadata: dict | None = None
    ) -> None:
        """Append an execution log line for a workflow."""
        log = {"step_name": step_name, "level": level, "message": message, "metadata": metadata}
        await self._push(
            "logs", str(workflow_id), _rows.log_row(str(workflow_id), log, _rows.now_iso())
        )

    async def record_metric(
        self, workflow_id, step_name, metric_name, metric_value: float, metadata: dict | None = None
    ) -> None:
        """Append a numeric metric for a workflow step."""
        metric = {
            "step_name": step_name,
            "metric_name": metric_name,
            "metric_value": metric_value,
            "metadata": metadata,
        }
        await self._push(
            "metrics", str(workflow_id), _rows.metric_row(str(workflow_id), metric, _rows.now_iso())
        )

    async def _push(self, kind: str, wid: str, row: dict) -> None:
        async with self._redis(f"append to {kind}") as r:
            await r.rpush(self._key(kind, wid), json.dumps(row))

    async def get_execution_logs(self, workflow_id: UUID | str) -> list[dict]:
        """Return a workflow's execution logs, oldest first."""
        return [_rows.decode_metadata_row(r) for r in await self._entries("logs", workflow_id)]

    async def get_metrics(self, workflow_id: UUID | str) -> list[dict]:
        """Return a workflow's metrics, oldest first."""
        return [_rows.decode_metadata_row(r) for r in await self._entries("metrics", workflow_id)]

    async def get_audit_logs(self, workflow_id: UUID | str) -> list[AuditLogRecord]:
        """Return a workflow's whole audit trail, oldest first."""
        return [_rows.decode_audit(r) for r in await self._entries("audit", workflow_id)]

    async def _entries(self, kind: str, workflow_id: Any) -> list[dict]:
        async with self._redis(f"read {kind}") as r:
            entries = await r.lrange(self._key(kind, str(workflow_id)), 0, -1)
        return [{"id": n, **json.loads(e)} for n, e in enumerate(entries, 1)]

    # -- tasks ----------------------------------------------------------------------------
    async def enqueue_task(self, task: dict) -> str:
        """Queue a task; enqueueing the same ``task_id`` twice keeps the first."""
        row = _rows.task_row(task, _rows.now_iso())
        async with self._redis("enqueue_task"):
            await self._scripts["ENQUEUE"](
                args=[self.prefix, row["task_id"], row["workflow_id"] or "", *_pairs(row)]
            )
        return row["task_id"]

    async def get_task(self, task_id: str) -> dict:
        """Return a task row; raise ``TaskNotFoundError`` when absent."""
        async with self._redis("get_task") as r:
            fields = await r.hgetall(self._key("task", str(task_id)))
        if not fields:
            raise TaskNotFoundError(task_id)
        return _decode_task(fields)

    async def claim_next_task(self, worker_id: str) -> dict | None:
        """Take the oldest queued task (one Lua script: claims never collide)."""
        now = _rows.now_iso()
        async with self._redis("claim_next_task"):
            flat = await self._scripts["CLAIM"](args=[self.prefix, worker_id, now, _micros(now)])
        return _decode_task(dict(zip(flat[::2], flat[1::2], strict=True))) if flat else None

    async def finish_task(
        self, task_id: str, status: str, result: dict | None = None, error: str | None = None
    ) -> bool:
        """Move a RUNNING task to COMPLETED/FAILED; False if it was not running."""
        _rows.check_finish_status(status)
        return await self._move_task(
            task_id, status, _rows.dumps(result) or "", error or "", ("RUNNING",)
        )

    async def cancel_task(self, task_id: str) -> bool:
        """Cancel a queued or running task; False if it had already finished."""
        return await self._move_task(task_id, "CANCELLED", "", "", ("QUEUED", "RUNNING"))

    async def _move_task(
        self, task_id: str, status: str, result: str, error: str, allowed: tuple
    ) -> bool:
        async with self._redis("move task"):
            moved = await self._scripts["MOVE_TASK"](
                args=[self.prefix, str(task_id), status, _rows.now_iso(), result, error, *allowed]
            )
        if moved == -1:
            raise TaskNotFoundError(task_id)
        return moved == 1

    async def requeue_stale_tasks(self, stale_threshold_seconds: int) -> list[dict]:
        """Requeue RUNNING tasks with a stale heartbeat; fail those out of attempts."""
        cutoff = _micros(_rows.iso_ago(stale_threshold_seconds))
        async with self._redis("requeue_stale_tasks"):
            failed, requeued = await self._scripts["REQUEUE_STALE"](
                args=[self.prefix, cutoff, _rows.now_iso(), _rows.WORKER_DIED]
            )
        return [await self.get_task(tid) for tid in (*failed, *requeued)]

    # -- heartbeats ---------------------------------------------------------------------------
    async def heartbeat_update(
        self, workflow_id, worker_id, current_step, metadata: dict | None = None
    ) -> None:
        """Record that ``worker_id`` is alive on the workflow, keeping its running tasks of it alive."""
        now = _rows.now_iso()
        beat = {"worker_id": worker_id, "current_step": current_step, "metadata": _rows.dumps(metadata),
                "last_heartbeat": now}  # fmt: skip
        async with self._redis("heartbeat_update"):
            await self._scripts["HEARTBEAT"](
                args=[self.prefix, str(workflow_id), worker_id, now, _micros(now), *_pairs(beat)]
            )

    async def scan_stale_heartbeats(self, stale_threshold_seconds: int) -> list[dict]:
        """Return in-flight workflows whose heartbeat is older than the threshold, oldest first."""
        cutoff = _micros(_rows.iso_ago(stale_threshold_seconds))
        async with self._redis("scan_stale_heartbeats") as r:
            ids = await r.zrangebyscore(self._key("hb"), "-inf", f"({cutoff}")
            async with r.pipeline(transaction=False) as pipe:
                for wid in ids:
                    pipe.hgetall(self._key("hb", wid))
                    pipe.hmget(self._key("wf", wid), "status", "version")
                replies = await pipe.execute()
        stale = []
        for wid, beat, (status, version) in zip(ids, replies[::2], replies[1::2], strict=True):
            if beat and status in ("ACTIVE", "PENDING_ASYNC"):
                row = {"workflow_id": wid, "worker_id": beat["worker_id"], "current_step": beat.get("current_step"),
                       "last_heartbeat": beat["last_heartbeat"], "metadata": beat.get("metadata"),
                       "status": status, "version": int(version)}  # fmt: skip
                stale.append(_rows.decode_metadata_row(row))
        return stale
