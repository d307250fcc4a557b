"""What a device keeps after sync: failed workflows for a while, and every idempotency key.

* A FAILED* workflow is synced like any finished one (the cloud must see
  failures) but is then kept on the device -- out of the pending set, its
  ``synced_at`` stamped -- so an operator can still ``show`` and ``retry`` it.
  It leaves when it is retried and finishes (synced again with its new
  version), cancelled (queued again, then synced and deleted), or when
  ``failed_seconds`` (default 7 days) have passed since it was synced.
* When a workflow with an idempotency key is deleted, the key is remembered
  (a tombstone: key -> workflow id, type, final status, synced at) for
  ``idempotency_seconds`` (default 30 days). A start with a remembered key
  runs nothing and raises ``IdempotencyKeySyncedError`` naming the workflow
  and how it ended. After the retention the key may be used again.

Expired failures and tombstones are removed by the same transaction that
applies sync's deletes, so a device that never syncs keeps everything.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import _rows

DAY = 86_400.0


@dataclass(frozen=True)
class Retention:
    """How long failures stay after sync, and how long keys outlive their workflows (seconds)."""

    failed_seconds: float = 7 * DAY
    idempotency_seconds: float = 30 * DAY

    def __post_init__(self) -> None:
        if self.failed_seconds < 0 or self.idempotency_seconds < 0:
            raise ValueError("retention periods must be >= 0 seconds")

    def failed_cutoff(self) -> str:
        """Failures synced before this time have been kept long enough."""
        return _rows.iso_ago(self.failed_seconds)

    def key_expiry(self) -> str:
        """When a key remembered now may be used again."""
        return _rows.iso_ago(-self.idempotency_seconds)
