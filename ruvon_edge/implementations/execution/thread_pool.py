"""``ThreadPoolExecutionProvider``: PARALLEL tasks really run at the same time, in a bounded pool."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from ruvon_edge.implementations.execution._local import LocalExecutionProvider
from ruvon_edge.providers.execution import ExecutionContext


class ThreadPoolExecutionProvider(LocalExecutionProvider):
    """Sync step functions and tasks run in a pool of ``max_workers`` threads."""

    executor: ThreadPoolExecutor

    def __init__(self, max_workers: int = 8) -> None:
        self.max_workers = max_workers
        self.executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="ruvon-step")

    async def dispatch_parallel_tasks(
        self,
        workflow_id,
        tasks: list[dict],
        state,
        execution_context: ExecutionContext | None = None,
    ) -> list[dict]:
        return list(
            await asyncio.gather(*(self.run_task(t, state, execution_context) for t in tasks))
        )

    async def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
