"""One damaged row (a JSON column that no longer decodes) is named, and never hides or blocks the others."""

from __future__ import annotations

import json
import sqlite3

import pytest
from device import CODE, YAML, edge, one_line

from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon_edge.providers.persistence import CorruptRecordError


def three_payments(db) -> list[str]:
    ids = []
    for amount in (1, 2, 3):
        ran = edge(
            "run",
            str(YAML),
            *CODE,
            "--db",
            str(db),
            "--json",
            "--data",
            json.dumps({"amount": amount}),
        )
        ids.append(json.loads(ran.stdout)["id"])
    return ids


def damage(db, wid: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute('UPDATE workflows SET state = \'{"amount": 2, "no\' WHERE id = ?', (wid,))


def test_list_names_the_damaged_row_and_lists_the_rest(tmp_path):
    """list exits 0 with every row, the damaged one flagged; one warning line on stderr names it and its column."""
    db = tmp_path / "edge.db"
    good1, bad, good2 = three_payments(db)
    damage(db, bad)
    listed = edge("list", "--db", str(db), "--json")
    assert listed.returncode == 0, listed.stderr
    docs = {d["id"]: d for d in json.loads(listed.stdout)}
    assert set(docs) == {good1, bad, good2}
    assert docs[good1]["state"]["amount"] == 1 and docs[good2]["status"] == "COMPLETED"
    assert docs[bad]["status"] == "COMPLETED" and docs[bad]["state"] is None
    assert docs[bad]["unreadable"].startswith("stored state is not valid JSON (")
    assert listed.stderr.splitlines() == [
        f"ruvon-edge: warning: workflow {bad}: {docs[bad]['unreadable']}"
    ]


async def test_show_of_the_damaged_row_fails_in_one_line_naming_it(tmp_path):
    """show of the damaged workflow exits 1 with one line naming it and the column; the store raises CorruptRecordError."""
    db = tmp_path / "edge.db"
    _, bad, good = three_payments(db)
    damage(db, bad)
    line = one_line(edge("show", bad, "--db", str(db)), 1)
    assert line.startswith(f"ruvon-edge: error: workflow {bad}: stored state is not valid JSON (")
    assert edge("show", good, "--db", str(db)).returncode == 0
    async with SQLitePersistenceProvider(db, read_only=True) as store:
        with pytest.raises(CorruptRecordError) as err:
            await store.load_workflow(bad)
        assert (err.value.workflow_id, err.value.column) == (bad, "state")
