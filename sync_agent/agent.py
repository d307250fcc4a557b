"""The drain loop: read a page -> pack batches (count and bytes) -> send -> apply acks -> quarantine.

The agent owns no truth. What is pending, acked or quarantined lives in the
device database; the agent's memory holds only the batch in flight and, per
workflow of that batch, the records not yet acked. A workflow is offered for
deletion only when its own record and every audit row sent with it were
acked, and the store deletes it only if it is still terminal, unchanged
(``versions``) and has no audit row left -- so a kill -9 at any point, a lost
ack or a workflow retried in flight can cost a resend, never a record.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import structlog
from pydantic_core import to_json

from ruvon_edge.providers.persistence import (
    AuditLogRecord,
    PersistenceError,
    PersistenceProvider,
    WorkflowRecord,
)
from sync_agent.protocol import BatchResponse
from sync_agent.settings import SyncSettings
from sync_agent.transport import AuthRefused, Stopped, TooLarge, Transport, TransportError

log = structlog.get_logger("ruvon_sync")
_ENVELOPE_BYTES = 256  # batch_id, device_id, sent_at and the JSON around the two arrays
_IN_FLIGHT = 2  # sends awaiting an answer at once; more only queues at the receiver


def utcnow() -> str:
    """Return the current time as RFC 3339 UTC."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class CycleReport:
    """What one ``drain`` did; ``errors`` empty means nothing failed."""

    batches: int = 0
    workflows_acked: int = 0
    audit_acked: int = 0
    deleted: int = 0
    quarantined: int = 0
    rejected_retryable: int = 0
    errors: list[str] = field(default_factory=list)
    auth_refused: bool = False
    stopped: bool = False
    body_bytes: int = 0
    wire_bytes: int = 0
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class _Unit:
    """A workflow of the batch in flight, and which of its records still await an ack."""

    id: str
    version: int
    outstanding: set[tuple[str, str]]
    spoiled: bool = False


_Rec = tuple[str, str, str, bytes | memoryview]  # (kind, record id, workflow id, JSON)


@dataclass
class _Batch:
    records: list[_Rec] = field(default_factory=list)
    size: int = _ENVELOPE_BYTES

    def body(self, batch_id: str, device_id: str) -> bytes:
        """The request body; each record's JSON then becomes a view into it (one copy in memory)."""
        head = json.dumps({"batch_id": batch_id, "device_id": device_id, "sent_at": utcnow()})[:-1]
        chunks: list[bytes | memoryview] = [head.encode(), b', "workflows": [']
        starts: dict[int, int] = {}
        pos = len(chunks[0]) + len(chunks[1])
        for kind, close in (("workflow", b'], "audit_logs": ['), ("audit", b"]}")):
            sep = b""
            for n, (k, _, _, raw) in enumerate(self.records):
                if k == kind:
                    chunks += (sep, raw)
                    starts[n] = pos + len(sep)
                    pos += len(sep) + len(raw)
                    sep = b","
            chunks.append(close)
            pos += len(close)
        body = b"".join(chunks)
        view = memoryview(body)
        self.records = [
            (k, i, w, view[starts[n] : starts[n] + len(raw)])
            for n, (k, i, w, raw) in enumerate(self.records)
        ]
        return body


class _Handoff:
    """Batches from the reader to the sender: at most one waiting; the end marker never blocks."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[_Batch | None] = asyncio.Queue()
        self._room = asyncio.Semaphore(1)

    async def put(self, batch: _Batch) -> None:
        await self._room.acquire()
        self._queue.put_nowait(batch)

    def end(self) -> None:
        self._queue.put_nowait(None)

    async def get(self) -> _Batch | None:
        batch = await self._queue.get()
        self._room.release()
        return batch


class SyncAgent:
    """Drains the device's pending workflows and audit rows into the receiver."""

    def __init__(
        self, provider: PersistenceProvider, settings: SyncSettings, transport: Transport
    ) -> None:
        self.provider = provider
        self.settings = settings
        self.transport = transport
        self.stop = transport.stop
        self._units: dict[str, _Unit] = {}
        self._applying: asyncio.Task | None = None

    async def drain(self) -> CycleReport:
        """Send everything pending, in passes, until a pass makes no progress; record the outcome."""
        report = CycleReport()
        started = time.monotonic()
        body_before, wire_before = self.transport.raw_bytes, self.transport.sent_bytes
        await self._note("last_attempt_at", utcnow())
        try:
            while not self.stop.is_set():
                before = (report.deleted, report.audit_acked)
                await self._pass(report)
                if report.errors or (report.deleted, report.audit_acked) == before:
                    break
        except Stopped:
            report.stopped = True
        except AuthRefused as exc:
            report.auth_refused = True
            report.errors.append(str(exc))
        except TransportError as exc:
            report.errors.append(str(exc))
        report.stopped = report.stopped or self.stop.is_set()
        report.duration_s = time.monotonic() - started
        report.body_bytes = self.transport.raw_bytes - body_before
        report.wire_bytes = self.transport.sent_bytes - wire_before
        if report.ok:
            await self._note("last_success_at", utcnow())
        else:
            await self._note("last_error", report.errors[-1][:500])
            await self._note("last_error_at", utcnow())
        for key, add in (
            ("synced_workflows_total", report.deleted),
            ("synced_audit_total", report.audit_acked),
        ):
            if add:
                await self._note(
                    key, str(int(await self.provider.get_edge_sync_state(key) or 0) + add)
                )
        return report

    async def _note(self, key: str, value: str) -> None:
        """Write a status figure; a full disk must not stop the drain that frees it."""
        try:
            await self.provider.set_edge_sync_state(key, value)
        except PersistenceError as exc:
            log.warning("sync_state_not_written", key=key, error=str(exc))

    async def _pass(self, report: CycleReport) -> None:
        """Walk the pending set once by sync sequence (so the newest is reached, never starved).

        The stages overlap: reading and encoding the next batch, up to
        ``_IN_FLIGHT`` sends (the receiver validates one batch while it commits
        the one before), and applying the previous answer's acks. Answers are
        applied one at a time in the order the batches were read; whatever was
        answered is applied even when another send fails, and the first
        failure is raised once every send in flight has settled.
        """
        ready = _Handoff()
        producer = asyncio.create_task(self._produce(ready, report))
        sending: deque[asyncio.Task] = deque()
        self._applying = None
        failure: BaseException | None = None
        try:
            while (batch := await ready.get()) is not None:
                sending.append(asyncio.create_task(self._deliver(batch, report)))
                if len(sending) >= _IN_FLIGHT:
                    await self._settle(sending.popleft(), report)
            await producer  # surfaces a read error
        except BaseException as exc:
            failure = exc
        finally:
            producer.cancel()
            if isinstance(failure, asyncio.CancelledError):
                for task in sending:  # cancelled: nothing more waits for an answer
                    task.cancel()
            while sending:  # answered sends are applied whatever failed around them
                try:
                    await self._settle(sending.popleft(), report)
                except BaseException as exc:
                    failure = failure or exc
            if self._applying is not None:
                await self._applying
            self._units.clear()
        if failure is not None:
            raise failure

    async def _settle(self, sent: asyncio.Task, report: CycleReport) -> None:
        """Wait for one send, then hand its answer to the applier after the previous one."""
        delivered = await sent
        if self._applying is not None:
            await self._applying
        self._applying = asyncio.create_task(self._apply_all(delivered, report))

    async def _produce(self, ready: _Handoff, report: CycleReport) -> None:
        s = self.settings
        after, batch = 0, _Batch()
        try:
            while not self.stop.is_set():
                page = await self.provider.get_pending_sync_workflows(s.page_size, after_seq=after)
                if not page:
                    break
                after = max(w.sync_seq or 0 for w in page)
                ids = [w.id for w in page]
                by_wf: dict[str, list[AuditLogRecord]] = {}
                for a in await self.provider.get_audit_logs_for_workflows(
                    ids, s.audit_per_workflow
                ):
                    by_wf.setdefault(a.workflow_id, []).append(a)
                page.reverse()
                while page:  # records leave memory as they are encoded, not with the page
                    wf = page.pop()
                    batch = await self._add_unit(wf, by_wf.pop(wf.id, []), batch, ready, report)
            if batch.records:
                await ready.put(batch)
        finally:  # the end (or a read error, raised by ``await producer``) reaches the sender
            ready.end()

    async def _add_unit(
        self,
        wf: WorkflowRecord,
        audits: list[AuditLogRecord],
        batch: _Batch,
        ready: _Handoff,
        report: CycleReport,
    ) -> _Batch:
        """Append a workflow's audit rows, then the workflow itself, handing on full batches."""
        s = self.settings
        records: list[_Rec] = [("audit", a.audit_id, wf.id, to_json(a)) for a in audits]
        records.append(("workflow", wf.id, wf.id, to_json(wf, exclude={"sync_seq"})))
        self._units[wf.id] = _Unit(wf.id, wf.sync_version, {(k, i) for k, i, _, _ in records})
        for rec in records:
            raw = rec[3]
            if len(raw) + _ENVELOPE_BYTES > s.batch_bytes:
                reason = f"record of {len(raw)} bytes exceeds batch_bytes={s.batch_bytes}"
                await self._quarantine(rec[0], rec[1], reason, report)
                self._spoil([rec])
                continue
            if len(batch.records) >= s.batch_records or batch.size + len(raw) + 1 > s.batch_bytes:
                await ready.put(batch)
                batch = _Batch()
            batch.records.append(rec)
            batch.size += len(raw) + 1
        return batch

    async def _deliver(
        self, batch: _Batch, report: CycleReport
    ) -> list[tuple[_Batch, BatchResponse, dict]]:
        """Send one batch, halving it on 413; return each part that was answered."""
        if self.stop.is_set():  # stopping: send nothing new, keep what is unsent for the next run
            self._spoil(batch.records)
            raise Stopped()
        started = time.perf_counter()
        batch_id = str(uuid.uuid4())
        body = batch.body(batch_id, self.transport.device_id)
        try:
            response, wire_bytes = await self.transport.send(body, batch_id)
        except TooLarge as exc:
            if len(batch.records) == 1:
                await self._quarantine(batch.records[0][0], batch.records[0][1], str(exc), report)
                self._spoil(batch.records)
                return []
            half = len(batch.records) // 2
            parts = []
            for part in (batch.records[:half], batch.records[half:]):
                parts += await self._deliver(
                    _Batch(part, _ENVELOPE_BYTES + sum(len(r[3]) + 1 for r in part)), report
                )
            return parts
        except BaseException:
            self._spoil(batch.records)
            raise
        batch.records = [
            (k, i, w, b"") for k, i, w, _ in batch.records
        ]  # the JSON is sent: free it now
        meta = {"batch_id": batch_id, "records": len(batch.records), "bytes": len(body),
                "wire_bytes": wire_bytes, "started": started}  # fmt: skip
        return [(batch, response, meta)]

    async def _apply_all(
        self, delivered: list[tuple[_Batch, BatchResponse, dict]], report: CycleReport
    ) -> None:
        for batch, response, meta in delivered:
            counts = await self._apply(batch, response, report)
            report.batches += 1
            started = meta.pop("started")
            log.info(
                "batch_synced",
                **meta,
                **counts,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )

    async def _apply(
        self, batch: _Batch, response: BatchResponse, report: CycleReport
    ) -> dict[str, int]:
        """Apply acks and rejects for exactly the records this batch carried; delete finished workflows."""
        sent = {(k, i) for k, i, _, _ in batch.records}
        acked_audit = [a for a in dict.fromkeys(response.acked_audit_ids) if ("audit", a) in sent]
        acked_wf = [
            w for w in dict.fromkeys(response.acked_workflow_ids) if ("workflow", w) in sent
        ]
        resolved = {("audit", a) for a in acked_audit} | {("workflow", w) for w in acked_wf}
        holds = []
        for rej in response.rejected:
            if (rej.kind, rej.id) not in sent or (rej.kind, rej.id) in resolved:
                continue
            if rej.retryable:
                report.rejected_retryable += 1
            else:
                holds.append(self._quarantine(rej.kind, rej.id, rej.reason, report))
        for kind, rid, wf_id, _ in batch.records:
            if (unit := self._units.get(wf_id)) is not None and (kind, rid) in resolved:
                unit.outstanding.discard((kind, rid))
        self._spoil([r for r in batch.records if (r[0], r[1]) not in resolved])
        ready = []
        for kind, rid, _, _ in batch.records:
            if kind == "workflow" and (unit := self._units.pop(rid, None)) is not None:
                if not unit.spoiled and not unit.outstanding:
                    ready.append(unit)
        # Queued together, in this order, so the store commits them as one group: the acked
        # audit rows go first, then quarantines, then the delete, whose own predicate (no
        # audit row left, terminal, version as handed out) is what keeps any workflow whose
        # rows were not all removed.
        writes: list[Awaitable[Any]] = []
        if acked_audit:
            writes.append(self.provider.ack_synced_audit_logs(acked_audit))
        writes += holds
        if ready:
            writes.append(
                self.provider.delete_synced_workflows(
                    [u.id for u in ready], versions={u.id: u.version for u in ready}
                )
            )
        done = await asyncio.gather(*writes, return_exceptions=True)
        if failed := [e for e in done if isinstance(e, BaseException)]:
            raise failed[0]
        deleted = cast(int, done[-1]) if ready else 0
        quarantined = len(holds)
        report.workflows_acked += len(acked_wf)
        report.audit_acked += len(acked_audit)
        report.deleted += deleted
        return {
            "workflows": len(acked_wf),
            "audit_logs": len(acked_audit),
            "deleted": deleted,
            "quarantined": quarantined,
        }

    def _spoil(self, records: list[_Rec]) -> None:
        """Keep the workflows of records that were not acked: they are not deleted this pass."""
        for kind, _, wf_id, _ in records:
            if (unit := self._units.get(wf_id)) is not None:
                unit.spoiled = True
                if kind == "workflow":  # its last record: the unit is settled
                    del self._units[wf_id]

    async def _quarantine(
        self, kind: str, record_id: str, reason: str, report: CycleReport
    ) -> None:
        await self.provider.quarantine_sync_record(kind, record_id, reason[:500])
        report.quarantined += 1
        log.warning("record_quarantined", kind=kind, id=record_id, reason=reason[:200])
