"""Cron schedules: parsing and matching, and `serve` starting each slot exactly once with one catch-up at most."""

from __future__ import annotations

import asyncio
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ruvon_edge import WorkflowEngine, WorkflowRegistry
from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon_edge.schedule import CronError, parse, slot_key
from ruvon_edge.worker import serve

FIXTURES = Path(__file__).parents[1] / "worker" / "fixtures"
if str(FIXTURES) not in sys.path:
    sys.path.insert(0, str(FIXTURES))

TICK = """
workflow_type: Tick
initial_state_model_path: worker_app.models.JobState
schedule: "*/5 * * * *"
steps:
  - name: Finish
    function: worker_app.steps.finish
"""


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_parse_fields_lists_ranges_steps():
    """Every field form (*, list, range, step, range/step, 7 = Sunday) yields the right values."""
    cron = parse("*/15 9-17/4 1,15 */3 7")
    assert cron.minutes == {0, 15, 30, 45}
    assert cron.hours == {9, 13, 17}
    assert cron.days == {1, 15}
    assert cron.months == {1, 4, 7, 10}
    assert cron.weekdays == {0}


@pytest.mark.parametrize(
    ("text", "needle"),
    [("* * * *", "5 fields"), ("60 * * * *", "outside 0-59"), ("a * * * *", "not a number"),
     ("5-1 * * * *", "backwards"), ("*/0 * * * *", "outside"), ("* * 0 * *", "outside 1-31")],
)  # fmt: skip
def test_parse_refuses_malformed_expressions(text, needle):
    """A malformed cron expression is refused with a message naming the problem."""
    with pytest.raises(CronError, match=needle):
        parse(text)


def test_matches_previous_and_next():
    """Matching, the latest slot at or before a time, and the first slot after it."""
    cron = parse("*/5 * * * *")
    assert cron.matches(at("2024-03-01T10:05:00"))
    assert not cron.matches(at("2024-03-01T10:06:00"))
    assert cron.previous(at("2024-03-01T10:04:59")) == at("2024-03-01T10:00:00")
    assert cron.next(at("2024-03-01T10:05:00")) == at("2024-03-01T10:10:00")
    assert cron.previous(at("2024-03-01T00:02:00")) == at("2024-03-01T00:00:00")


def test_day_of_month_or_day_of_week_like_cron():
    """With both day fields restricted a day matches if either does; weekly and leap-day slots are found."""
    cron = parse("0 12 13 * 5")  # the 13th, or any Friday
    assert cron.matches(at("2024-03-13T12:00:00"))  # a Wednesday
    assert cron.matches(at("2024-03-15T12:00:00"))  # a Friday
    assert not cron.matches(at("2024-03-14T12:00:00"))
    assert parse("0 0 * * 1").previous(at("2024-03-06T00:00:00")) == at("2024-03-04T00:00:00")
    assert parse("0 0 29 2 *").previous(at("2027-01-01T00:00:00")) == at("2024-02-29T00:00:00")


class Clock:
    """A settable clock for the scheduler."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def serve_once(db: Path, clock: Clock, until) -> list:
    """Run `serve` in-process on ``db`` until ``until(engine)`` holds; return the Tick workflows."""
    registry = WorkflowRegistry(allowed_modules=["worker_app"])
    registry.register_yaml(TICK)
    async with WorkflowEngine(SQLitePersistenceProvider(str(db)), registry) as engine:
        stop = asyncio.Event()
        worker = asyncio.create_task(
            serve(engine, stop_event=stop, poll_interval=0.05, clock=clock)
        )
        for _ in range(100):
            await asyncio.sleep(0.05)
            if await until(engine):
                break
        stop.set()
        assert await worker == 0
        return await engine.list_workflows(workflow_type="Tick", limit=100)


async def test_slots_run_exactly_once_across_restarts_and_one_catch_up(tmp_path):
    """First sight starts nothing; each due slot runs once across restarts; a 3 h power-off yields ONE run."""
    db = tmp_path / "edge.db"
    clock = Clock(at("2024-03-01T10:02:00"))

    async def settled(engine):
        return await engine.persistence.get_edge_sync_state("schedule:Tick") is not None

    assert await serve_once(db, clock, settled) == []
    clock.now = at("2024-03-01T10:05:30")

    async def one_done(engine):
        return len(await engine.list_workflows(status="COMPLETED", workflow_type="Tick")) >= 1

    runs = await serve_once(db, clock, one_done)
    assert [w.idempotency_key for w in runs] == ["schedule:Tick:2024-03-01T10:05Z"]
    clock.now = at("2024-03-01T10:09:00")  # restart within the same slot: nothing new
    runs = await serve_once(db, clock, settled)
    assert len(runs) == 1
    clock.now = at("2024-03-01T13:07:00")  # a long power-off: only the latest missed slot

    async def two_done(engine):
        return len(await engine.list_workflows(status="COMPLETED", workflow_type="Tick")) >= 2

    runs = await serve_once(db, clock, two_done)
    assert sorted(w.idempotency_key for w in runs) == [
        "schedule:Tick:2024-03-01T10:05Z", "schedule:Tick:2024-03-01T13:05Z",
    ]  # fmt: skip
    assert all(w.status == "COMPLETED" for w in runs)


async def test_lost_cursor_still_runs_slot_once(tmp_path):
    """If the cursor write was lost (crash after the start), the idempotency key still keeps one run per slot."""
    db = tmp_path / "edge.db"
    clock = Clock(at("2024-03-01T10:05:10"))
    async with SQLitePersistenceProvider(str(db)) as store:
        await store.set_edge_sync_state(
            "schedule:Tick", slot_key("Tick", at("2024-03-01T10:00:00"))
        )

    async def one_done(engine):
        return len(await engine.list_workflows(status="COMPLETED", workflow_type="Tick")) >= 1

    await serve_once(db, clock, one_done)
    async with SQLitePersistenceProvider(
        str(db)
    ) as store:  # the crash: cursor back before the slot
        await store.set_edge_sync_state(
            "schedule:Tick", slot_key("Tick", at("2024-03-01T10:00:00"))
        )
    clock.now = at("2024-03-01T10:06:00")

    async def cursor_moved(engine):
        return (await engine.persistence.get_edge_sync_state("schedule:Tick")).endswith("10:05Z")

    runs = await serve_once(db, clock, cursor_moved)
    assert [w.idempotency_key for w in runs] == ["schedule:Tick:2024-03-01T10:05Z"]


def test_a_day_field_starting_with_star_is_unrestricted_like_vixie_cron():
    """`0 0 */14 * 3` runs only on Wednesdays that are the 1st, 15th or 29th (both day fields must match)."""
    cron = parse("0 0 */14 * 3")
    slot, slots = at("2026-01-01T00:00:00"), []
    while (slot := cron.next(slot)) is not None and slot.year < 2030:
        slots.append(slot)
    assert slots and all(s.isoweekday() == 3 and s.day in (1, 15, 29) for s in slots)
    both_restricted = parse("0 0 1,15 * 3")  # either field matching is enough
    assert both_restricted.matches(at("2026-01-07T00:00:00"))
    assert not cron.matches(at("2026-01-07T00:00:00"))


def _random_field(rng, lo: int, hi: int) -> str:
    def item() -> str:
        a, b = sorted(rng.sample(range(lo, hi + 1), 2))
        return rng.choice(
            [
                "*",
                f"*/{rng.randint(2, min(15, hi))}",
                str(a),
                f"{a}-{b}",
                f"{a}-{b}/{rng.randint(2, 6)}",
            ]
        )

    first = item()
    more = (
        []
        if first.startswith("*") or rng.random() < 0.6
        else [item() for _ in range(rng.randint(1, 2))]
    )
    return ",".join([first, *(m for m in more if not m.startswith("*"))])


def test_schedules_agree_with_cronsim_on_random_expressions():
    """400 random expressions (fixed seed): the next five slots and the previous three equal cronsim's."""
    import cronsim

    rng = random.Random(20261201)
    start = at("2026-03-14T09:26:00")
    compared = 0
    for _ in range(400):
        text = " ".join(
            _random_field(rng, lo, hi) for lo, hi in ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
        )
        try:
            oracle_next = cronsim.CronSim(text, start)
            oracle_previous = cronsim.CronSim(text, start, reverse=True)
        except cronsim.CronSimError:  # a day that never exists (31 February): no slot either way
            assert parse(text).next(start) is None, text
            continue
        cron, ours, slot = parse(text), [], start
        for _ in range(5):
            slot = cron.next(slot)
            ours.append(slot)
        assert ours == [next(oracle_next) for _ in range(5)], text
        mine, slot = [], start - timedelta(minutes=1)
        for _ in range(3):
            slot = cron.previous(slot)
            mine.append(slot)
            slot -= timedelta(minutes=1)
        assert mine == [next(oracle_previous) for _ in range(3)], text
        compared += 1
    assert compared > 350
