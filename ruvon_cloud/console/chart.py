"""Audit volume over time as bar geometry; the template draws it as inline SVG (no script).

Buckets are whole UTC hours or days of the device's ``recorded_at`` text, so
the grouping is a plain ``substr`` that SQLite and PostgreSQL both run on an
index, and empty buckets are filled in here so gaps show as gaps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 180, 44, 22, 8


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    count: int


@dataclass(frozen=True)
class Chart:
    """What ``_chart.html`` draws: bars, a y-axis maximum, and a few x labels."""

    bars: list[Bar]
    y_max: int
    x_labels: list[tuple[float, str]]
    unit: str
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: int = BOTTOM
    top: int = TOP


def _parse(key: str, hourly: bool) -> datetime:
    fmt = "%Y-%m-%dT%H" if hourly else "%Y-%m-%d"
    return datetime.strptime(key, fmt).replace(tzinfo=UTC)


def build(counts: dict[str, int], hourly: bool) -> Chart | None:
    """Bars for ``{"2026-12-01T23": n}`` (hourly) or ``{"2026-12-01": n}`` (daily) buckets."""
    parsed = {}
    for key, n in counts.items():
        try:
            parsed[_parse(key, hourly)] = n
        except ValueError:  # a device that sent a malformed recorded_at: leave it out of the chart
            continue
    if not parsed:
        return None
    step = timedelta(hours=1) if hourly else timedelta(days=1)
    first, last = min(parsed), max(parsed)
    slots = [first + i * step for i in range(int((last - first) / step) + 1)]
    y_max = max(parsed.values())
    plot_w, plot_h = WIDTH - LEFT - 4, HEIGHT - BOTTOM - TOP
    slot_w = plot_w / len(slots)
    label_fmt = "%m-%d %H:00" if hourly else "%Y-%m-%d"
    bars = []
    for i, slot in enumerate(slots):
        n = parsed.get(slot, 0)
        h = plot_h * n / y_max
        bars.append(
            Bar(x=round(LEFT + i * slot_w + slot_w * 0.1, 2), y=round(TOP + plot_h - h, 2),
                width=round(max(slot_w * 0.8, 1), 2), height=round(h, 2),
                label=slot.strftime(label_fmt), count=n)
        )  # fmt: skip
    every = max(1, len(slots) // 6)
    x_labels = [
        (round(LEFT + (i + 0.5) * slot_w, 2), slot.strftime(label_fmt))
        for i, slot in enumerate(slots)
        if i % every == 0
    ]
    return Chart(bars=bars, y_max=y_max, x_labels=x_labels, unit="hour" if hourly else "day")
