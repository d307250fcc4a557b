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
import time
import uuid
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, cast

import structlog

from ruvon_edge.providers.persistence import (
    AuditLogRecord,
    EdgeSyncStore,
    UnreadableRecord,
    WorkflowRecord,
)
from sync_agent import health, ledger
from sync_agent.batching import ENVELOPE_BYTES, HEALTH_BYTES, Batch, Handoff, Rec, encode, utcnow
from sync_agent.protocol import AgentHealth, BatchResponse
from sync_agent.report import CycleReport
from sync_agent.settings import SyncSettings
from sync_agent.transport import Stopped, TooLarge, Transport, TransportError

log = structlog.get_logger("ruvon_sync")
_IN_FLIGHT = 2  # sends awaiting an answer at once; more only queues at the receiver


@dataclass
class _Unit:
    """A workflow of the batch in flight, and which of its records still await an ack."""

    id: str
    version: int
    outstanding: set[tuple[str, str]]
    spoiled: bool = False


class SyncAgent:
    """Drains the device's pending workflows and audit rows into the receiver."""

    def __init__(
        self, provider: EdgeSyncStore, settings: SyncSettings, transport: Transport
    ) -> None:
        self.provider = provider
        self.settings = settings
        self.transport = transport
        self.stop = transport.stop
        self.ledger = ledger.Ledger(provider)
        self.health: dict | None = None  # the "agent" object each batch carries
        self.heartbeats = True  # until a receiver answers 404 (it predates them)
        self._units: dict[str, _Unit] = {}
        self._applying: asyncio.Task | None = None

    async def drain(self) -> CycleReport:
        """Send everything pending, in passes, until a pass makes no progress; record the outcome."""
        report = CycleReport()
        started = time.monotonic()
        transport = self.transport
        body_before, wire_before, retries_before = (
            transport.raw_bytes, transport.sent_bytes, transport.retries)  # fmt: skip
        await self.ledger.note(ledger.LAST_ATTEMPT, utcnow())
        try:
            await self._release_size_quarantine(report)
            while not self.stop.is_set():
                before = (report.deleted, report.audit_acked)
                self.health = health.as_field(await self._health())
                await self._pass(report)
                if report.errors or (report.deleted, report.audit_acked) == before:
                    break
        except Stopped:
            report.stopped = True
        except TransportError as exc:
            report.fail(exc)
        report.stopped = report.stopped or self.stop.is_set()
        report.duration_s = time.monotonic() - started
        report.body_bytes = transport.raw_bytes - body_before
        report.wire_bytes = transport.sent_bytes - wire_before
        await self.ledger.record(report, transport.retries - retries_before, transport.clock_offset)
        if report.ok and self.heartbeats and not report.stopped:
            await self._heartbeat()  # nothing (more) to send: say how the device is now
        return report

    async def _health(self) -> AgentHealth:
        return await health.measure(self.provider, self.transport.clock_offset)

    async def _heartbeat(self) -> None:
        """Tell the receiver how the device is once nothing is left to send (so idle is not dead).

        Best effort: a failure is logged and does not fail the cycle, whose
        deliveries stand; a 404 (a receiver that predates heartbeats) stops them.
        """
        try:
            known = await self.transport.heartbeat(health.heartbeat_body(await self._health()))
        except TransportError as exc:
            log.warning("heartbeat_failed", error=str(exc), http_status=exc.status)
            return
        finally:
            await self.ledger.note_clock(self.transport.clock_offset)
        if not known:
            self.heartbeats = False
            log.info("heartbeat_unsupported", detail="the receiver answered 404; heartbeats stop")
        else:
            log.debug("heartbeat_sent")

    async def _release_size_quarantine(self, report: CycleReport) -> None:
        """Send again what was held back as too large for a batch limit that has since been raised."""
        released = await self.provider.requeue_sync_records(below_limit=self.settings.batch_bytes)
        if released:
            report.released = len(released)
            log.info("quarantine_released", count=len(released), batch_bytes=self.settings.batch_bytes,
                     ids=[q.id for q in released][:20])  # fmt: skip

    async def _pass(self, report: CycleReport) -> None:
        """Walk the pending set once by sync sequence (so the newest is reached, never starved).

        The stages overlap: reading and encoding the next batch, up to
        ``_IN_FLIGHT`` sends (the receiver validates one batch while it commits
        the one before), and applying the previous answer's acks. Answers are
        applied one at a time in the order the batches were read; whatever was
        answered is applied even when another send fails, and the first
        failure is raised once every send in flight has settled.
        """
        ready = Handoff()
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

    async def _produce(self, ready: Handoff, report: CycleReport) -> None:
        s = self.settings
        after, batch = 0, Batch()
        try:
            while not self.stop.is_set():
                page = await self.provider.get_pending_sync_workflows(s.page_size, after_seq=after)
                if not page:
                    break
                after = max(w.sync_seq or 0 for w in page)
                workflows = [w for w in page if isinstance(w, WorkflowRecord)]
                by_wf: dict[str, list[AuditLogRecord]] = {}
                for a in await self.provider.get_audit_logs_for_workflows(
                    [w.id for w in workflows], s.audit_per_workflow
                ):
                    if isinstance(a, AuditLogRecord):
                        by_wf.setdefault(a.workflow_id, []).append(a)
                    else:
                        await self._set_aside(a.kind, a.id, a.reason, report)
                for bad in page:
                    if isinstance(bad, UnreadableRecord):
                        await self._set_aside(bad.kind, bad.id, bad.reason, report)
                del page
                workflows.reverse()
                while workflows:  # records leave memory as they are encoded, not with the page
                    wf = workflows.pop()
                    batch = await self._add_unit(wf, by_wf.pop(wf.id, []), batch, ready, report)
            if batch.records:
                await ready.put(batch)
        finally:  # the end (or a read error, raised by ``await producer``) reaches the sender
            ready.end()

    async def _add_unit(
        self,
        wf: WorkflowRecord,
        audits: list[AuditLogRecord],
        batch: Batch,
        ready: Handoff,
        report: CycleReport,
    ) -> Batch:
        """Append a workflow's audit rows, then the workflow itself, handing on full batches.

        A record that cannot be encoded, or that could not fit even a batch of
        its own, is set aside; its workflow stays on the device.
        """
        s = self.settings
        room = s.batch_bytes - ENVELOPE_BYTES - HEALTH_BYTES
        encoded = [encode("audit", a.audit_id, wf.id, a) for a in audits]
        encoded.append(encode("workflow", wf.id, wf.id, wf))
        kinds = [("audit", a.audit_id) for a in audits] + [("workflow", wf.id)]
        records: list[Rec] = []
        for (kind, rid), rec in zip(kinds, encoded, strict=True):
            if isinstance(rec, str):
                await self._set_aside(kind, rid, rec, report)
            elif len(rec[3]) > room:
                reason = (f"record of {len(rec[3])} bytes does not fit a batch of "
                          f"batch_bytes={s.batch_bytes}")  # fmt: skip
                await self._set_aside(kind, rid, reason, report, limit_bytes=s.batch_bytes)
            else:
                records.append(rec)
        if len(records) < len(encoded):
            self._units.pop(wf.id, None)  # held back: sent, acked, never deleted this pass
        else:
            self._units[wf.id] = _Unit(wf.id, wf.sync_version, {(k, i) for k, i, _, _ in records})
        for rec in records:
            raw = rec[3]
            if len(batch.records) >= s.batch_records or batch.size + len(raw) + 1 > s.batch_bytes:
                await ready.put(batch)
                batch = Batch()
            batch.records.append(rec)
            batch.size += len(raw) + 1
        return batch

    async def _deliver(
        self, batch: Batch, report: CycleReport
    ) -> list[tuple[Batch, BatchResponse, dict]]:
        """Send one batch, halving it on 413; return each part that was answered.

        A 413 for a single record that fits ``batch_bytes`` means something in
        front of the receiver allows less: the record stays pending and the
        cycle fails (retried with backoff), never quarantined.
        """
        if self.stop.is_set():  # stopping: send nothing new, keep what is unsent for the next run
            self._spoil(batch.records)
            raise Stopped()
        started = time.perf_counter()
        batch_id = str(uuid.uuid4())
        body = batch.body(batch_id, self.transport.device_id, self.health)
        try:
            response, wire_bytes = await self.transport.send(body, batch_id)
        except TooLarge as exc:
            if len(batch.records) > 1:
                half = len(batch.records) // 2
                parts = []
                for part in (batch.records[:half], batch.records[half:]):
                    parts += await self._deliver(Batch.of(part), report)
                return parts
            kind, rid, _, raw = batch.records[0]
            self._spoil(batch.records)
            report.fail(TransportError(
                f"{exc}: the body was one {kind} ({rid}) of {len(raw)} bytes, within "
                f"batch_bytes={self.settings.batch_bytes}; something in front of the receiver "
                "accepts less; kept and retried (raise that limit, or lower batch_bytes to "
                "quarantine such records)", 413, reason="too_large"))  # fmt: skip
            return []
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
        self, delivered: list[tuple[Batch, BatchResponse, dict]], report: CycleReport
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
        self, batch: Batch, response: BatchResponse, report: CycleReport
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
                holds.append(self._set_aside(rej.kind, rej.id, rej.reason, report))
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

    def _spoil(self, records: list[Rec]) -> None:
        """Keep the workflows of records that were not acked: they are not deleted this pass."""
        for kind, _, wf_id, _ in records:
            if (unit := self._units.get(wf_id)) is not None:
                unit.spoiled = True
                if kind == "workflow":  # its last record: the unit is settled
                    del self._units[wf_id]

    async def _set_aside(
        self, kind: str, record_id: str, reason: str, report: CycleReport, **kw: Any
    ) -> None:
        """Quarantine a record (kept on the device, shown by ``status``), and say so."""
        await self.provider.quarantine_sync_record(kind, record_id, reason[:500], **kw)
        report.quarantined += 1
        report.problems.append(f"quarantined {kind} {record_id}: {reason}")
        log.warning("record_quarantined", kind=kind, id=record_id, reason=reason[:200])
