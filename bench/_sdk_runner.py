"""Run the benchmark workload on ruvon-sdk 0.1.5 (under its own venv); print one JSON line.

Its API, read from the installed source: ``ruvon.engine.WorkflowEngine`` with a
dict registry, ``SQLitePersistenceProvider(db_path)`` (aiosqlite, WAL, SQLite's
default ``synchronous``), ``SyncExecutor``, and ``Workflow.next_step()`` which
runs the ``automate_next`` chain.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness  # noqa: E402
import bench_steps  # noqa: E402

TERMINAL = {"COMPLETED", "FAILED", "FAILED_ROLLED_BACK", "CANCELLED"}


async def main() -> dict:
    args = _harness.runner_args()
    logging.disable(logging.CRITICAL)
    sys.stdout = open(os.devnull, "w")  # the SDK prints on import and on every resume
    from ruvon.engine import WorkflowEngine
    from ruvon.implementations.execution.sync import SyncExecutor
    from ruvon.implementations.expression_evaluator.simple import SimpleExpressionEvaluator
    from ruvon.implementations.observability.noop import NoopWorkflowObserver
    from ruvon.implementations.persistence.sqlite import SQLitePersistenceProvider
    from ruvon.implementations.templating.jinja2 import Jinja2TemplateEngine

    store = SQLitePersistenceProvider(args.db)
    await store.initialize()
    if args.synchronous != "default":
        await store.conn.execute(f"PRAGMA synchronous = {args.synchronous}")
    async with store.conn.execute("PRAGMA synchronous") as cur:
        sync_level = (await cur.fetchone())[0]
    engine = WorkflowEngine(
        persistence=store,
        executor=SyncExecutor(),
        observer=NoopWorkflowObserver(),
        workflow_registry={"Bench3": bench_steps.definition()},
        expression_evaluator_cls=SimpleExpressionEvaluator,
        template_engine_cls=Jinja2TemplateEngine,
    )
    await engine.initialize()

    async def one(i: int) -> str:
        wf = await engine.start_workflow("Bench3", {"order_id": f"O{i}", "amount": i})
        while wf.status not in TERMINAL:
            await wf.next_step()
        if wf.status != "COMPLETED":
            raise RuntimeError(f"workflow {wf.id} ended {wf.status}")
        return str(wf.id)

    try:
        result = await _harness.drive(one, args.n, args.concurrency, keep_samples=not args.rss_only)
        if args.count_commits:
            counter = _harness.CommitCounter()
            await counter.install()
            for i in range(args.count_commits):
                await one(10**9 + i)
            if counter.connections:
                result["traced_commits_per_wf"] = round(counter.commits / args.count_commits, 2)
    finally:
        await store.close()
    result["sqlite_synchronous"] = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(
        sync_level, sync_level
    )
    result.update(_harness.rss_mb())
    return result


if __name__ == "__main__":
    _harness.emit(asyncio.run(main()))
