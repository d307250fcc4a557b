"""The agent reports its health (issue 11, agent side): in every batch, and in a signed heartbeat once nothing
is left to send; a receiver without the heartbeat route (404) gets no more of them. Real CLI, real receiver."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys

from sync.harness import DEVICE, FaultProxy, Receiver, cli_flags, make_finished

from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider
from sync_agent import protocol, version


def _device_row(rx: Receiver) -> dict:
    with sqlite3.connect(rx.db) as conn:
        conn.row_factory = sqlite3.Row
        return dict(conn.execute("SELECT * FROM devices WHERE device_id = ?", (DEVICE,)).fetchone())


async def test_batches_carry_health_and_a_signed_heartbeat_leaves_the_receiver_with_the_final_figures(
    tmp_path,
):
    """Each batch has an "agent" object with the backlog it started from; the cycle ends with a signed heartbeat,
    so the receiver's registry shows backlog 0, the one quarantined record and the agent's version."""
    db = tmp_path / "edge.db"
    async with SQLitePersistenceProvider(db) as p:
        await make_finished(p, 5, 1)
        (rejected,) = await make_finished(p, 1, 1, workflow_type="x" * 300)
    with Receiver(tmp_path) as rx, FaultProxy(rx.url) as proxy:
        out = subprocess.run([sys.executable, "-m", "sync_agent.cli", "once", *cli_flags(db, proxy.url, rx)],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert out.returncode == 0, out.stderr
        batches = [r for r in proxy.seen if r.path.endswith("/batches")]
        beats = [r for r in proxy.seen if r.path == protocol.heartbeat_path(DEVICE)]
        agent = json.loads(batches[0].body)["agent"]
        assert agent["version"] == version() and agent["backlog"] == 6 and agent["quarantined"] == 0
        assert len(beats) == 1 and proxy.seen[-1] is beats[0]
        beat = json.loads(beats[0].body)
        assert (
            beat["agent"]["backlog"] == 0 and beat["agent"]["quarantined"] == 1 and beat["sent_at"]
        )
        assert rejected in beat["agent"]["last_error"]
        assert (
            protocol.H_SIGNATURE in beats[0].headers
            or protocol.H_SIGNATURE.lower() in beats[0].headers
        )
        row = _device_row(rx)
    assert row["agent_version"] == version() and row["backlog"] == 0 and row["quarantined"] == 1
    assert row["health_at"] is not None and rejected in row["last_error"]


async def test_a_receiver_without_heartbeats_gets_one_404_and_no_more(tmp_path):
    """Against a receiver that answers 404 on the heartbeat route, `run` tries once, logs it, and keeps cycling
    without heartbeats; its batches still arrive."""
    db = tmp_path / "edge.db"
    async with SQLitePersistenceProvider(db) as p:
        await make_finished(p, 3, 1)

    def older(n, req):
        return (
            ("respond", 404, b'{"error": "not found"}', {})
            if req.path.endswith("/heartbeat")
            else "forward"
        )

    with Receiver(tmp_path) as rx, FaultProxy(rx.url, older) as proxy:
        flags = cli_flags(db, proxy.url, rx, interval=0.1)
        agent = subprocess.Popen([sys.executable, "-m", "sync_agent.cli", "run", *flags, "--log-level", "debug"],
                                 stderr=subprocess.PIPE, text=True)  # fmt: skip
        seen: list[dict] = []
        try:
            for line in agent.stderr:  # stop by event: the third cycle after the 404
                seen.append(json.loads(line))
                if sum(e["event"] == "cycle_finished" for e in seen) == 4:
                    break
        finally:
            agent.send_signal(signal.SIGTERM)
            rest, _ = agent.communicate(timeout=30)
        assert agent.returncode == 0
        beats = [r for r in proxy.seen if r.path.endswith("/heartbeat")]
        assert len(beats) == 1
        assert [e["event"] for e in seen].count("heartbeat_unsupported") == 1
        assert len(rx.rows("workflows")) == 3
