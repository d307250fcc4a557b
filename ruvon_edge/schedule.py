"""A small 5-field cron parser and matcher (minute hour day-of-month month day-of-week), no dependency.

Fields take ``*``, numbers, lists (``1,15``), ranges (``9-17``) and steps
(``*/5``, ``10-50/20``); day-of-week is 0-7 with 0 and 7 both Sunday, and
month and day-of-week also take names (``JAN``, ``MON-FRI``). As in cron,
when both day fields are restricted a day matches if EITHER does. Schedules
are evaluated in UTC, at minute resolution.

Schedules come from definitions (``schedule:``) and from CRON_SCHEDULE steps,
which register a named schedule in the store (``register``); ``serve``'s
``Scheduler`` runs both.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ruvon_edge.errors import RuvonError

log = logging.getLogger(__name__)

_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
_SEARCH_DAYS = 366 * 8  # long enough for "29 February on a Monday"
_NAMES = {
    3: ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
    4: ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"),
}
_FIRST = {3: 1, 4: 0}
REGISTERED_KEY = "cron_schedules"
"""Edge-state key holding the schedules CRON_SCHEDULE steps registered (a JSON object by name)."""


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
    any_day: bool
    any_weekday: bool

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
    parts = [_numbered(part, i) for i, part in enumerate(parts)]
    sets = [_field(part, name, lo, hi) for part, (name, lo, hi) in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in sets[4])
    return Cron(
        str(text), sets[0], sets[1], sets[2], sets[3], weekdays, parts[2] == "*", parts[4] == "*"
    )


def _numbered(text: str, index: int) -> str:
    """Month and weekday names (any case) as their numbers."""
    names = _NAMES.get(index)
    if names is None or not any(c.isalpha() for c in text):
        return text
    out = text.upper()
    for number, name in enumerate(names, start=_FIRST[index]):
        out = out.replace(name, str(number))
    return out


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
        due: list[tuple[str, str, Cron, dict]] = [(t, t, c, {}) for t, c in self.crons.items()]
        for name, entry in (await registered(self.engine.persistence)).items():
            try:
                due.append(
                    (f"cron:{name}", entry["workflow_type"], parse(entry["cron"]), entry["data"])
                )
            except (CronError, KeyError, TypeError):
                log.warning("registered schedule %r is malformed; skipped", name)
        for key_name, workflow_type, cron, data in due:
            slot = cron.previous(now)
            if slot is None:
                continue
            key = slot_key(key_name, slot)
            last = await self._cursor(key_name)
            if last is _UNSEEN:
                await self._advance(key_name, key)
                continue
            if last is not None and last >= key:
                continue
            try:
                wf = await self.engine.start_workflow(workflow_type, data, idempotency_key=key)
            except RuvonError as exc:  # a registered target that no longer fits: skip this slot
                log.warning("schedule %s could not start %s: %s", key_name, workflow_type, exc)
                wf = None
            await self._advance(key_name, key)
            if wf is not None and wf.status == "ACTIVE":
                started.append(str(wf.id))
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


async def registered(persistence) -> dict[str, dict]:
    """The schedules CRON_SCHEDULE steps registered, by name (empty when the store keeps none)."""
    try:
        text = await persistence.get_edge_sync_state(REGISTERED_KEY)
    except NotImplementedError:
        return {}
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        log.warning("the registered schedules are not valid JSON; none run")
        return {}
    return value if isinstance(value, dict) else {}


_registering = asyncio.Lock()


async def register(persistence, name: str, cron: str, workflow_type: str, data: dict) -> None:
    """Add or replace the schedule ``name`` (idempotent: the same call twice changes nothing)."""
    parse(cron)
    async with _registering:  # read-modify-write of one value: one writer per process
        schedules = await registered(persistence)
        schedules[name] = {"cron": cron, "workflow_type": workflow_type, "data": data}
        await persistence.set_edge_sync_state(REGISTERED_KEY, json.dumps(schedules, sort_keys=True))
