"""Quarantine management on every edge-sync backend: list, requeue (by hand or a raised limit), purge."""

from __future__ import annotations

import pytest
from conformance.records import create, finish, step, workflow
from conformance.test_edge_sync import finished

from ruvon_edge.providers.persistence import IdempotencyKeySyncedError, WorkflowNotFoundError


async def _quarantine_three(store):
    """A workflow rejected by name, one too large for a 1000-byte limit, and one audit row of a third."""
    rejected, big, with_bad_row = await finished(store, 3)
    await store.quarantine_sync_record("workflow", rejected["id"], "schema rejected")
    await store.quarantine_sync_record("workflow", big["id"], "too large", limit_bytes=1000)
    [row, _] = await store.get_audit_logs_for_workflows([with_bad_row["id"]])
    await store.quarantine_sync_record("audit", row.audit_id, "unreadable")
    return rejected, big, with_bad_row, row


async def test_list_names_kind_id_reason_time_and_limit(edge_store):
    """The list shows every quarantined record with its reason, when, and the byte limit it exceeded."""
    rejected, big, with_bad_row, row = await _quarantine_three(edge_store)
    listed = await edge_store.list_sync_quarantine()
    assert [(q.kind, q.id, q.reason, q.limit_bytes) for q in listed] == [
        ("workflow", rejected["id"], "schema rejected", None),
        ("workflow", big["id"], "too large", 1000),
        ("audit", row.audit_id, "unreadable", None),
    ]
    assert listed[2].workflow_id == with_bad_row["id"]
    assert all(q.quarantined_at.endswith("Z") for q in listed)


async def test_raised_limit_releases_only_what_it_held_back(edge_store):
    """Requeue below a raised limit frees the too-large record only; a limit not raised frees nothing."""
    rejected, big, with_bad_row, _ = await _quarantine_three(edge_store)
    assert await edge_store.requeue_sync_records(below_limit=1000) == []
    [freed] = await edge_store.requeue_sync_records(below_limit=2000)
    assert freed.id == big["id"]
    assert [r.id for r in await edge_store.get_pending_sync_workflows(10)] == [big["id"]]
    assert (await edge_store.sync_backlog())["quarantined"] == 2


async def test_requeue_by_id_and_all_sends_records_again(edge_store):
    """Requeue by id frees that record; requeue of all frees the rest; nothing is deleted."""
    rejected, big, with_bad_row, row = await _quarantine_three(edge_store)
    assert [q.id for q in await edge_store.requeue_sync_records([row.audit_id])] == [row.audit_id]
    assert {r.id for r in await edge_store.get_pending_sync_workflows(10)} == {with_bad_row["id"]}
    assert len(await edge_store.requeue_sync_records()) == 2
    assert len(await edge_store.get_pending_sync_workflows(10)) == 3
    assert await edge_store.list_sync_quarantine() == []


async def test_purge_deletes_the_record_and_only_it(edge_store):
    """Purging a workflow deletes it with its trail; purging an audit row deletes that row and frees its workflow."""
    rejected, big, with_bad_row, row = await _quarantine_three(edge_store)
    purged = await edge_store.purge_sync_records([rejected["id"], row.audit_id])
    assert {q.id for q in purged} == {rejected["id"], row.audit_id}
    with pytest.raises(WorkflowNotFoundError):
        await edge_store.load_workflow(rejected["id"])
    assert await edge_store.get_audit_logs(rejected["id"]) == []
    remaining = await edge_store.get_audit_logs(with_bad_row["id"])
    assert row.audit_id not in {a.audit_id for a in remaining} and len(remaining) == 1
    assert [r.id for r in await edge_store.get_pending_sync_workflows(10)] == [with_bad_row["id"]]
    assert [q.id for q in await edge_store.list_sync_quarantine()] == [big["id"]]


async def test_purge_keeps_a_workflow_that_is_running_again(edge_store):
    """A quarantined workflow that is no longer terminal loses its quarantine on purge, never its row."""
    running = await create(edge_store)
    await edge_store.quarantine_sync_record("workflow", running["id"], "rejected")
    assert [q.id for q in await edge_store.purge_sync_records()] == [running["id"]]
    assert (await edge_store.load_workflow(running["id"]))["status"] == "ACTIVE"


async def test_a_purged_workflow_keeps_its_idempotency_key_spent(edge_store):
    """Purge deletes the workflow but remembers its key: a new start with it runs nothing (the work may have happened)."""
    wf = await finish(edge_store, await create(edge_store, idempotency_key="P1"))
    await edge_store.quarantine_sync_record("workflow", wf["id"], "rejected")
    assert [q.id for q in await edge_store.purge_sync_records([wf["id"]])] == [wf["id"]]
    with pytest.raises(IdempotencyKeySyncedError) as err:
        await edge_store.commit([step(workflow(idempotency_key="P1"), None)])
    assert err.value.existing_id == wf["id"]
