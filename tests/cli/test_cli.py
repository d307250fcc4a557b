"""The ``ruvon-edge`` command, run as a real subprocess against real SQLite files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
_SCRIPT = Path(sys.executable).with_name("ruvon-edge")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "ruvon_edge.cli"]
CODE = ["--module-path", str(FIXTURES), "--allow-module", "cli_steps"]


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``ruvon-edge`` in ``cwd`` with no inherited RUVON_* settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RUVON_")}
    return subprocess.run(
        [*COMMAND, *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def as_json(result: subprocess.CompletedProcess) -> object:
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def one_line_error(result: subprocess.CompletedProcess, code: int = 2) -> str:
    """Assert a user error: the exit code, one stderr line, no traceback; return the line."""
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ruvon-edge: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def run_review(tmp_path: Path, **data: object) -> dict:
    result = cli(
        tmp_path, "run", str(FIXTURES / "review.yaml"), *CODE, "--json", "--data", json.dumps(data)
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_validate_accepts_a_good_file(tmp_path):
    """validate exits 0 and names the workflow type, version and steps."""
    result = cli(tmp_path, "validate", str(FIXTURES / "review.yaml"), *CODE, "--json")
    assert result.returncode == 0, result.stderr
    assert as_json(result) == {
        "valid": True,
        "file": str(FIXTURES / "review.yaml"),
        "workflow_type": "ReviewedOrder",
        "workflow_version": "2",
        "steps": ["Reserve", "Review", "Ship"],
    }


def test_validate_refuses_malformed_yaml_in_one_line(tmp_path):
    """Malformed YAML exits 2 with one line naming the file and the position."""
    path = FIXTURES / "bad_syntax.yaml"
    line = one_line_error(cli(tmp_path, "validate", str(path), *CODE))
    assert str(path) in line and "invalid YAML" in line and "line 2" in line


def test_validate_names_the_path_of_a_bad_route(tmp_path):
    """A route to an unknown step exits 2 with the definition path of the problem."""
    line = one_line_error(cli(tmp_path, "validate", str(FIXTURES / "bad_route.yaml"), *CODE))
    assert "steps[0].routes[0]" in line and "'Shpi'" in line


def test_validate_refuses_code_outside_allowed_modules(tmp_path):
    """Without --allow-module the step callables are refused (exit 2)."""
    line = one_line_error(
        cli(tmp_path, "validate", str(FIXTURES / "order.yaml"), "--module-path", str(FIXTURES))
    )
    assert "outside allowed_modules" in line


@pytest.mark.parametrize(
    "args",
    [("list", "--bogus"), ("show",), ("frobnicate",), ("list", "--limit", "many")],
    ids=["unknown-flag", "missing-id", "unknown-verb", "bad-int"],
)
def test_bad_usage_exits_2_in_one_line(tmp_path, args):
    """argparse errors exit 2 with a single line on stderr."""
    one_line_error(cli(tmp_path, *args))


def test_run_completes_and_prints_the_workflow_as_json(tmp_path):
    """run registers the file, runs the workflow to COMPLETED and prints it as one JSON document."""
    result = cli(
        tmp_path,
        "run",
        str(FIXTURES / "order.yaml"),
        *CODE,
        "--json",
        "--data",
        '{"order_id": "A1", "amount": 5}',
    )
    assert result.returncode == 0, result.stderr
    wf = json.loads(result.stdout)
    assert wf["status"] == "COMPLETED" and wf["workflow_type"] == "Order"
    assert wf["state"] == {
        "order_id": "A1",
        "amount": 5.0,
        "reserved": True,
        "approved": None,
        "shipped": True,
    }
    assert (tmp_path / "ruvon_edge.db").exists()
    shown = as_json(cli(tmp_path, "show", wf["id"], "--json"))
    assert shown["status"] == "COMPLETED" and shown["state"]["shipped"] is True


def test_run_refuses_bad_json_with_its_position(tmp_path):
    """Bad JSON in --data exits 2, says where, and starts nothing."""
    line = one_line_error(
        cli(tmp_path, "run", str(FIXTURES / "order.yaml"), *CODE, "--data", '{"order_id": "A1",')
    )
    assert "--data: invalid JSON" in line and "line 1 column 19" in line
    assert not (tmp_path / "ruvon_edge.db").exists()


def test_run_refuses_data_that_does_not_fit_the_state_model(tmp_path):
    """Initial data the state model rejects exits 2 with the field named."""
    line = one_line_error(
        cli(tmp_path, "run", str(FIXTURES / "order.yaml"), *CODE, "--data", '{"amount": "lots"}')
    )
    assert "amount" in line


def test_human_step_waits_refuses_bad_input_then_completes(tmp_path):
    """A HUMAN_IN_LOOP step waits; bad input exits 2 and changes nothing; good input completes it."""
    wf = run_review(tmp_path, order_id="B7", amount=80)
    assert (wf["status"], wf["current_step"]) == ("WAITING_HUMAN", "Review")

    line = one_line_error(
        cli(tmp_path, "resume", wf["id"], *CODE, "--input", '{"approved": "perhaps"}')
    )
    assert "approved" in line and "reviewer" in line
    still = as_json(cli(tmp_path, "show", wf["id"], "--json"))
    assert (still["status"], still["current_step"], still["version"]) == (
        "WAITING_HUMAN",
        "Review",
        wf["version"],
    )

    done = cli(
        tmp_path,
        "resume",
        wf["id"],
        *CODE,
        "--json",
        "--input",
        '{"approved": true, "reviewer": "kim"}',
    )
    assert done.returncode == 0, done.stderr
    final = json.loads(done.stdout)
    assert final["status"] == "COMPLETED" and final["state"]["approved"] is True


def test_list_filters_by_status_and_type(tmp_path):
    """list filters by status and type, honours --limit, and prints a table for humans."""
    waiting = run_review(tmp_path, order_id="W1")
    for i in range(2):
        assert (
            cli(
                tmp_path,
                "run",
                str(FIXTURES / "order.yaml"),
                *CODE,
                "--data",
                f'{{"order_id": "C{i}"}}',
            ).returncode
            == 0
        )

    assert [
        w["id"] for w in as_json(cli(tmp_path, "list", "--status", "waiting_human", "--json"))
    ] == [waiting["id"]]
    orders = as_json(cli(tmp_path, "list", "--type", "Order", "--json"))
    assert len(orders) == 2 and {w["status"] for w in orders} == {"COMPLETED"}
    assert len(as_json(cli(tmp_path, "list", "--limit", "1", "--json"))) == 1
    table = cli(tmp_path, "list").stdout.splitlines()
    assert table[0].split() == ["ID", "TYPE", "STATUS", "STEP", "UPDATED"] and len(table) == 5
    assert table[-1] == "1-3 of 3 workflow(s)"
    assert cli(tmp_path, "list", "--type", "Nothing").stdout.strip() == "no workflows"


def test_show_audit_lists_the_trail(tmp_path):
    """show --audit adds every audit row, oldest first, as JSON and as a table."""
    wf = run_review(tmp_path, order_id="A9")
    shown = as_json(cli(tmp_path, "show", wf["id"], "--audit", "--json"))
    events = [a["event_type"] for a in shown["audit"]]
    assert events[0] == "WORKFLOW_STARTED" and shown["audit"][-1]["new_status"] == "WAITING_HUMAN"
    text = cli(tmp_path, "show", wf["id"], "--audit").stdout
    assert (
        "status:       WAITING_HUMAN" in text
        and "RECORDED_AT" in text
        and "WORKFLOW_STARTED" in text
    )


def test_show_unknown_or_malformed_id_exits_2(tmp_path):
    """An unknown workflow id or a non-UUID exits 2 with one line."""
    run_review(tmp_path)
    assert "not found" in one_line_error(
        cli(tmp_path, "show", "01a212e8-446a-7385-a275-9b6a959de586")
    )
    assert "invalid workflow id" in one_line_error(cli(tmp_path, "show", "nope"))


def test_inspecting_a_missing_or_foreign_database_exits_2(tmp_path):
    """list on a missing file or a non-SQLite file exits 2 and creates nothing."""
    assert "no such database" in one_line_error(cli(tmp_path, "list", "--db", "absent.db"))
    assert not (tmp_path / "absent.db").exists()
    (tmp_path / "notes.txt").write_text("not a database")
    assert "not a SQLite database" in one_line_error(cli(tmp_path, "list", "--db", "notes.txt"))


def test_cancel_a_waiting_workflow(tmp_path):
    """cancel moves a waiting workflow to CANCELLED; cancelling it again exits 2."""
    wf = run_review(tmp_path)
    result = cli(tmp_path, "cancel", wf["id"], *CODE, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "CANCELLED"
    assert "CANCELLED" in one_line_error(cli(tmp_path, "cancel", wf["id"], *CODE))


def test_retry_runs_a_failed_workflow_to_completion(tmp_path):
    """A failed run exits 1; once the cause is gone, retry completes it from the failed step (exit 0)."""
    flag = tmp_path / "courier-down"
    flag.touch()
    env = {"RUVON_TEST_FAIL_FLAG": str(flag)}
    failed = cli(tmp_path, "run", str(FIXTURES / "order.yaml"), *CODE, "--json", env=env)
    assert failed.returncode == 1, failed.stderr
    wf = json.loads(failed.stdout)
    assert (
        wf["status"] == "FAILED"
        and wf["current_step"] == "Ship"
        and "courier unreachable" in wf["error"]
    )

    flag.unlink()
    retried = cli(tmp_path, "retry", wf["id"], *CODE, "--json", env=env)
    assert retried.returncode == 0, retried.stderr
    final = json.loads(retried.stdout)
    assert final["status"] == "COMPLETED" and final["state"]["shipped"] is True


def test_settings_precedence_flags_over_env_over_toml(tmp_path):
    """A flag beats $RUVON_*, which beats the --config TOML, which beats the default."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "edge.toml").write_text(
        f'db = "toml.db"\nallow_modules = ["cli_steps"]\nmodule_path = ["{FIXTURES}"]\n'
        f'definitions = ["{FIXTURES / "order.yaml"}"]\n'
    )
    config = ["--config", str(conf / "edge.toml")]
    review = str(FIXTURES / "review.yaml")

    assert cli(tmp_path, "run", review, *config).returncode == 0  # TOML only: relative to the file
    assert (conf / "toml.db").exists() and not (tmp_path / "ruvon_edge.db").exists()
    env = {"RUVON_DB": str(tmp_path / "env.db")}
    assert cli(tmp_path, "run", review, *config, env=env).returncode == 0
    assert cli(tmp_path, "run", review, *config, "--db", "flag.db", env=env).returncode == 0

    counts = {name: len(as_json(cli(tmp_path, "list", "--json", "--db", str(path))))
              for name, path in [("toml", conf / "toml.db"), ("env", tmp_path / "env.db"), ("flag", tmp_path / "flag.db")]}  # fmt: skip
    assert counts == {"toml": 1, "env": 1, "flag": 1}

    # An env list replaces the TOML one: with a bogus module allowed instead, the file is refused.
    line = one_line_error(
        cli(tmp_path, "validate", review, *config, env={"RUVON_ALLOW_MODULES": "elsewhere,other"})
    )
    assert "outside allowed_modules ['elsewhere', 'other']" in line


def test_env_alone_configures_code_and_definitions(tmp_path):
    """RUVON_MODULE_PATH, RUVON_ALLOW_MODULES and RUVON_DEFINITIONS work without any flag."""
    env = {
        "RUVON_MODULE_PATH": str(FIXTURES),
        "RUVON_ALLOW_MODULES": "cli_steps",
        "RUVON_DEFINITIONS": os.pathsep.join(
            [str(FIXTURES / "order.yaml"), str(FIXTURES / "review.yaml")]
        ),
        "RUVON_DB": str(tmp_path / "edge.db"),
    }
    assert cli(tmp_path, "run", str(FIXTURES / "order.yaml"), env=env).returncode == 0
    assert len(as_json(cli(tmp_path, "list", "--json", env=env))) == 1


def test_bad_config_file_exits_2(tmp_path):
    """An unknown key or invalid TOML in --config exits 2 naming the file."""
    (tmp_path / "bad.toml").write_text('dbb = "x.db"\n')
    assert "unknown key 'dbb'" in one_line_error(cli(tmp_path, "list", "--config", "bad.toml"))
    (tmp_path / "broken.toml").write_text("db = \n")
    assert "invalid TOML" in one_line_error(cli(tmp_path, "list", "--config", "broken.toml"))
