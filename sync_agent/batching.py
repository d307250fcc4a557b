"""A batch being packed (records as encoded JSON) and the hand-off from the reader to the sender.

Each record is encoded on its own, so one that cannot be (a lone surrogate
read back from the store) is named and quarantined while the rest go on.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, to_json

ENVELOPE_BYTES = 256  # batch_id, device_id, sent_at and the JSON around the two arrays
HEALTH_BYTES = 512  # the optional "agent" object at most (health.as_field keeps it under)

Rec = tuple[str, str, str, bytes | memoryview]  # (kind, record id, workflow id, JSON)


def utcnow() -> str:
    """Return the current time as RFC 3339 UTC."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode(kind: str, record_id: str, workflow_id: str, record: BaseModel) -> Rec | str:
    """The record as wire JSON, or the reason it cannot be encoded."""
    try:
        raw = to_json(record, exclude={"sync_seq"} if kind == "workflow" else None)
    except (PydanticSerializationError, ValueError) as exc:
        return (
            f"cannot encode {kind} as JSON: {str(exc).removeprefix('Error serializing to JSON: ')}"
        )
    return (kind, record_id, workflow_id, raw)


@dataclass
class Batch:
    """Records packed for one request; ``size`` is the body's length in bytes so far."""

    records: list[Rec] = field(default_factory=list)
    size: int = ENVELOPE_BYTES + HEALTH_BYTES

    @classmethod
    def of(cls, records: list[Rec]) -> Batch:
        return cls(records, ENVELOPE_BYTES + HEALTH_BYTES + sum(len(r[3]) + 1 for r in records))

    def body(self, batch_id: str, device_id: str, agent: dict | None = None) -> bytes:
        """The request body; each record's JSON then becomes a view into it (one copy in memory)."""
        envelope: dict[str, Any] = {
            "batch_id": batch_id,
            "device_id": device_id,
            "sent_at": utcnow(),
        }
        if agent is not None:
            envelope["agent"] = agent
        head = json.dumps(envelope)[:-1]
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


class Handoff:
    """Batches from the reader to the sender: at most one waiting; the end marker never blocks."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Batch | None] = asyncio.Queue()
        self._room = asyncio.Semaphore(1)

    async def put(self, batch: Batch) -> None:
        await self._room.acquire()
        self._queue.put_nowait(batch)

    def end(self) -> None:
        self._queue.put_nowait(None)

    async def get(self) -> Batch | None:
        batch = await self._queue.get()
        self._room.release()
        return batch
