"""`ruvon-edge import-ruvon-db`: a device database written by the real ruvon-sdk 0.1.5, switched over.

The old database is made once per session by the reference SDK itself (in its
own venv, ``bench/sdk_venv.py``) driving the till workflows of
``ruvon_sdk_device`` into every status it reaches on a device.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sync.harness import Receiver, cli_flags, sync_cli

from ruvon_edge import WorkflowEngine, WorkflowRegistry, cli
from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider

HERE = Path(__file__).resolve().parent
BENCH = HERE.parents[1] / "bench"
DEVICE_APP = HERE / "ruvon_sdk_device"
BULK = 20
# The first test may install ruvon-sdk into its venv (minutes of downloads; `.ci/run` does it beforehand).
pytestmark = pytest.mark.timeout(1200)
IN_FLIGHT = {"active-new": "ACTIVE", "active-mid": "ACTIVE", "waiting-human": "WAITING_HUMAN",
             "pending-async": "ACTIVE", "layaway-pending": "PENDING_SUB_WORKFLOW",
             "layaway-pending-child": "ACTIVE", "layaway-child-waiting": "WAITING_CHILD_HUMAN_INPUT",
             "layaway-child-waiting-child": "WAITING_HUMAN"}  # fmt: skip
TERMINAL = {"completed": "COMPLETED", "failed": "FAILED", "cancelled": "CANCELLED",
            "crashed": "FAILED_WORKER_CRASH", "rolled-back": "FAILED_ROLLED_BACK"}  # fmt: skip


def _sdk_venv():
    spec = importlib.util.spec_from_file_location("sdk_venv", BENCH / "sdk_venv.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def reference_db(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A ruvon-sdk 0.1.5 database written by the reference engine, and label -> workflow id."""
    try:
        python = _sdk_venv().ensure_sdk_python()
    except RuntimeError as exc:
        if os.environ.get("RUVON_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{exc}; RUVON_REQUIRE_SERVICES=1 forbids skipping")
        pytest.skip(str(exc))
    db = tmp_path_factory.mktemp("ruvon-sdk") / "device.db"
    out = subprocess.run(
        [str(python), str(HERE / "ruvon_sdk_writer.py"), str(db), "--bulk", str(BULK)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return db, json.loads(out.stdout)


@pytest.fixture
def old_db(reference_db, tmp_path) -> tuple[Path, dict[str, str]]:
    """This test's own copy of the reference database (with its -wal/-shm, as a device leaves them)."""
    src, ids = reference_db
    for f in src.parent.glob(src.name + "*"):
        shutil.copy2(f, tmp_path / f.name)
    return tmp_path / src.name, ids


@pytest.fixture
def device_app(monkeypatch) -> list[str]:
    """The definition flags of the till workflows (their module importable here)."""
    monkeypatch.syspath_prepend(str(HERE))
    return ["--definitions", str(DEVICE_APP), "--allow-module", "ruvon_sdk_device",
            "--module-path", str(HERE)]  # fmt: skip


def run_import(capsys, old: Path, db: Path, *flags: str) -> tuple[int, dict, str]:
    """Run the real CLI in-process; return its exit code, JSON report and stderr."""
    code = cli.main(["import-ruvon-db", str(old), "--db", str(db), "--json", *flags])
    out = capsys.readouterr()
    return code, json.loads(out.out) if out.out.strip() else {}, out.err


def rows(db: Path, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def test_every_status_audit_and_sync_state_are_copied_and_the_old_file_is_untouched(
    old_db, device_app, tmp_path, capsys
):
    """Each reference status lands as documented (PENDING_ASYNC as ACTIVE), with audit, logs, metrics and prefixed sync state; the old file's bytes and mtime do not change."""
    old, ids = old_db
    before = fingerprint(old)
    with sqlite3.connect(f"file:{old}?mode=ro", uri=True) as conn:
        old_audit = {
            r[0]
            for r in conn.execute(
                "SELECT audit_id FROM workflow_audit_log WHERE audit_id IS NOT NULL"
            )
        }
        old_counts = [conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                      for t in ("workflow_audit_log", "workflow_execution_logs", "workflow_metrics")]  # fmt: skip
    db = tmp_path / "edge.db"
    code, report, err = run_import(capsys, old, db, *device_app)
    assert code == 0, err
    assert report["imported"] == {"ACTIVE": 3, "WAITING_HUMAN": 2, "PENDING_ASYNC": 1, "PENDING_SUB_WORKFLOW": 1,
                                  "WAITING_CHILD_HUMAN_INPUT": 1, "COMPLETED": 1 + BULK, "FAILED": 1,
                                  "CANCELLED": 1, "FAILED_WORKER_CRASH": 1, "FAILED_ROLLED_BACK": 1}  # fmt: skip
    assert report["refused"] == [] and report["skipped_already_imported"] == 0
    assert [report["audit_logs"], report["execution_logs"], report["metrics"]] == old_counts
    stored = dict(rows(db, "SELECT id, status FROM workflows"))
    for label, status in {**IN_FLIGHT, **TERMINAL}.items():
        assert stored[ids[label]] == status, label
    steps = dict(rows(db, "SELECT id, current_step FROM workflows"))
    assert steps[ids["waiting-human"]] == "Approve" and steps[ids["pending-async"]] == "Settle"
    pending = {r[0] for r in rows(db, "SELECT id FROM workflows WHERE sync_seq IS NOT NULL")}
    assert pending == {
        i for label, i in ids.items() if label in TERMINAL or label.startswith("bulk-")
    }
    audit = {r[0] for r in rows(db, "SELECT audit_id FROM audit_log")}
    assert old_audit <= audit
    assert len(audit) == old_counts[0] + len(stored)  # plus one WORKFLOW_IMPORTED each
    (error,) = rows(db, "SELECT error FROM workflows WHERE id = ?", ids["failed"])[0]
    assert "card declined" in error
    state = dict(rows(db, "SELECT key, value FROM edge_sync_state WHERE key LIKE 'ruvon-sdk:%'"))
    assert state == {
        "ruvon-sdk:relay_server_host": "10.0.0.5",
        "ruvon-sdk:api_key": "sk-device-secret-7f3a",
    }
    assert fingerprint(old) == before


def test_imported_in_flight_workflows_resume_to_completion_under_our_engine(
    old_db, device_app, tmp_path, capsys
):
    """The waiting sale takes its approval, the active ones run from their step, and the refund whose task was with the old broker dispatches it again; all complete."""
    old, ids = old_db
    db = tmp_path / "edge.db"
    assert run_import(capsys, old, db, *device_app)[0] == 0
    registry = WorkflowRegistry(allowed_modules=["ruvon_sdk_device"])
    registry.register_directory(DEVICE_APP)

    async def drive() -> dict[str, object]:
        async with WorkflowEngine(SQLitePersistenceProvider(db), registry) as engine:
            done = {"waiting-human": await engine.resume(ids["waiting-human"], {"approver": "kim"})}
            for label in ("active-new", "active-mid"):
                wf = await engine.run(ids[label])
                assert wf.status == "WAITING_HUMAN" and wf.current_step == "Approve", label
                done[label] = await engine.resume(wf.id, {"approver": "kim"})
            wf = await engine.run(ids["pending-async"])
            assert wf.status == "PENDING_ASYNC"
            task = await engine.persistence.claim_next_task("test-worker")
            done["pending-async"] = await engine.run_async_task(task)
            # A layaway waiting on its child sale: running it runs the child up to its approval.
            wf = await engine.run(ids["layaway-pending"])
            assert wf.status == "WAITING_CHILD_HUMAN_INPUT"
            for label in ("layaway-pending", "layaway-child-waiting"):
                await engine.resume(ids[f"{label}-child"], {"approver": "lee"})
                done[label] = await engine.get_workflow(ids[label])
            again = await engine.start_workflow(
                "Checkout", {"order_id": "x"}, idempotency_key="till-7:0012"
            )
            # The reference's idempotency key still holds here.
            assert str(again.id) == ids["waiting-human"]
            return done

    done = asyncio.run(drive())
    for label, wf in done.items():
        assert wf.status == "COMPLETED", (label, wf.error)
    assert done["waiting-human"].state.approved_by == "kim"
    assert done["waiting-human"].state.receipt == "R-waiting-human"
    assert done["pending-async"].state.refunded and done["pending-async"].state.charged
    for label in ("layaway-pending", "layaway-child-waiting"):
        sale = done[label].state.sub_workflow_results["Checkout"]
        assert sale["approved_by"] == "lee" and sale["receipt"] == f"R-{label}-sale"
        assert done[label].state.receipt == f"L-{label}"


def test_terminal_workflows_are_shipped_by_ruvon_sync_and_never_imported_again(
    old_db, device_app, tmp_path, capsys
):
    """`ruvon-sync once` delivers the imported finished workflows and their audit rows to the real receiver; importing again afterwards brings none of them back."""
    old, ids = old_db
    db = tmp_path / "edge.db"
    assert run_import(capsys, old, db, *device_app)[0] == 0
    finished = {i for label, i in ids.items() if label in TERMINAL or label.startswith("bulk-")}
    audit_of_finished = {
        r[0]
        for r in rows(
            db,
            f"SELECT audit_id FROM audit_log WHERE workflow_id IN ({', '.join('?' * len(finished))})",
            *finished,
        )
    }
    with Receiver(tmp_path) as rx:
        out = sync_cli("once", *cli_flags(db, rx.url, rx))
        assert out.returncode == 0, out.stderr
        received = {wid for wid, _ in rx.rows("workflows")}
        received_audit = {a for (a,) in rx.rows("audit_logs")}
    capsys.readouterr()  # the in-process receiver's own log lines
    assert received == finished
    assert audit_of_finished <= received_audit
    # In-flight ones stay, and so do synced failures (kept for retry, out of the backlog).
    left = {r[0] for r in rows(db, "SELECT id FROM workflows")}
    assert left == {ids[label] for label in IN_FLIGHT} | {
        ids[label] for label, status in TERMINAL.items() if status.startswith("FAILED")
    }
    assert rows(db, "SELECT COUNT(*) FROM workflows WHERE sync_seq IS NOT NULL") == [(0,)]
    code, report, _ = run_import(capsys, old, db, *device_app)
    assert code == 0 and report["imported_total"] == 0
    assert report["skipped_already_imported"] == report["workflows_in_file"]
    assert {r[0] for r in rows(db, "SELECT id FROM workflows")} == left


def test_a_second_run_imports_nothing_twice(old_db, device_app, tmp_path, capsys):
    """Running the import again adds no workflow, audit row, log line, metric or sync key."""
    old, _ = old_db
    db = tmp_path / "edge.db"
    tables = ("workflows", "audit_log", "execution_logs", "metrics", "edge_sync_state")

    def counts() -> list[int]:
        return [rows(db, f"SELECT COUNT(*) FROM {t}")[0][0] for t in tables]

    first = run_import(capsys, old, db, *device_app)
    after_first = counts()
    code, report, _ = run_import(capsys, old, db, *device_app)
    assert first[0] == code == 0
    assert counts() == after_first
    assert (
        report["imported_total"] == 0
        and report["skipped_already_imported"] == first[1]["imported_total"]
    )


def test_in_flight_workflows_without_a_definition_are_refused_and_imported_later(
    old_db, device_app, tmp_path, capsys
):
    """Without the Refund and Layaway definitions their in-flight workflows are refused with a reason (exit 1) while everything else is imported; a run with the definitions then imports just those."""
    old, ids = old_db
    db = tmp_path / "edge.db"
    only_checkout = [
        f if f != str(DEVICE_APP) else str(DEVICE_APP / "checkout.yaml") for f in device_app
    ]
    code, report, _ = run_import(capsys, old, db, *only_checkout)
    assert code == 1
    refused = {r["id"]: r["reason"] for r in report["refused"]}
    assert refused.keys() == {
        ids["pending-async"],
        ids["layaway-pending"],
        ids["layaway-child-waiting"],
    }
    assert "'Refund' is not registered" in refused[ids["pending-async"]]
    assert report["imported"]["FAILED_ROLLED_BACK"] == 1  # a finished Refund needs no definition
    code, report, _ = run_import(capsys, old, db, *device_app)
    assert code == 0
    assert report["imported"] == {
        "PENDING_ASYNC": 1,
        "PENDING_SUB_WORKFLOW": 1,
        "WAITING_CHILD_HUMAN_INPUT": 1,
    }


def test_a_workflow_whose_idempotency_key_is_taken_is_refused_alone(
    old_db, device_app, tmp_path, capsys
):
    """A sale already started here under the same idempotency key keeps it; the old one is refused, the rest of its batch imported."""
    old, ids = old_db
    db = tmp_path / "edge.db"
    registry = WorkflowRegistry(allowed_modules=["ruvon_sdk_device"])
    registry.register_directory(DEVICE_APP)

    async def start() -> str:
        async with WorkflowEngine(SQLitePersistenceProvider(db), registry) as engine:
            wf = await engine.start_workflow(
                "Checkout", {"order_id": "new"}, idempotency_key="till-7:0012"
            )
            return str(wf.id)

    existing = asyncio.run(start())
    code, report, _ = run_import(capsys, old, db, *device_app)
    assert code == 1
    assert [r["id"] for r in report["refused"]] == [ids["waiting-human"]]
    assert existing in report["refused"][0]["reason"]
    assert report["imported_total"] == report["workflows_in_file"] - 1


def _sqlite_with(path: Path, *statements: str) -> Path:
    with sqlite3.connect(path) as conn:
        for sql in statements:
            conn.execute(sql)
    return path


@pytest.mark.parametrize(
    "make, says",
    [
        (lambda p: (p.write_text("id,status\n1,COMPLETED\n"), p)[1], "not an SQLite file"),
        (lambda p: _sqlite_with(p, "CREATE TABLE t (x)"), "no workflow_executions table"),
        (
            lambda p: _sqlite_with(
                p,
                "CREATE TABLE workflow_executions (id TEXT, status TEXT)",
                "CREATE TABLE workflow_audit_log (audit_id TEXT)",
            ),
            "workflow_executions lacks",
        ),
        (
            lambda p: _sqlite_with(
                p,
                "CREATE TABLE workflow_executions (id TEXT)",
                "CREATE TABLE schema_migrations (version INTEGER)",
                "INSERT INTO schema_migrations VALUES (9)",
            ),
            "unknown ruvon-sdk schema version 9",
        ),
        (
            lambda p: _sqlite_with(
                p, "CREATE TABLE workflow_executions (id TEXT)", "PRAGMA user_version = 4"
            ),
            "user_version 4",
        ),
    ],
    ids=["text", "other-app", "missing-columns", "newer-migration", "user-version"],
)
def test_a_file_that_is_not_a_known_reference_database_is_refused_in_one_line(
    make, says, tmp_path, capsys
):
    """Exit 2, one line on stderr naming the file and why, no traceback, and no --db created."""
    old = make(tmp_path / "old.db")
    before = fingerprint(old)
    code, report, err = run_import(capsys, old, tmp_path / "edge.db")
    assert code == 2 and report == {}
    assert len(err.strip().splitlines()) == 1 and says in err and str(old) in err
    assert not (tmp_path / "edge.db").exists()
    assert fingerprint(old) == before


def test_our_own_database_is_refused_as_the_old_file(old_db, device_app, tmp_path, capsys):
    """Pointing the import at a Ruvon Edge database, or at --db itself, is refused in one line."""
    old, _ = old_db
    db = tmp_path / "edge.db"
    assert run_import(capsys, old, db, *device_app)[0] == 0
    code, _, err = run_import(capsys, db, tmp_path / "other.db")
    assert code == 2 and "it is a Ruvon Edge database" in err
    code, _, err = run_import(capsys, old, old, *device_app)
    assert code == 2 and "both the old database and --db" in err


def test_a_database_from_the_reference_migration_tool_with_step_indexes_imports(
    old_db, device_app, tmp_path, capsys
):
    """A file stamped by the reference's migration tool (schema_migrations 3) whose rows hold the step as an index imports, the index read through the row's own steps_config."""
    old, ids = old_db
    with sqlite3.connect(
        old
    ) as conn:  # this test's copy, shaped as the source tree's tool leaves it
        conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO schema_migrations VALUES (3, 'sqlite_fixed')")
        conn.execute(
            "UPDATE workflow_executions SET current_step = 1 WHERE id = ?", (ids["active-mid"],)
        )
    db = tmp_path / "edge.db"
    code, report, err = run_import(capsys, old, db, *device_app)
    assert code == 0, err
    assert rows(db, "SELECT current_step FROM workflows WHERE id = ?", ids["active-mid"]) == [
        ("Approve",)
    ]


def test_the_text_report_counts_each_status_and_never_shows_a_sync_state_value(
    old_db, device_app, tmp_path, capsys
):
    """Without --json the operator reads one line per status with its count and fate, and the old agent's api key is not printed."""
    old, _ = old_db
    code = cli.main(["import-ruvon-db", str(old), "--db", str(tmp_path / "edge.db"), *device_app])
    out = capsys.readouterr().out
    assert code == 0
    assert "PENDING_ASYNC" in out and "dispatched again" in out
    assert any(line.split()[:2] == ["COMPLETED", str(1 + BULK)] for line in out.splitlines())
    assert "refused: 0" in out and "sync state keys 2" in out
    assert "sk-device-secret" not in out


def test_writes_still_in_the_old_files_wal_are_imported_and_the_file_stays_unchanged(
    old_db, device_app, tmp_path, capsys
):
    """A device killed before its WAL was checkpointed: its last write, only in the -wal file, is imported, and neither the database file nor its -wal changes."""
    old, ids = old_db
    last_write = (
        "import os, sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "c.execute('PRAGMA wal_autocheckpoint = 0'); "
        "c.execute(\"UPDATE workflow_executions SET state = json_set(state, '$.order_id', 'late') "
        'WHERE id = ?", (sys.argv[2],)); c.commit(); os._exit(0)'
    )
    subprocess.run([sys.executable, "-c", last_write, str(old), ids["completed"]], check=True)
    wal = old.with_name(old.name + "-wal")
    before = fingerprint(old), fingerprint(wal)
    assert wal.stat().st_size > 0
    db = tmp_path / "edge.db"
    assert run_import(capsys, old, db, *device_app)[0] == 0
    (state,) = rows(db, "SELECT state FROM workflows WHERE id = ?", ids["completed"])[0]
    assert json.loads(state)["order_id"] == "late"
    assert (fingerprint(old), fingerprint(wal)) == before
