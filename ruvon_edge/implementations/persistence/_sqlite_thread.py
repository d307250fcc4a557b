"""One thread that owns one sqlite3 connection and runs whole transactions on it.

Why a thread of our own: a sqlite3 connection must stay on one thread, and
each hop between the event loop and a thread costs tens of microseconds.
aiosqlite hops once per execute, fetch and commit, so a step transition of
five statements costs six or more hops there; here a job is one Python
function that runs the whole transaction, so it costs one hop (see the
figures in ``sqlite.py``).

Group commit: when several write jobs are queued at once, the thread runs
them in one ``BEGIN IMMEDIATE`` ... ``COMMIT``. A job that raises one of our
own errors (a version conflict, a duplicate key) is dropped with that error
and the transaction is rolled back and rerun without it, so every other job
sees the state it would have seen had the failed one never been queued (the
effect of a SAVEPOINT per job, without its cost: SAVEPOINT/RELEASE around each
job measured ~60 us per job here, and conflicts are rare). An SQLite error
inside a group (disk full, I/O) may have undone the whole transaction, so the
group is rolled back and each job is retried alone: one job's failure never
costs another its write. No future resolves before COMMIT has returned, so no
caller hears "done" before its data is committed. Jobs must therefore be pure
database work: a job may run more than once before its transaction commits.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

Translate = Callable[[BaseException], BaseException]


class _Job:
    __slots__ = ("fn", "args", "write", "loop", "future")

    def __init__(self, fn: Callable[..., Any], args: tuple, write: bool, loop, future) -> None:
        self.fn = fn
        self.args = args
        self.write = write
        self.loop = loop
        self.future = future


def _settle(outcomes: list[tuple[asyncio.Future, bool, Any]]) -> None:
    for future, ok, value in outcomes:
        if future.done():  # the caller was cancelled; the write happened regardless
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class ConnectionThread:
    """Run jobs ``fn(conn, *args)`` on one connection, on one daemon thread."""

    def __init__(self, name: str, connect: Callable[[], sqlite3.Connection], translate: Translate,
                 *, max_group: int = 64) -> None:  # fmt: skip
        self._connect = connect
        self._translate = translate
        self._max_group = max_group
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._conn: sqlite3.Connection | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.commit_count = 0
        """How many SQLite COMMITs this thread has executed (group commits count once)."""

    async def start(self) -> None:
        """Start the thread and open its connection there; raise what opening raised (then ``stop``)."""
        self._thread.start()
        await self.call(self._open)

    async def stop(self) -> None:
        """Close the connection after the jobs already queued, then end the thread."""
        if not self._thread.is_alive():
            return
        try:
            await self.call(self._close)
        finally:
            self._queue.put(None)
            self._thread.join()

    async def call(self, fn: Callable[..., Any], *args: Any, write: bool = False) -> Any:
        """Run ``fn(conn, *args)`` on the thread (inside a write transaction when ``write``)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Job(fn, args, write, loop, future))
        return await future

    # -- on the thread -------------------------------------------------------------
    def _open(self, _conn: None) -> None:
        self._conn = self._connect()

    def _close(self, conn: sqlite3.Connection | None) -> None:
        if conn is not None:
            conn.close()
        self._conn = None

    def _main(self) -> None:
        pending: Any = None
        while True:
            job = pending if pending is not None else self._queue.get()
            pending = None
            if job is None or job is _STOP:
                return
            if not job.write:
                self._run_read(job)
                continue
            group = [job]
            while len(group) < self._max_group:  # group the writes queued meanwhile
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None or not nxt.write:
                    pending = _STOP if nxt is None else nxt
                    break
                group.append(nxt)
            self._run_group(group)

    def _run_read(self, job: _Job) -> None:
        try:
            outcome = (job.future, True, job.fn(self._conn, *job.args))
        except BaseException as exc:
            outcome = (job.future, False, self._translate(exc))
        self._resolve([(job, outcome)])

    def _run_group(self, group: list[_Job]) -> None:
        """Run ``group`` in one transaction; see the module docstring for the failure rules."""
        conn = self._conn
        assert conn is not None, "the connection is opened before any write"
        refused: list[tuple[_Job, tuple]] = []
        while group:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except BaseException as exc:
                err = self._translate(exc)
                self._resolve(refused + [(j, (j.future, False, err)) for j in group])
                return
            results: list[tuple[_Job, tuple]] = []
            for i, job in enumerate(group):
                try:
                    results.append((job, (job.future, True, job.fn(conn, *job.args))))
                except sqlite3.Error as exc:
                    self._rollback()
                    if len(group) == 1:
                        refused.append((job, (job.future, False, self._translate(exc))))
                    else:
                        for alone in group:
                            self._run_group([alone])
                    self._resolve(refused)
                    return
                except BaseException as exc:
                    # Our own error (version conflict, duplicate key): undo the transaction and
                    # run the group again without this job, which then sees exactly what it saw.
                    self._rollback()
                    refused.append((job, (job.future, False, exc)))
                    group = group[:i] + group[i + 1 :]
                    break
            else:
                try:
                    conn.execute("COMMIT")
                except BaseException as exc:
                    self._rollback()
                    err = self._translate(exc)
                    results = [(j, (j.future, False, err)) for j in group]
                else:
                    self.commit_count += 1
                self._resolve(refused + results)
                return
        self._resolve(refused)

    def _rollback(self) -> None:
        if self._conn is not None and self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    @staticmethod
    def _resolve(items: list[tuple[_Job, tuple]]) -> None:
        by_loop: dict[Any, list[tuple]] = {}
        for job, outcome in items:
            by_loop.setdefault(job.loop, []).append(outcome)
        for loop, outcomes in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, outcomes)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass


_STOP: Any = object()
