"""A workflow whose every step leaves a marker line, run by a child process that the tests kill -9."""

from __future__ import annotations

import asyncio
import os
import sys

from pydantic import BaseModel, Field

STEPS = ["s1", "s2", "s3", "s4", "s5"]

DEFINITION = {
    "workflow_type": "Crashy",
    "initial_state_model_path": "crash_app.CrashState",
    "steps": [{"name": s, "function": f"crash_app.{s}"} for s in STEPS],
}


class CrashState(BaseModel):
    trail: list[str] = Field(default_factory=list)
    payload: str = ""


def _step(name: str):
    def step(state: CrashState, context) -> dict:
        fd = os.open(os.environ["CRASH_MARKERS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{context.workflow_id} {name}\n".encode())
        finally:
            os.close(fd)
        print(f"step {name}", flush=True)  # the event the killing test counts
        return {"trail": [*state.trail, name], "payload": state.payload + name * 50}

    step.__name__ = name
    return step


s1, s2, s3, s4, s5 = (_step(n) for n in STEPS)


async def main(db: str) -> None:
    from ruvon_edge import WorkflowEngine, WorkflowRegistry
    from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider

    registry = WorkflowRegistry(allowed_modules=["crash_app"])
    registry.register(DEFINITION)
    async with WorkflowEngine(
        persistence=SQLitePersistenceProvider(db), registry=registry
    ) as engine:
        for wf in await engine.list_workflows(status="ACTIVE", limit=1000):
            await engine.run(wf.id)
        print("ready", flush=True)
        while True:
            wf = await engine.start_workflow("Crashy", {})
            await engine.run(wf.id)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
