"""Hostile YAML through ``ruvon-edge validate`` (issue 8, Low): one clear line and exit 2, never an internal error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

_SCRIPT = Path(sys.executable).with_name("ruvon-edge")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "ruvon_edge.cli"]

CASES = {
    "duplicate_key": (
        "workflow_type: A\nsteps:\n  - {name: S, function: m.f}\nworkflow_type: B\n",
        "duplicate key 'workflow_type' (first at line 1)",
    ),
    "huge_integer": (
        "workflow_type: A\nsteps:\n  - {name: S, function: m.f, timeout_seconds: "
        + "7" * 6000
        + "}\n",
        "a number has too many digits",
    ),
    "deep_nesting": ("workflow_type: A\nsteps: " + "[" * 50000 + "\n", "invalid YAML"),
    "misspelt_keys": (
        "workflow_type: A\nsteps:\n  - {name: S, fucntion: m.f}\n  - {name: T, function: m.f, automate_nxet: true}\n",
        "steps[0].fucntion: unknown key (did you mean 'function'?); steps[1].automate_nxet",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_validate_refuses_hostile_yaml_in_one_line(tmp_path, case):
    """Duplicate keys, a 6000-digit integer, 50k-deep nesting and typos: exit 2, one line naming the problem."""
    text, expected = CASES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RUVON_")}
    result = subprocess.run(
        [*COMMAND, "validate", str(path)],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert str(path) in lines[0] and expected in lines[0]
