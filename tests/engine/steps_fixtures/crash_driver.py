"""Crash-test driver: start one workflow on a SQLite file, print its id, run it (until killed).

Run as ``python -m steps_fixtures.crash_driver DB_PATH WORKFLOW_TYPE DATA_JSON`` with
``tests/engine`` on ``sys.path``; ``RUVON_TEST_HANG_AT`` makes one item/iteration block.
"""

from __future__ import annotations

import asyncio
import json
import sys

from ruvon_edge import WorkflowEngine
from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider

from .harness import registry_of

DEFINITIONS = (
    """
workflow_type: KillParallel
steps:
  - name: Fan
    type: PARALLEL
    iterate_over: state.items
    task_function: steps_fixtures.steps.double
    batch_size: 2
    merge_strategy: APPEND
  - name: After
    function: steps_fixtures.steps.parent_done
""",
    """
workflow_type: KillLoop
steps:
  - name: Sum
    type: LOOP
    mode: ITERATE
    iterate_over: state.items
    function: steps_fixtures.steps.add_item
  - name: After
    function: steps_fixtures.steps.parent_done
""",
)


async def main(db_path: str, workflow_type: str, data: str) -> None:
    async with WorkflowEngine(
        SQLitePersistenceProvider(db_path), registry_of(*DEFINITIONS)
    ) as engine:
        wf = await engine.start_workflow(workflow_type, json.loads(data))
        print(wf.id, flush=True)
        await engine.run(wf.id)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
