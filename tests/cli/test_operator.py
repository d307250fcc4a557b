"""What an operator does with ``ruvon-edge`` on a device: find, filter, inspect, cancel, resume (real subprocesses)."""

from __future__ import annotations

import json
import os
import re
import shlex
import sqlite3

from test_cli import CODE, FIXTURES, as_json, cli, one_line_error, run_review

import ruvon_edge

Z_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def run_order(tmp_path, fail: bool = False) -> dict:
    flag = tmp_path / "courier-down"
    if fail:
        flag.touch()
    result = cli(
        tmp_path, "run", str(FIXTURES / "order.yaml"), *CODE, "--json",
        env={"RUVON_TEST_FAIL_FLAG": str(flag)},
    )  # fmt: skip
    flag.unlink(missing_ok=True)
    assert result.returncode == (1 if fail else 0), result.stderr
    return json.loads(result.stdout)


def test_version_flag(tmp_path):
    """--version prints the program and the package version and exits 0."""
    result = cli(tmp_path, "--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"ruvon-edge {ruvon_edge.__version__}")


def test_cancel_needs_only_the_database(tmp_path):
    """cancel works with --db and an id prefix alone, where the workflow's code is not importable."""
    wf = run_review(tmp_path, order_id="X1")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    db = str(tmp_path / "ruvon_edge.db")
    result = cli(elsewhere, "cancel", wf["id"][:-4], "--db", db, "--json")
    assert result.returncode == 0, result.stderr
    cancelled = json.loads(result.stdout)
    assert (cancelled["id"], cancelled["status"]) == (wf["id"], "CANCELLED")
    assert cancelled == as_json(cli(elsewhere, "show", wf["id"], "--db", db, "--json"))
    assert "CANCELLED" in one_line_error(cli(elsewhere, "cancel", wf["id"], "--db", db))


def test_run_prints_the_row_exactly_as_stored_with_z_timestamps(tmp_path):
    """run --json equals show --json field for field; every timestamp has the one Z format."""
    ran = run_order(tmp_path)
    shown = as_json(cli(tmp_path, "show", ran["id"], "--json"))
    assert ran == shown
    for key in ("created_at", "updated_at", "completed_at"):
        assert Z_TIME.fullmatch(ran[key]), (key, ran[key])
    audit = as_json(cli(tmp_path, "show", ran["id"], "--audit", "--json"))["audit"]
    assert all(Z_TIME.fullmatch(a["recorded_at"]) for a in audit)


def test_unique_prefix_works_and_an_ambiguous_one_is_named(tmp_path):
    """show accepts a unique id prefix; an ambiguous one exits 2 with one line saying so."""
    a, b = run_order(tmp_path)["id"], run_order(tmp_path)["id"]
    common = os.path.commonprefix([a, b])
    assert as_json(cli(tmp_path, "show", a[: len(common) + 1], "--json"))["id"] == a
    line = one_line_error(cli(tmp_path, "show", common))
    assert "ambiguous" in line and a in line and b in line
    assert "no workflow id starts with" in one_line_error(cli(tmp_path, "show", "ffff"))


def test_list_several_statuses_a_time_window_and_the_total(tmp_path):
    """--status repeats (and FAILED* expands), --since/--until window on creation, the text ends with the total."""
    done, failed, waiting = (
        run_order(tmp_path),
        run_order(tmp_path, fail=True),
        run_review(tmp_path),
    )
    ids = lambda *a: [w["id"] for w in as_json(cli(tmp_path, "list", "--json", *a))]  # noqa: E731
    assert ids("--status", "COMPLETED", "--status", "waiting_human") == [waiting["id"], done["id"]]
    assert ids("--status", "FAILED*") == [failed["id"]]
    assert ids("--status", "completed,failed") == [failed["id"], done["id"]]
    assert ids("--since", failed["created_at"], "--until", waiting["created_at"]) == [failed["id"]]
    assert ids("--since", "1h") == [waiting["id"], failed["id"], done["id"]]
    assert ids("--until", "2000-01-01") == []
    text = cli(tmp_path, "list", "--limit", "2").stdout.splitlines()
    assert len(text) == 4 and text[-1] == "1-2 of 3 workflow(s)"
    assert "--status BOGUS" in one_line_error(cli(tmp_path, "list", "--status", "bogus"))
    assert "--since" in one_line_error(cli(tmp_path, "list", "--since", "yesterday"))


def test_show_audit_gives_each_rows_error_and_duration(tmp_path):
    """The failed step's audit row carries the error and its duration; completed steps their duration."""
    wf = run_order(tmp_path, fail=True)
    audit = as_json(cli(tmp_path, "show", wf["id"], "--audit", "--json"))["audit"]
    by_event = {a["event_type"]: a for a in audit}
    assert "courier unreachable" in by_event["STEP_FAILED"]["details"]["error"]
    assert by_event["STEP_FAILED"]["details"]["duration_ms"] >= 0
    assert by_event["STEP_COMPLETED"]["details"]["duration_ms"] >= 0
    text = cli(tmp_path, "show", wf["id"][:30], "--audit").stdout
    header = next(line for line in text.splitlines() if line.startswith("RECORDED_AT"))
    assert header.split() == ["RECORDED_AT", "EVENT", "STEP", "STATUS", "DURATION_MS", "ERROR"]
    failed_line = next(line for line in text.splitlines() if "STEP_FAILED" in line)
    assert "courier unreachable" in failed_line


def test_waiting_run_says_what_input_and_how_to_resume(tmp_path):
    """A run that ends WAITING_HUMAN names the input fields and a resume command that works once filled in."""
    result = cli(
        tmp_path, "run", str(FIXTURES / "review.yaml"), *CODE, "--data", '{"order_id": "H1"}'
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert (
        "waiting for input at step 'Review' (ReviewInput): approved: bool, reviewer: str" in lines
    )
    command = next(line for line in lines if line.startswith("resume with: "))
    argv = shlex.split(command.removeprefix("resume with: "))
    assert argv[:2] == ["ruvon-edge", "resume"] and argv[3:5] == [
        "--input",
        '{"approved": false, "reviewer": ""}',
    ]
    argv[4] = '{"approved": true, "reviewer": "kim"}'
    resumed = cli(tmp_path, *argv[1:], "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "COMPLETED"

    wanted = run_review(tmp_path, order_id="H2")["input_wanted"]
    assert wanted["fields"] == {"approved": {"type": "bool", "required": True},
                                "reviewer": {"type": "str", "required": True}}  # fmt: skip
    assert wanted["unknown_fields"] == "ignored"


def test_resume_refuses_unknown_fields_when_the_model_forbids_them(tmp_path):
    """extra=forbid: an unknown field exits 2 naming it and changes nothing; extra=ignore: a warning, then it runs."""
    run = cli(tmp_path, "run", str(FIXTURES / "strict_review.yaml"), *CODE, "--json")
    strict = json.loads(run.stdout)
    assert strict["input_wanted"]["unknown_fields"] == "refused"
    bad = '{"approved": true, "reviewer": "kim", "aproved": true}'
    line = one_line_error(cli(tmp_path, "resume", strict["id"], *CODE, "--input", bad))
    assert "aproved" in line
    assert as_json(cli(tmp_path, "show", strict["id"], "--json"))["version"] == strict["version"]

    lenient = run_review(tmp_path)
    result = cli(tmp_path, "resume", lenient["id"], *CODE, "--input", bad, "--json")
    assert result.returncode == 0, result.stderr
    assert (
        result.stderr.strip() == "ruvon-edge: warning: ReviewInput has no field 'aproved': ignored"
    )
    assert json.loads(result.stdout)["status"] == "COMPLETED"


def test_list_reads_rows_the_engine_wrote_with_the_old_offset_format(tmp_path):
    """A row stored before the Z format (``+00:00``) is still listed and shown as stored."""
    wf = run_order(tmp_path)
    with sqlite3.connect(tmp_path / "ruvon_edge.db") as conn:
        conn.execute(
            "UPDATE workflows SET created_at = '2026-01-02T03:04:05.000006+00:00' WHERE id = ?",
            (wf["id"],),
        )
    shown = as_json(cli(tmp_path, "show", wf["id"], "--json"))
    assert shown["created_at"] == "2026-01-02T03:04:05.000006+00:00"
    assert [w["id"] for w in as_json(cli(tmp_path, "list", "--until", "2026-01-03", "--json"))] == [
        wf["id"]
    ]
