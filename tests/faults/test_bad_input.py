"""Values a scanner or a caller can produce that must never reach the store half-usable: refused or kept exactly."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from device import CODE, YAML, edge, one_line, payments_engine
from sync.harness import Receiver, cli_flags, sync_cli

from ruvon_edge.engine.storable import MAX_DEPTH
from ruvon_edge.errors import InvalidInputError, UnstorableValueError

REVIEW = Path(__file__).parents[1] / "cli" / "fixtures"
REVIEW_CODE = ["--module-path", str(REVIEW), "--allow-module", "cli_steps"]


def rows(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, status, state FROM workflows").fetchall()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            '{"note": "\\ud800"}',
            "ruvon-edge: error: initial data: note: a lone surrogate (U+D800) at character 0 has no UTF-8 form and cannot be stored",
        ),
        (
            '{"amount": NaN}',
            "ruvon-edge: error: --data: invalid JSON: NaN is not standard JSON (use null or a string)",
        ),
        (
            '{"amount": -Infinity}',
            "ruvon-edge: error: --data: invalid JSON: -Infinity is not standard JSON (use null or a string)",
        ),
        (
            '{"note": ' + "[" * 100_000 + "]" * 100_000 + "}",
            "ruvon-edge: error: --data: invalid JSON: nested too deeply",
        ),
    ],
    ids=["lone-surrogate", "nan", "infinity", "nested-100k"],
)
def test_run_refuses_unstorable_data_with_exit_2_and_writes_nothing(tmp_path, data, expected):
    """run --data with a lone surrogate, NaN, Infinity or 100k-deep nesting: exit 2, one line saying what and where, no row."""
    db = tmp_path / "edge.db"
    if len(data) > 1000:  # beyond one argv string's limit: the documented @FILE form
        (tmp_path / "data.json").write_text(data)
        data = f"@{tmp_path / 'data.json'}"
    assert one_line(edge("run", str(YAML), *CODE, "--db", str(db), "--data", data), 2) == expected
    assert rows(db) == []


def test_resume_refuses_a_lone_surrogate_and_the_workflow_still_waits(tmp_path):
    """resume --input with a lone surrogate: exit 2, one line; the workflow is still WAITING_HUMAN at its step."""
    db = tmp_path / "edge.db"
    ran = edge("run", str(REVIEW / "review.yaml"), *REVIEW_CODE, "--db", str(db), "--json")
    wid = json.loads(ran.stdout)["id"]
    bad = '{"approved": true, "reviewer": "ok\\udfff"}'
    line = one_line(edge("resume", wid, *REVIEW_CODE, "--db", str(db), "--input", bad), 2)
    assert line == (
        "ruvon-edge: error: input: reviewer: a lone surrogate (U+DFFF) at character 2 has no UTF-8 form "
        "and cannot be stored"
    )
    [(_, status, _)] = rows(db)
    assert status == "WAITING_HUMAN"
    good = edge(
        "resume",
        wid,
        *REVIEW_CODE,
        "--db",
        str(db),
        "--json",
        "--input",
        '{"approved": true, "reviewer": "ann"}',
    )
    assert json.loads(good.stdout)["status"] == "COMPLETED", good.stderr


async def test_the_engine_refuses_what_it_cannot_store(tmp_path):
    """start_workflow raises a typed one-line error for infinity, too-deep nesting, a surrogate key; nothing is stored."""
    deep: dict = {}
    node = deep
    for _ in range(MAX_DEPTH):
        node["x"] = {}
        node = node["x"]
    async with payments_engine(tmp_path / "edge.db") as engine:
        with pytest.raises(
            UnstorableValueError, match=r"^initial data: amount: inf is not valid JSON"
        ):
            await engine.start_workflow("Payment", {"amount": float("inf")})
        with pytest.raises(InvalidInputError, match=f"nested deeper than {MAX_DEPTH} levels"):
            await engine.start_workflow("Payment", {"note": "n", "extra": deep})
        with pytest.raises(UnstorableValueError, match="^idempotency key: value: a lone surrogate"):
            await engine.start_workflow("Payment", {}, idempotency_key="k\ud83d")
        assert await engine.list_workflows() == []


async def test_nul_is_stored_escaped_and_synced_exactly(tmp_path):
    """U+0000 in state is kept as the JSON escape (no raw NUL byte), reads back and reaches the receiver exactly."""
    db = tmp_path / "edge.db"
    async with payments_engine(db) as engine:
        wf = await engine.run((await engine.start_workflow("Payment", {"note": "a\x00b"})).id)
        assert (wf.status, wf.state.note) == ("COMPLETED", "a\x00b")
    [(wid, _, text)] = rows(db)
    assert "\\u0000" in text and "\x00" not in text
    with Receiver(tmp_path) as rx:
        synced = sync_cli("once", *cli_flags(db, rx.url, rx))
        assert synced.returncode == 0, synced.stderr
        with sqlite3.connect(rx.db) as conn:
            [(state,)] = conn.execute("SELECT state FROM workflows WHERE id = ?", (wid,)).fetchall()
    assert json.loads(state)["note"] == "a\x00b"
    assert rows(db) == []
