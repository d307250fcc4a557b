"""Run the benchmark workload on Ruvon Edge (one fresh process per measurement); print one JSON line."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness  # noqa: E402
import bench_steps  # noqa: E402

NAMESPACE = f"ruvon_bench_{uuid.uuid4().hex[:12]}"  # isolates this run on shared servers


def _provider(args):
    if args.backend == "postgres":
        from ruvon_edge.implementations.persistence.postgres import PostgresPersistenceProvider

        return PostgresPersistenceProvider(args.dsn, schema=NAMESPACE)
    if args.backend == "redis":
        from ruvon_edge.implementations.persistence.redis import RedisPersistenceProvider

        return RedisPersistenceProvider(args.dsn, prefix=NAMESPACE)
    from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider

    sync = "NORMAL" if args.synchronous == "default" else args.synchronous
    return SQLitePersistenceProvider(args.db, synchronous=sync)


async def main() -> dict:
    args = _harness.runner_args()
    from ruvon_edge import WorkflowEngine, WorkflowRegistry

    registry = WorkflowRegistry(allowed_modules=["bench_steps"])
    registry.register(bench_steps.definition())
    store = _provider(args)
    async with WorkflowEngine(persistence=store, registry=registry) as engine:

        async def one(i: int) -> str:
            wf = await engine.start_workflow("Bench3", {"order_id": f"O{i}", "amount": i})
            wf = await engine.run(wf.id)
            if wf.status != "COMPLETED":
                raise RuntimeError(f"workflow {wf.id} ended {wf.status}: {wf.error}")
            return str(wf.id)

        result = await _harness.drive(one, args.n, args.concurrency, keep_samples=not args.rss_only)
        if args.count_commits:
            counter = _harness.CommitCounter()
            await counter.install()
            before = getattr(store, "commit_count", None)
            for i in range(args.count_commits):
                await one(10**9 + i)
            if before is not None:
                result["commits_per_wf"] = round(
                    (store.commit_count - before) / args.count_commits, 2
                )
            if counter.connections:
                result["traced_commits_per_wf"] = round(counter.commits / args.count_commits, 2)
    result.update(_harness.rss_mb())
    await _drop_namespace(args)
    return result


async def _drop_namespace(args) -> None:
    """Remove what this run wrote to a shared PostgreSQL or Redis server."""
    if args.backend == "postgres":
        import asyncpg

        conn = await asyncpg.connect(args.dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{NAMESPACE}" CASCADE')
        finally:
            await conn.close()
    elif args.backend == "redis":
        import redis.asyncio as aioredis

        client = aioredis.from_url(args.dsn)
        try:
            keys = [k async for k in client.scan_iter(match=f"{NAMESPACE}*", count=1000)]
            for i in range(0, len(keys), 1000):
                await client.delete(*keys[i : i + 1000])
        finally:
            await client.aclose()


if __name__ == "__main__":
    _harness.emit(asyncio.run(main()))
