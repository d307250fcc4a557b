"""The library logs through stdlib ``logging`` only: an application decides whether anything is printed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"

APP = textwrap.dedent(
    """
    import asyncio, logging, sys
    sys.path.insert(0, {fixtures!r})
    {configure}
    from ruvon_edge import WorkflowEngine, WorkflowRegistry
    from ruvon_edge.implementations.observability.logging import LoggingObserver
    from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider
    from ruvon_edge.providers.observer import WorkflowObserver

    class Broken(WorkflowObserver):
        async def on_workflow_started(self, workflow_id, workflow_type):
            raise RuntimeError("observer down")

    async def main():
        registry = WorkflowRegistry(allowed_modules=["cli_steps"])
        registry.register_file({order!r})
        for observer in (LoggingObserver(), Broken()):
            async with WorkflowEngine(SQLitePersistenceProvider({db!r}), registry, observer=observer) as engine:
                ok = await engine.run((await engine.start_workflow("Order", {{}})).id)
                open({flag!r}, "w").close()
                bad = await engine.run((await engine.start_workflow("Order", {{}})).id)
                __import__("os").remove({flag!r})
                assert (ok.status, bad.status) == ("COMPLETED", "FAILED"), (ok.status, bad.status)

    asyncio.run(main())
    """
)


def run_app(tmp_path: Path, configure: str = "") -> subprocess.CompletedProcess:
    flag = tmp_path / "courier-down"
    script = tmp_path / "app.py"
    script.write_text(
        APP.format(
            fixtures=str(FIXTURES),
            configure=configure,
            order=str(FIXTURES / "order.yaml"),
            db=str(tmp_path / "app.db"),
            flag=str(flag),
        )  # fmt: skip
    )
    env = {**os.environ, "RUVON_TEST_FAIL_FLAG": str(flag)}
    return subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )


def test_an_app_that_configures_no_logging_sees_nothing(tmp_path):
    """Completed and failed workflows, LoggingObserver and a raising observer print nothing at all."""
    result = run_app(tmp_path)
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")


def test_an_app_that_configures_logging_gets_the_events_where_it_asked(tmp_path):
    """With basicConfig on stderr, the failure, the observer events and the broken observer show up there only."""
    result = run_app(
        tmp_path,
        "logging.basicConfig(stream=sys.stderr, level=logging.INFO, "
        "format='%(name)s %(levelname)s %(message)s')",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert "ruvon_edge.engine.runner WARNING workflow_failed" in lines
    assert "ruvon_edge.workflow INFO workflow_completed" in lines
    assert "ruvon_edge.workflow WARNING workflow_failed" in lines
    assert "ruvon_edge.engine.core WARNING observer_failed" in lines
