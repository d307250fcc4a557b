"""The threads sync step functions run on, off the event loop.

A hop here is a queue put and one ``call_soon_threadsafe`` back: measured
~45 us against ~100 us through ``loop.run_in_executor`` (which wraps a
``concurrent.futures.Future`` in an asyncio one). A step costs one such hop.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Callable
from typing import Any


class _StepThreads:
    """Process-wide daemon threads for sync step functions, started as needed up to ``max_threads``.

    Like the default executor, a thread that finds no idle peer starts another;
    threads never retire (idle ones cost a blocked ``get``), and a forked child
    starts from none.
    """

    def __init__(self, max_threads: int) -> None:
        self._max = max_threads
        self._lock = threading.Lock()
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._count = 0

    async def run(self, call: Callable[[], Any]) -> Any:
        """Run ``call()`` on a step thread; a caller that stops waiting (timeout) leaves it running."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put((loop, future, call))
        if not self._idle.acquire(blocking=False):
            with self._lock:
                if self._count < self._max:
                    self._count += 1
                    threading.Thread(
                        target=self._work, name=f"ruvon-step-{self._count}", daemon=True
                    ).start()
        return await future

    def _work(self) -> None:
        jobs, idle = self._jobs, self._idle
        while True:
            loop, future, call = jobs.get()
            try:
                outcome = (True, call())
            except StopIteration as exc:  # a future refuses StopIteration, as in a coroutine
                outcome = (False, RuntimeError(f"step function raised StopIteration: {exc}"))
            except BaseException as exc:  # handed to the awaiting coroutine
                outcome = (False, exc)
            try:
                loop.call_soon_threadsafe(_settle, future, outcome)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass
            del loop, future, call, outcome
            idle.release()


def _settle(future: asyncio.Future, outcome: tuple[bool, Any]) -> None:
    if future.done():  # the caller timed out or was cancelled
        return
    if outcome[0]:
        future.set_result(outcome[1])
    else:
        future.set_exception(outcome[1])


STEP_THREADS = _StepThreads(min(32, (os.cpu_count() or 1) + 4))
