"""What one sync cycle did, and the failure that ended it (read by the CLI, the ledger and the logs)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sync_agent.transport import AuthRefused, TransportError


@dataclass
class CycleReport:
    """What one ``drain`` did; ``errors`` empty means nothing failed.

    ``reason``, ``http_status`` and ``attempts`` describe the failure that
    ended the cycle; ``problems`` names records set aside (quarantined) on the way.
    """

    batches: int = 0
    workflows_acked: int = 0
    audit_acked: int = 0
    deleted: int = 0
    quarantined: int = 0
    released: int = 0
    rejected_retryable: int = 0
    errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    reason: str | None = None
    http_status: int | None = None
    attempts: int = 0
    auth_refused: bool = False
    stopped: bool = False
    body_bytes: int = 0
    wire_bytes: int = 0
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def idle(self) -> bool:
        """Nothing was sent, set aside or released, and nothing failed."""
        return self.ok and not (self.batches or self.quarantined or self.released)

    def fail(self, exc: TransportError) -> None:
        """Record the failure that ends this cycle."""
        self.errors.append(str(exc))
        self.reason, self.http_status, self.attempts = exc.reason, exc.status, exc.attempts
        self.auth_refused = self.auth_refused or isinstance(exc, AuthRefused)
