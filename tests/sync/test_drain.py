"""The drain loop against the real receiver: delivery, batching by count and bytes, gzip, deletion."""

from __future__ import annotations

import gzip
import json

from sync.harness import FaultProxy, Receiver, agent_settings, drain, local_ids, make_finished

from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider


async def test_drain_delivers_everything_once_and_empties_the_device(tmp_path):
    """Every finished workflow and audit row reaches the receiver once and is then deleted locally."""
    db = tmp_path / "edge.db"
    async with SQLitePersistenceProvider(db) as p:
        ids = await make_finished(p, 120, audit_per=5)
    with Receiver(tmp_path) as rx:
        report = await drain(agent_settings(db, rx.url, rx))
        assert report.ok and report.deleted == 120 and report.audit_acked == 600
        assert sorted(r[0] for r in rx.rows("workflows")) == sorted(ids)
        assert len(rx.rows("audit_logs")) == 600
    assert local_ids(db) == set()


async def test_batches_respect_record_count_and_byte_limits_and_gzip_large_bodies(tmp_path):
    """No batch carries more records or more uncompressed bytes than configured; big ones travel gzipped."""
    db = tmp_path / "edge.db"
    async with SQLitePersistenceProvider(db) as p:
        await make_finished(p, 60, audit_per=3, state={"blob": "x" * 2000})
    with Receiver(tmp_path) as rx, FaultProxy(rx.url) as proxy:
        report = await drain(
            agent_settings(db, proxy.url, rx, batch_records=50, batch_bytes=40_000)
        )
        assert report.ok and report.deleted == 60
    bodies = []
    for req in (r for r in proxy.seen if r.path.endswith("/batches")):  # not the heartbeat
        raw = (
            gzip.decompress(req.body) if req.headers.get("Content-Encoding") == "gzip" else req.body
        )
        bodies.append((req, raw, json.loads(raw)))
    assert len(bodies) >= 5
    for req, raw, doc in bodies:
        assert len(doc["workflows"]) + len(doc["audit_logs"]) <= 50
        assert len(raw) <= 40_000
        if len(raw) > 8192:
            assert req.headers["Content-Encoding"] == "gzip" and len(req.body) < len(raw)


async def test_the_newest_workflow_is_reached_in_the_same_drain(tmp_path):
    """A workflow finished while a long backlog drains is delivered by that same drain (no starvation)."""
    db = tmp_path / "edge.db"
    async with SQLitePersistenceProvider(db) as p:
        await make_finished(p, 300, audit_per=1)
    newest: list[str] = []

    def finish_one_more(n, req):
        if n == 2:
            import asyncio

            async def add():
                async with SQLitePersistenceProvider(db) as q:
                    newest.extend(await make_finished(q, 1, audit_per=1))

            asyncio.run(add())
        return "forward"

    with Receiver(tmp_path) as rx, FaultProxy(rx.url, finish_one_more) as proxy:
        report = await drain(agent_settings(db, proxy.url, rx, batch_records=40))
        assert report.ok and report.deleted == 301
        assert newest[0] in {r[0] for r in rx.rows("workflows")}
    assert local_ids(db) == set()
