"""Prometheus text exposition (format 0.0.4) for ``GET /metrics``, with no dependency.

Counters and histograms live in the process (they restart at zero, which
Prometheus' ``rate()`` expects); what each device reported is read from the
store at scrape time, so it survives restarts and is the same on every
receiver process in front of one store.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[tuple[str, str], ...]


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    escaped = (
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(10), "n").replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels
    )
    return "{" + ",".join(escaped) + "}"


def _number(value: float) -> str:
    if isinstance(value, int) or (
        math.isfinite(value) and value == int(value) and abs(value) < 2**53
    ):
        return str(int(value))
    return repr(float(value))


class Counter:
    """A monotonically increasing count per label set."""

    kind = "counter"

    def __init__(self, name: str, help_: str) -> None:
        self.name, self.help = name, help_
        self.values: dict[Labels, float] = defaultdict(float)

    def inc(self, amount: float = 1, **labels: str) -> None:
        self.values[tuple(sorted(labels.items()))] += amount

    def samples(self) -> Iterable[str]:
        for labels, value in sorted(self.values.items()):
            yield f"{self.name}{_labels(labels)} {_number(value)}"


class Histogram:
    """Observations in cumulative ``le`` buckets, with ``_sum`` and ``_count``, per label set."""

    kind = "histogram"

    def __init__(self, name: str, help_: str, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.name, self.help, self.buckets = name, help_, buckets
        self.counts: dict[Labels, list[int]] = {}
        self.sums: dict[Labels, float] = defaultdict(float)

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        counts = self.counts.setdefault(key, [0] * (len(self.buckets) + 1))
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                counts[i] += 1
        counts[-1] += 1
        self.sums[key] += value

    def samples(self) -> Iterable[str]:
        for key, counts in sorted(self.counts.items()):
            for bound, n in zip((*self.buckets, math.inf), counts, strict=True):
                le = "+Inf" if bound == math.inf else repr(bound)
                yield f"{self.name}_bucket{_labels((*key, ('le', le)))} {n}"
            yield f"{self.name}_sum{_labels(key)} {_number(self.sums[key])}"
            yield f"{self.name}_count{_labels(key)} {counts[-1]}"


class Gauge:
    """Values set at scrape time."""

    kind = "gauge"

    def __init__(self, name: str, help_: str) -> None:
        self.name, self.help = name, help_
        self.values: dict[Labels, float] = {}

    def set(self, value: float, **labels: str) -> None:
        self.values[tuple(sorted(labels.items()))] = value

    def samples(self) -> Iterable[str]:
        for labels, value in sorted(self.values.items()):
            yield f"{self.name}{_labels(labels)} {_number(value)}"


Metric = Counter | Histogram | Gauge


def render(metrics: Iterable[Metric]) -> bytes:
    """The exposition text of ``metrics`` (HELP, TYPE, then samples)."""
    lines: list[str] = []
    for m in metrics:
        lines.append(f"# HELP {m.name} {m.help}")
        lines.append(f"# TYPE {m.name} {m.kind}")
        lines.extend(m.samples())
    return ("\n".join(lines) + "\n").encode()


class ReceiverMetrics:
    """Everything the receiver counts, and the per-device gauges filled from the store."""

    def __init__(self) -> None:
        p = "ruvon_cloud_"
        self.batches = Counter(p + "batches_total", "Batch requests answered, by result.")
        self.records_stored = Counter(p + "records_stored_total", "New records committed, by kind.")
        self.records_duplicate = Counter(
            p + "records_duplicate_total", "Records already held (acked again), by kind."
        )
        self.records_rejected = Counter(
            p + "records_rejected_total", "Records refused non-retryably, by kind and reason."
        )
        self.conflicts = Counter(
            p + "workflow_conflicts_total",
            "Workflows whose (id, sync_version) arrived again with other content (both kept).",
        )
        self.auth_refusals = Counter(p + "auth_refusals_total", "Refused requests, by reason.")
        self.heartbeats = Counter(p + "heartbeats_total", "Heartbeats stored.")
        self.latency = Histogram(
            p + "request_duration_seconds", "Time from request to answer, by route."
        )
        self.commit = Histogram(
            p + "store_commit_duration_seconds", "Time to commit one batch to the store."
        )
        self.inflight = Gauge(p + "inflight_requests", "Authenticated requests being processed.")
        self.decoded = Gauge(p + "decoded_bytes_in_use", "Decoded body bytes held by requests.")
        self.store_up = Gauge(p + "store_up", "1 when the store answered this scrape.")
        self.last_seen = Gauge(
            p + "device_last_seen_timestamp_seconds", "When the device was last seen (unix s)."
        )
        self.backlog = Gauge(p + "device_backlog", "Workflows waiting on the device (reported).")
        self.oldest = Gauge(
            p + "device_oldest_pending_age_seconds",
            "Age of its oldest pending workflow (reported).",
        )
        self.quarantined = Gauge(p + "device_quarantined", "Quarantined records (reported).")
        self.stored_by_device = Gauge(p + "device_workflows_stored", "Workflows stored per device.")

    def own(self) -> list[Metric]:
        """The metrics kept in this process."""
        return [self.batches, self.records_stored, self.records_duplicate, self.records_rejected,
                self.conflicts, self.auth_refusals, self.heartbeats, self.latency, self.commit,
                self.inflight, self.decoded]  # fmt: skip

    def devices(self, devices: list[dict] | None) -> list[Metric]:
        """Per-device gauges from the store's registry (None: the store did not answer)."""
        self.store_up.set(0 if devices is None else 1)
        gauges = (
            self.last_seen,
            self.backlog,
            self.oldest,
            self.quarantined,
            self.stored_by_device,
        )
        for g in gauges:
            g.values.clear()
        fields = ("last_seen_at", "backlog", "oldest_pending_age_s", "quarantined", "workflows")
        for d in devices or []:
            for gauge, field in zip(gauges, fields, strict=True):
                if d[field] is not None:
                    gauge.set(d[field], device_id=d["device_id"])
        return [self.store_up, *gauges]
