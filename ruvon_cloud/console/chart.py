"""A device's audit volume over time as bar geometry; ``_chart.html`` draws it as inline SVG.

The counts come from ``Store.activity`` (rows received per window, on an
index); windows with nothing are filled in here so gaps show as gaps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 180, 48, 22, 10
HOUR, DAY = 3600, 86400


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    audit_logs: int
    workflows: int


@dataclass(frozen=True)
class Chart:
    """What ``_chart.html`` draws: bars, the y-axis maximum, a few x labels."""

    bars: list[Bar]
    y_max: int
    x_labels: list[tuple[float, str]]
    unit: str
    total: int
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: int = BOTTOM
    top: int = TOP


def window(first_seen: float | None, now: float) -> tuple[float, int, int]:
    """``(since, bucket_s, buckets)``: 24 hourly bars for a young device, else up to 30 daily ones."""
    if first_seen is not None and now - first_seen <= 2 * DAY:
        start = (now // HOUR) * HOUR - 23 * HOUR
        return start, HOUR, 24
    start = (now // DAY) * DAY - 29 * DAY
    return start, DAY, 30


def build(activity: list[dict], since: float, bucket_s: int, buckets: int) -> Chart:
    """Bars for ``Store.activity`` rows (``{at, workflows, audit_logs}``) over ``buckets`` windows."""
    by_slot = {round((row["at"] - since) / bucket_s): row for row in activity}
    counts = [
        (by_slot.get(i, {}).get("audit_logs", 0), by_slot.get(i, {}).get("workflows", 0))
        for i in range(buckets)
    ]
    y_max = max([1, *(a for a, _ in counts)])
    plot_w, plot_h = WIDTH - LEFT - 4, HEIGHT - BOTTOM - TOP
    slot_w = plot_w / buckets
    fmt = "%H:00" if bucket_s == HOUR else "%m-%d"
    bars, x_labels = [], []
    for i, (audits, workflows) in enumerate(counts):
        start = datetime.fromtimestamp(since + i * bucket_s, UTC)
        h = plot_h * audits / y_max
        bars.append(
            Bar(x=round(LEFT + i * slot_w + slot_w * 0.12, 2), y=round(TOP + plot_h - h, 2),
                width=round(slot_w * 0.76, 2), height=round(h, 2),
                label=start.strftime("%Y-%m-%d %H:00Z" if bucket_s == HOUR else "%Y-%m-%d"),
                audit_logs=audits, workflows=workflows)
        )  # fmt: skip
        if i % 4 == 0 or i == buckets - 1:
            x_labels.append((round(LEFT + (i + 0.5) * slot_w, 2), start.strftime(fmt)))
    return Chart(
        bars=bars, y_max=y_max, x_labels=x_labels, unit="hour" if bucket_s == HOUR else "day",
        total=sum(a for a, _ in counts),
    )  # fmt: skip
