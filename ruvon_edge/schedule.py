"""A small 5-field cron parser and matcher (minute hour day-of-month month day-of-week), no dependency.

Fields take ``*``, numbers, lists (``1,15``), ranges (``9-17``) and steps
(``*/5``, ``10-50/20``); day-of-week is 0-7 with 0 and 7 both Sunday. As in
Vixie cron and cronie, a day field that starts with ``*`` (``*``, ``*/14``)
counts as unrestricted: a day must then match BOTH fields (``0 0 */14 * 3``
runs on Wednesdays that are the 1st, 15th or 29th), and only when both day
fields are restricted does a day match if EITHER does.
Schedules are evaluated in UTC, at minute resolution.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
logger = logging.getLogger(__name__)
_SEARCH_DAYS = 366 * 8  # long enough for "29 February on a Monday"


class CronError(ValueError):
    """A cron expression is malformed; the message names the field and the text."""


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # the day-of-month field starts with "*"
    any_weekday: bool  # the day-of-week field starts with "*"

    def matches(self, at: datetime) -> bool:
        """True when the minute ``at`` (UTC) is one of the schedule's slots."""
        at = _utc(at)
        return at.minute in self.minutes and at.hour in self.hours and self._day_matches(at)

    def previous(self, at: datetime) -> datetime | None:
        """The latest slot at or before ``at`` (None if there is none within the search horizon)."""
        at = _utc(at).replace(second=0, microsecond=0)
        day = at.replace(hour=0, minute=0)
        for _ in range(_SEARCH_DAYS):
            if self._day_matches(day):
                for hour in sorted(self.hours, reverse=True):
                    for minute in sorted(self.minutes, reverse=True):
                        slot = day.replace(hour=hour, minute=minute)
                        if slot <= at:
                            return slot
            day -= timedelta(days=1)
        return None

    def next(self, after: datetime) -> datetime | None:
        """The first slot strictly after ``after`` (None if there is none within the search horizon)."""
        after = _utc(after).replace(second=0, microsecond=0)
        day = after.replace(hour=0, minute=0)
        for _ in range(_SEARCH_DAYS):
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        slot = day.replace(hour=hour, minute=minute)
                        if slot > after:
                            return slot
            day += timedelta(days=1)
        return None

    def _day_matches(self, at: datetime) -> bool:
        if at.month not in self.months:
            return False
        dom = at.day in self.days
        dow = (at.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow


def parse(text: str) -> Cron:
    """Parse a 5-field cron expression; ``CronError`` names the bad field."""
    parts = str(text).split()
    if len(parts) != 5:
        raise CronError(
            f"cron expression {text!r} must have 5 fields (minute hour day month weekday), not {len(parts)}"
        )
    sets = [_field(part, name, lo, hi) for part, (name, lo, hi) in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in sets[4])
    any_day, any_weekday = parts[2].startswith("*"), parts[4].startswith("*")
    return Cron(str(text), sets[0], sets[1], sets[2], sets[3], weekdays, any_day, any_weekday)


def _field(text: str, name: str, lo: int, hi: int) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        base, _, step_text = item.partition("/")
        step = _number(step_text, name, item, 1, hi) if step_text else 1
        if base == "*":
            first, last = lo, hi
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _number(a, name, item, lo, hi), _number(b, name, item, lo, hi)
            if first > last:
                raise CronError(f"cron {name} {item!r}: range runs backwards")
        else:
            first = _number(base, name, item, lo, hi)
            last = hi if step_text else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _number(text: str, name: str, item: str, lo: int, hi: int) -> int:
    if not text.isdigit():
        raise CronError(f"cron {name} {item!r}: {text!r} is not a number")
    value = int(text)
    if not lo <= value <= hi:
        raise CronError(f"cron {name} {item!r}: {value} is outside {lo}-{hi}")
    return value


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def slot_key(workflow_type: str, slot: datetime) -> str:
    """The idempotency key of the run for ``slot``: the store's unique index makes it exactly-once."""
    return f"schedule:{workflow_type}:{_utc(slot).strftime('%Y-%m-%dT%H:%MZ')}"


class Scheduler:
    """Starts one run per due slot of every definition that has a ``schedule``.

    Exactly once per slot: the run's idempotency key is ``slot_key`` (the
    store's unique index refuses a second one), and the last slot started is
    kept in the store (``schedule:{type}`` in the edge state table) so a slot
    is not run again after the sync agent deleted its finished run. Only the
    most recent due slot is ever started: after a long power-off that is ONE
    catch-up run, never a backlog. A schedule seen for the first time starts
    at its next slot, as cron would.
    """

    def __init__(self, engine, clock=None) -> None:
        self.engine = engine
        self.clock = clock or (lambda: datetime.now(UTC))
        self.crons: dict[str, Cron] = {}
        for workflow_type in engine.registry.types():
            text = engine.registry.get(workflow_type).schedule
            if text:
                try:
                    self.crons[workflow_type] = parse(text)
                except CronError as exc:
                    raise CronError(f"workflow {workflow_type}: schedule: {exc}") from None
        self._last: dict[str, str | None] = {}

    @property
    def types(self) -> list[str]:
        """The scheduled workflow types."""
        return sorted(self.crons)

    async def tick(self) -> list[str]:
        """Start the runs that are due now; return their workflow ids (the caller runs them)."""
        started = []
        now = self.clock()
        for workflow_type, cron in self.crons.items():
            slot = cron.previous(now)
            if slot is None:
                continue
            key = slot_key(workflow_type, slot)
            last = await self._cursor(workflow_type)
            if last is _UNSEEN:
                await self._advance(workflow_type, key)
                continue
            if last is not None and last >= key:
                continue
            wf = await self.engine.start_workflow(workflow_type, {}, idempotency_key=key)
            await self._advance(workflow_type, key)
            if wf.status == "ACTIVE":
                started.append(str(wf.id))
                logger.info("schedule_fired", extra={"workflow_type": workflow_type,
                            "slot": slot.strftime("%Y-%m-%dT%H:%MZ"), "workflow_id": str(wf.id)})  # fmt: skip
        return started

    async def _cursor(self, workflow_type: str):
        if workflow_type not in self._last:
            try:
                stored = await self.engine.persistence.get_edge_sync_state(
                    f"schedule:{workflow_type}"
                )
            except (
                NotImplementedError
            ):  # no durable cursor: the idempotency key alone guards the slot
                stored = None
            self._last[workflow_type] = stored if stored is not None else _UNSEEN
        return self._last[workflow_type]

    async def _advance(self, workflow_type: str, key: str) -> None:
        self._last[workflow_type] = key
        try:
            await self.engine.persistence.set_edge_sync_state(f"schedule:{workflow_type}", key)
        except NotImplementedError:
            pass


_UNSEEN = "\0unseen"
