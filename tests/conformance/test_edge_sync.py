"""The edge-only sync methods, on every backend that supports them: what leaves, what is deleted."""

from __future__ import annotations

import pytest
from conformance.records import create, finish, step, workflow

from ruvon_edge.providers.persistence import (
    DuplicateIdempotencyKeyError,
    IdempotencyKeySyncedError,
    WorkflowNotFoundError,
)


async def finished(store, n: int, status: str = "COMPLETED") -> list[dict]:
    """Create and finish ``n`` workflows, in that order."""
    return [await finish(store, await create(store), status) for _ in range(n)]


async def ack_all(store, wf: dict) -> None:
    """Ack every audit row of ``wf`` as the cloud would."""
    audit = await store.get_audit_logs_for_workflows([wf["id"]], 1000)
    await store.ack_synced_audit_logs([a.audit_id for a in audit])


async def test_pending_in_completion_order_with_versions(edge_store):
    """Pending lists terminal workflows in the order they finished, each with its row version."""
    a, b, running = await create(edge_store), await create(edge_store), await create(edge_store)
    b = await finish(edge_store, b)
    a = await finish(edge_store, a, "FAILED_ROLLED_BACK")
    page = await edge_store.get_pending_sync_workflows(10)
    assert [r.id for r in page] == [b["id"], a["id"]]
    assert [r.sync_version for r in page] == [2, 2] and page[0].sync_seq < page[1].sync_seq
    assert (
        page[1].status == "FAILED_ROLLED_BACK"
        and page[0].state == b["state"]
        and page[0].completed_at
    )
    assert running["id"] not in {r.id for r in page}


async def test_keyset_pagination_by_sync_seq(edge_store):
    """Pages taken with after_seq = the last row's sync_seq cover everything once, in order."""
    wfs = await finished(edge_store, 5)
    seen, after = [], 0
    while page := await edge_store.get_pending_sync_workflows(2, after_seq=after):
        seen += [r.id for r in page]
        after = page[-1].sync_seq
    assert seen == [w["id"] for w in wfs]


async def test_audit_page_per_workflow_limit_oldest_first(edge_store):
    """Audit rows of several workflows come back in one call, oldest first, at most N per workflow."""
    a, b, other = await create(edge_store), await create(edge_store), await create(edge_store)
    for _ in range(3):
        a = {**a, "version": (await edge_store.commit([step(a, a["version"])]))[0]}
    rows = await edge_store.get_audit_logs_for_workflows([a["id"], b["id"]], limit_per_workflow=2)
    assert sorted(r.workflow_id for r in rows) == sorted([a["id"], a["id"], b["id"]])
    a_rows = [r for r in rows if r.workflow_id == a["id"]]
    assert [r.details for r in a_rows] == [{"n": None}, {"n": 1}]  # the two oldest
    assert other["id"] not in {r.workflow_id for r in rows}


async def test_synced_workflow_is_deleted_with_its_logs(edge_store):
    """Acked audit rows go, then the acked workflow goes with its logs, metrics and finished tasks."""
    wf = await create(edge_store)
    await edge_store.commit([step(wf, 1, "COMPLETED", logs=[{"level": "INFO", "message": "m"}],
                                  metrics=[{"metric_name": "ms", "metric_value": 3}])])  # fmt: skip
    [rec] = await edge_store.get_pending_sync_workflows(10)
    audit = await edge_store.get_audit_logs_for_workflows([rec.id])
    assert await edge_store.ack_synced_audit_logs([a.audit_id for a in audit]) == 2
    assert (
        await edge_store.delete_synced_workflows([rec.id], versions={rec.id: rec.sync_version}) == 1
    )
    with pytest.raises(WorkflowNotFoundError):
        await edge_store.load_workflow(wf["id"])
    assert (
        await edge_store.get_execution_logs(wf["id"]) == []
        and await edge_store.get_metrics(wf["id"]) == []
    )
    assert await edge_store.get_pending_sync_workflows(10) == []


async def test_workflow_changed_after_handout_is_kept(edge_store):
    """A workflow whose version moved since it was handed out is not deleted."""
    [wf] = await finished(edge_store, 1)
    [rec] = await edge_store.get_pending_sync_workflows(10)
    await edge_store.commit([step(wf, wf["version"], audit=[])])  # changed in flight
    assert (
        await edge_store.delete_synced_workflows([rec.id], versions={rec.id: rec.sync_version}) == 0
    )
    assert (await edge_store.load_workflow(wf["id"]))["version"] == rec.sync_version + 1


async def test_workflow_with_unacked_audit_rows_is_kept(edge_store):
    """A workflow with any audit row left un-acked is not deleted."""
    [wf] = await finished(edge_store, 1)
    audit = await edge_store.get_audit_logs_for_workflows([wf["id"]])
    await edge_store.ack_synced_audit_logs([audit[0].audit_id])
    assert (
        await edge_store.delete_synced_workflows([wf["id"]], versions={wf["id"]: wf["version"]})
        == 0
    )
    assert await edge_store.delete_synced_workflows([wf["id"]]) == 0
    assert (await edge_store.load_workflow(wf["id"]))["status"] == "COMPLETED"


async def test_non_terminal_and_unversioned_workflows_are_kept(edge_store):
    """A running workflow, or one missing from the versions map, is never deleted."""
    running = await create(edge_store)
    [done] = await finished(edge_store, 1)
    for wf in (running, done):
        await ack_all(edge_store, wf)
    assert (
        await edge_store.delete_synced_workflows(
            [running["id"], done["id"]], versions={running["id"]: 1}
        )
        == 0
    )
    assert (await edge_store.load_workflow(running["id"]))["status"] == "ACTIVE"
    assert (
        await edge_store.delete_synced_workflows(
            [done["id"]], versions={done["id"]: done["version"]}
        )
        == 1
    )


async def test_child_of_deleted_parent_is_untouched(edge_store):
    """Deleting a synced parent never deletes its child, finished or not."""
    [parent] = await finished(edge_store, 1)
    child = await finish(edge_store, await create(edge_store, parent_id=parent["id"]))
    live_child = await create(edge_store, parent_id=parent["id"])
    for wf in (parent, child):
        await ack_all(edge_store, wf)
    assert (
        await edge_store.delete_synced_workflows(
            [parent["id"]], versions={parent["id"]: parent["version"]}
        )
        == 1
    )
    assert (await edge_store.load_workflow(child["id"]))["parent_id"] == parent["id"]
    assert (await edge_store.load_workflow(live_child["id"]))["status"] == "ACTIVE"
    assert [r.id for r in await edge_store.get_pending_sync_workflows(10)] == [child["id"]]


async def test_quarantine_holds_records_back_and_counts(edge_store):
    """Quarantined workflows and audit rows leave the pending set, are never deleted and are counted."""
    bad_wf, bad_audit, good = await finished(edge_store, 3)
    await edge_store.quarantine_sync_record("workflow", bad_wf["id"], "schema rejected")
    [audit_row, _] = await edge_store.get_audit_logs_for_workflows([bad_audit["id"]])
    await edge_store.quarantine_sync_record("audit", audit_row.audit_id, "too large")
    assert [r.id for r in await edge_store.get_pending_sync_workflows(10)] == [good["id"]]
    assert audit_row.audit_id not in {
        a.audit_id for a in await edge_store.get_audit_logs_for_workflows([bad_audit["id"]])
    }
    await ack_all(edge_store, bad_wf)
    assert (
        await edge_store.delete_synced_workflows(
            [bad_wf["id"]], versions={bad_wf["id"]: bad_wf["version"]}
        )
        == 0
    )
    backlog = await edge_store.sync_backlog()
    assert (backlog["pending"], backlog["quarantined"]) == (1, 2)
    with pytest.raises(ValueError):
        await edge_store.quarantine_sync_record("step", "x", "bad kind")


async def test_backlog_counts_pending_and_oldest(edge_store):
    """The backlog reports how many workflows wait, when the oldest finished, and nothing when empty."""
    assert await edge_store.sync_backlog() == {
        "pending": 0,
        "oldest_pending_at": None,
        "quarantined": 0,
    }
    first, _ = await finished(edge_store, 2)
    await create(edge_store)
    backlog = await edge_store.sync_backlog()
    assert backlog["pending"] == 2
    assert (
        backlog["oldest_pending_at"]
        == (await edge_store.load_workflow(first["id"]))["completed_at"]
    )


async def test_retried_workflow_is_queued_again_after_the_rest(edge_store):
    """A failed workflow revived by retry leaves the pending set, and re-enters it last when it ends again."""
    failed, other = await finished(edge_store, 2, "FAILED")
    revived = await edge_store.commit([step(failed, failed["version"], "ACTIVE")])
    assert [r.id for r in await edge_store.get_pending_sync_workflows(10)] == [other["id"]]
    again = await finish(
        edge_store, {**failed, "status": "ACTIVE", "version": revived[0]}, "FAILED"
    )
    page = await edge_store.get_pending_sync_workflows(10)
    assert [r.id for r in page] == [other["id"], again["id"]]


async def test_edge_sync_state_reads_back(edge_store):
    """The agent's cursors read back as written; an unknown key is None."""
    assert await edge_store.get_edge_sync_state("last_success_at") is None
    await edge_store.set_edge_sync_state("last_success_at", "2026-01-01T00:00:00Z")
    await edge_store.set_edge_sync_state("last_success_at", "2026-01-02T00:00:00Z")
    assert await edge_store.get_edge_sync_state("last_success_at") == "2026-01-02T00:00:00Z"


async def _sync(store, wf: dict) -> int:
    """Ack and settle ``wf`` exactly as the agent does after the cloud acked it."""
    await ack_all(store, wf)
    return await store.delete_synced_workflows([wf["id"]], versions={wf["id"]: wf["version"]})


async def test_idempotency_key_is_remembered_after_its_workflow_is_synced(edge_store):
    """A start with the key of a synced, deleted workflow writes nothing and names that workflow and its end."""
    [done] = [await finish(edge_store, await create(edge_store, idempotency_key="A1"))]
    assert await _sync(edge_store, done) == 1
    with pytest.raises(WorkflowNotFoundError):
        await edge_store.load_workflow(done["id"])
    again = workflow(idempotency_key="A1")
    with pytest.raises(IdempotencyKeySyncedError) as err:
        await edge_store.commit([step(again, None)])
    assert (err.value.existing_id, err.value.workflow_type, err.value.status) == (
        done["id"], "Order", "COMPLETED",
    )  # fmt: skip
    assert isinstance(err.value, DuplicateIdempotencyKeyError) and err.value.synced_at
    with pytest.raises(WorkflowNotFoundError):
        await edge_store.load_workflow(again["id"])
    other = await create(edge_store, idempotency_key="B2")  # other keys are unaffected
    assert (await edge_store.load_workflow(other["id"]))["idempotency_key"] == "B2"


async def test_failed_workflow_is_kept_after_sync_until_retried(edge_store):
    """A synced failure stays on the device, out of the pending set; retried and finished, it syncs again and goes."""
    failed = await finish(edge_store, await create(edge_store), "FAILED")
    assert await _sync(edge_store, failed) == 1
    assert (await edge_store.load_workflow(failed["id"]))["status"] == "FAILED"
    assert await edge_store.get_pending_sync_workflows(10) == []
    assert (await edge_store.sync_backlog())["pending"] == 0
    [revived] = await edge_store.commit([step(failed, failed["version"], "ACTIVE")])
    done = await finish(edge_store, {**failed, "status": "ACTIVE", "version": revived}, "COMPLETED")
    [record] = await edge_store.get_pending_sync_workflows(10)
    assert (record.id, record.status, record.sync_version) == (
        failed["id"],
        "COMPLETED",
        done["version"],
    )
    assert await _sync(edge_store, done) == 1
    with pytest.raises(WorkflowNotFoundError):
        await edge_store.load_workflow(failed["id"])


async def test_cancelled_failure_is_synced_again_then_deleted(edge_store):
    """A kept failure that is cancelled re-enters the pending set with its new version, then is deleted."""
    failed = await finish(edge_store, await create(edge_store), "FAILED")
    await _sync(edge_store, failed)
    [version] = await edge_store.commit([step(failed, failed["version"], "CANCELLED")])
    [record] = await edge_store.get_pending_sync_workflows(10)
    assert (record.status, record.sync_version) == ("CANCELLED", version)
    assert await _sync(edge_store, {**failed, "version": version}) == 1
    with pytest.raises(WorkflowNotFoundError):
        await edge_store.load_workflow(failed["id"])
