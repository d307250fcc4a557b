"""A power cut right after a sync, simulated by restoring the last fsynced image of the device's files.

An ``LD_PRELOAD`` shim (``powercut/fsync_shadow.c``, built with the system cc)
copies a device file at every successful fsync/fdatasync: that copy is what a
cut losing every unsynced write leaves on disk. The engine keeps the database
open (its close would checkpoint and hide the loss); the real agent syncs to
the real receiver; then the engine is killed and the files are replaced by
their durable image. Whatever the cloud acked must be on the device exactly as
shipped, or durably deleted (its idempotency key remembered) -- never lost,
never re-runnable into different content under the same sync_version.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sync.harness import Receiver, cli_flags, sync_cli

HERE = Path(__file__).parent / "powercut"
PAYMENTS = 40
CREATE = (
    "import asyncio, sys\n"
    "from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider\n"
    "async def main():\n"
    "    async with SQLitePersistenceProvider(sys.argv[1]):\n"
    "        pass\n"
    "asyncio.run(main())\n"
)


@pytest.fixture
def shim(tmp_path) -> Path:
    """The fsync-shadowing shim, compiled here with the system C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        message = "no C compiler to build the fsync shim (apt-get install gcc)"
        if os.environ.get("RUVON_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{message}; RUVON_REQUIRE_SERVICES=1 forbids skipping")
        pytest.skip(message)
    out = tmp_path / "fsync_shadow.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(out), str(HERE / "fsync_shadow.c"), "-ldl"],
                   check=True)  # fmt: skip
    return out


def acked(rx: Receiver) -> dict[str, tuple]:
    """id -> (sync_version, status, state, idempotency_key) as the receiver stored it."""
    with sqlite3.connect(rx.db) as conn:
        rows = conn.execute(
            "SELECT id, sync_version, status, state, idempotency_key FROM workflows"
        )
        return {i: (v, s, json.loads(st), k) for i, v, s, st, k in rows}


def device_after_cut(db: Path) -> tuple[dict[str, tuple], dict[str, str]]:
    """What the device holds once SQLite recovered the restored files: rows and remembered keys."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, version, status, state FROM workflows")
        workflows = {i: (v, s, json.loads(st)) for i, v, s, st in rows}
        keys = dict(conn.execute("SELECT idempotency_key, workflow_id FROM idempotency_tombstones"))
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return workflows, keys


def cut_power(device: Path, durable: Path) -> None:
    """Replace the device's files by their last fsynced image (a file never fsynced is gone)."""
    for path in device.iterdir():
        path.unlink()
    for image in durable.iterdir():
        if not image.name.startswith("."):
            shutil.copy(image, device / image.name)


def test_a_power_cut_after_sync_loses_or_replaces_nothing_the_cloud_acked(tmp_path, shim):
    """After a cut right after `ruvon-sync once`, every acked workflow is on the device as shipped or durably deleted."""
    device, durable = tmp_path / "device", tmp_path / "durable"
    device.mkdir()
    durable.mkdir()
    db = device / "edge.db"
    env = {"LD_PRELOAD": str(shim), "SHADOW_WATCH": f"{device}/", "SHADOW_DIR": str(durable),
           "RUVON_DISK_RESERVE_BYTES": "0"}  # fmt: skip
    full_env = {**os.environ, **env}
    subprocess.run([sys.executable, "-c", CREATE, str(db)], env=full_env, check=True)
    assert (durable / "edge.db").exists()  # its last close checkpointed: the schema is durable
    engine = subprocess.Popen([sys.executable, str(HERE / "run_payments.py"), str(db), str(PAYMENTS)],
                              env=full_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert engine.stdout.readline().strip() == "done"
        with Receiver(tmp_path) as rx:
            synced = sync_cli("once", *cli_flags(db, rx.url, rx), env=env)
            assert synced.returncode == 0, synced.stderr
            shipped = acked(rx)
            assert len(shipped) == PAYMENTS and {s for _, s, _, _ in shipped.values()} == {
                "COMPLETED"
            }
            engine.kill()  # the power goes: nothing more reaches the disk
            engine.wait(30)
            cut_power(device, durable)
            workflows, keys = device_after_cut(db)
            for wid, (version, status, state, key) in shipped.items():
                if (
                    wid in workflows
                ):  # its delete was not durable: it must be exactly what was shipped
                    assert workflows[wid] == (version, status, state), wid
                else:  # deleted durably: the same transaction remembered its key
                    assert keys.get(key) == wid, (
                        f"{wid} ({key}) was acked by the cloud but is lost on the device"
                    )
            again = sync_cli("once", *cli_flags(db, rx.url, rx))
            assert again.returncode == 0, again.stderr
            assert acked(rx) == shipped  # the resend duplicated and replaced nothing
        assert device_after_cut(db)[0] == {}
    finally:
        engine.kill()
        engine.wait(30)
        engine.stdout.close()
        engine.stdin.close()
