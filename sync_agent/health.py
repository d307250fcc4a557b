"""What the agent reports of itself to the receiver (contract §5, optional and v1-compatible).

Every batch carries it as ``"agent"``, and every cycle that went well ends by sending it alone in a
signed heartbeat, so that the cloud can tell an idle device from a dead one.
The figures are the ones ``ruvon-sync status`` shows, read from the store.
"""

from __future__ import annotations

import json

from ruvon_edge.providers.persistence import EdgeSyncStore
from sync_agent import status, version
from sync_agent.batching import HEALTH_BYTES, utcnow
from sync_agent.protocol import AgentHealth, Heartbeat

LAST_ERROR_CHARS = 200


async def measure(provider: EdgeSyncStore, clock_offset: float | None) -> AgentHealth:
    """The agent's health now; ``clock_offset`` is the latest measured (else the stored one)."""
    figures = await status.collect(provider)
    return AgentHealth(
        version=version(),
        backlog=figures["backlog"],
        oldest_pending_age_s=figures["oldest_pending_age_s"],
        quarantined=figures["quarantined"],
        last_error=(figures["last_error"] or "")[:LAST_ERROR_CHARS] or None,
        clock_offset_s=figures["clock_offset_s"] if clock_offset is None else clock_offset,
    )


def as_field(health: AgentHealth) -> dict:
    """The ``"agent"`` object of a batch (unknown figures left out), within the bytes batches reserve."""
    field = health.model_dump(exclude_none=True)
    if (
        len(json.dumps(field)) > HEALTH_BYTES
    ):  # an error text full of escapes: the figures matter more
        field.pop("last_error", None)
    return field


def heartbeat_body(health: AgentHealth) -> bytes:
    """The body of a heartbeat: ``{"agent": {...}, "sent_at": ...}``."""
    return Heartbeat(agent=health, sent_at=utcnow()).model_dump_json(exclude_none=True).encode()
