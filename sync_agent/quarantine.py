"""`ruvon-sync quarantine list | requeue | purge`: see what is held back, send it again, or drop it.

``purge`` is the only path that deletes data the cloud never acked, so it
asks for ``--yes`` and logs every record it removed at warning. ``requeue``
only lifts the hold: a record that still cannot be sent is held again, with
its reason, by the next cycle.
"""

from __future__ import annotations

import json

import structlog

from ruvon_edge.providers.persistence import EdgeSyncStore, QuarantinedRecord

log = structlog.get_logger("ruvon_sync")


class UnknownRecord(ValueError):
    """An id given on the command line is not quarantined (exit 2)."""


def as_json(records: list[QuarantinedRecord]) -> str:
    """The contract's JSON: an array of ``{kind, id, reason, quarantined_at}``."""
    return json.dumps(
        [r.model_dump(include={"kind", "id", "reason", "quarantined_at"}) for r in records]
    )


def as_text(records: list[QuarantinedRecord]) -> str:
    """One line per record for a human: when, kind, id, reason."""
    if not records:
        return "nothing is quarantined"
    return "\n".join(f"{r.quarantined_at}  {r.kind:<8}  {r.id}  {r.reason}" for r in records)


async def _check_known(provider: EdgeSyncStore, ids: list[str] | None) -> None:
    if ids is None:
        return
    held = {r.id for r in await provider.list_sync_quarantine()}
    if unknown := [i for i in ids if i not in held]:
        raise UnknownRecord(
            f"no quarantined record has id {unknown[0]} (see: ruvon-sync quarantine list)"
        )


async def requeue(provider: EdgeSyncStore, ids: list[str] | None) -> list[QuarantinedRecord]:
    """Lift the hold on these records (None: all); the next cycle sends them."""
    await _check_known(provider, ids)
    released = await provider.requeue_sync_records(ids)
    for r in released:
        log.info("quarantine_requeued", kind=r.kind, id=r.id, reason=r.reason)
    return released


async def purge(provider: EdgeSyncStore, ids: list[str] | None) -> list[QuarantinedRecord]:
    """Delete these records (None: all) for good; each is logged at warning."""
    await _check_known(provider, ids)
    purged = await provider.purge_sync_records(ids)
    for r in purged:
        log.warning("quarantine_purged", kind=r.kind, id=r.id, workflow_id=r.workflow_id,
                    reason=r.reason, quarantined_at=r.quarantined_at)  # fmt: skip
    return purged
