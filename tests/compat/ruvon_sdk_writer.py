"""Write a real ruvon-sdk 0.1.5 device database; run by the reference SDK's own interpreter.

Usage: ``python ruvon_sdk_writer.py DB [--bulk N]``. Drives the reference
engine (its ``WorkflowEngine``, ``SQLitePersistenceProvider``, ``SyncExecutor``)
through the till workflows of ``ruvon_sdk_device`` so that the file holds a
workflow in every status the reference reaches on a device, its audit rows,
logs and metrics, and sync state; ``--bulk`` adds N completed sales. Prints
one JSON object: label -> workflow id (the reference's own id text).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
TERMINAL = {"COMPLETED", "FAILED", "FAILED_ROLLED_BACK", "CANCELLED", "FAILED_WORKER_CRASH"}


async def write(db: str, bulk: int) -> dict[str, str]:
    from ruvon.engine import WorkflowEngine
    from ruvon.implementations.execution.sync import SyncExecutor
    from ruvon.implementations.expression_evaluator.simple import SimpleExpressionEvaluator
    from ruvon.implementations.observability.noop import NoopWorkflowObserver
    from ruvon.implementations.persistence.sqlite import SQLitePersistenceProvider
    from ruvon.implementations.templating.jinja2 import Jinja2TemplateEngine

    class BrokerExecutor(SyncExecutor):
        """Hands ASYNC tasks to a broker, as the reference's Celery executor does: the workflow waits."""

        async def dispatch_async_task(self, func_path, state_data, workflow_id, *args, **kwargs):
            return {"_async_dispatch": True, "task_id": f"celery-{workflow_id}"}

    registry = {}
    for name in ("checkout.yaml", "refund.yaml", "layaway.yaml"):
        definition = yaml.safe_load((HERE / "ruvon_sdk_device" / name).read_text())
        registry[definition["workflow_type"]] = definition
    store = SQLitePersistenceProvider(db)
    await store.initialize()

    def engine(executor) -> WorkflowEngine:
        return WorkflowEngine(
            persistence=store,
            executor=executor,
            observer=NoopWorkflowObserver(),
            workflow_registry=registry,
            expression_evaluator_cls=SimpleExpressionEvaluator,
            template_engine_cls=Jinja2TemplateEngine,
        )

    try:
        local, broker = engine(SyncExecutor()), engine(BrokerExecutor())
        await local.initialize()
        await broker.initialize()
        ids: dict[str, str] = {}

        async def sale(label, amount, steps, workflow_type="Checkout", eng=local, **start):
            wf = await eng.start_workflow(
                workflow_type, {"order_id": label, "amount": amount}, **start
            )
            for _ in range(steps):
                if wf.status in TERMINAL:
                    break
                user_input = {"approver": "sam"} if wf.status == "WAITING_HUMAN" else None
                try:
                    await wf.next_step(user_input=user_input)
                except Exception:  # the reference re-raises a failed step after recording it
                    wf = await eng.get_workflow(wf.id)
            ids[label] = str(wf.id)
            return wf

        await sale("active-new", 10, 0)  # ACTIVE at Reserve
        await sale("active-mid", 11, 1)  # ACTIVE at Approve
        await sale(
            "waiting-human", 12, 2, idempotency_key="till-7:0012"
        )  # WAITING_HUMAN at Approve
        await sale("completed", 13, 10)
        await sale("failed", -14, 10)  # Charge raises: FAILED
        cancelled = await sale("cancelled", 15, 1)
        # What `ruvon cancel --force` does: status CANCELLED, saved, one log line.
        data = await store.load_workflow(cancelled.id)
        data = data if isinstance(data, dict) else __import__("msgspec").to_builtins(data)
        data["status"] = "CANCELLED"
        await store.save_workflow(cancelled.id, data)
        await store.log_execution(
            workflow_id=cancelled.id,
            step_name=None,
            log_level="WARNING",
            message="Workflow cancelled",
        )
        crashed = await sale("crashed", 16, 1)
        await store.mark_workflow_as_crashed(crashed.id, "worker pos-17-w1 stopped heartbeating")
        await sale(
            "pending-async", 17, 1, workflow_type="Refund", eng=broker
        )  # PENDING_ASYNC at Settle
        await sale("rolled-back", -18, 10, workflow_type="Refund")  # saga: FAILED_ROLLED_BACK
        parent = await sale(
            "layaway-pending", 30, 1, workflow_type="Layaway"
        )  # PENDING_SUB_WORKFLOW
        ids["layaway-pending-child"] = str(parent.blocked_on_child_id)
        parent = await sale("layaway-child-waiting", 31, 1, workflow_type="Layaway")
        child = await local.get_workflow(parent.blocked_on_child_id)
        while (
            child.status == "ACTIVE"
        ):  # Reserve, then Approve pauses: the parent waits for human input
            try:
                await child.next_step()
            except Exception:  # the reference re-raises the pause of an automated chain
                child = await local.get_workflow(child.id)
        ids["layaway-child-waiting-child"] = str(child.id)
        for i in range(bulk):
            await sale(f"bulk-{i}", 20 + i, 10)
        await store.set_edge_sync_state("relay_server_host", "10.0.0.5")
        await store.set_edge_sync_state("api_key", "sk-device-secret-7f3a")
    finally:
        await store.close()  # else its thread keeps a failed run alive
    return ids


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("--bulk", type=int, default=0)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    out = sys.stdout
    sys.stdout = open(os.devnull, "w")  # the SDK prints on import and on every step
    sys.path.insert(0, str(HERE))
    ids = asyncio.run(write(args.db, args.bulk))
    out.write(json.dumps(ids) + "\n")


if __name__ == "__main__":
    main()
