"""``Workflow``: a view of one stored instance, with the reference SDK's ``next_step`` and ``enable_saga_mode``."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import BaseModel

if TYPE_CHECKING:
    from ruvon_edge.engine.core import Engine


class Workflow:
    """A snapshot of a workflow instance as last committed."""

    __slots__ = ("_engine", "_row", "_saga_requested", "state")

    def __init__(self, engine: Engine, row: dict[str, Any], state: BaseModel) -> None:
        self._engine = engine
        self._row = row
        self._saga_requested = False
        self.state = state

    @property
    def id(self) -> UUID:
        return UUID(self._row["id"])

    @property
    def workflow_type(self) -> str:
        return self._row["workflow_type"]

    @property
    def workflow_version(self) -> str | None:
        return self._row.get("workflow_version")

    @property
    def status(self) -> str:
        return self._row["status"]

    @property
    def current_step(self) -> str | None:
        return self._row.get("current_step")

    @property
    def parent_id(self) -> str | None:
        return self._row.get("parent_id")

    @property
    def idempotency_key(self) -> str | None:
        return self._row.get("idempotency_key")

    @property
    def error(self) -> str | None:
        return self._row.get("error")

    @property
    def version(self) -> int:
        return self._row.get("version") or 0

    @property
    def created_at(self) -> str | None:
        return self._row.get("created_at")

    @property
    def updated_at(self) -> str | None:
        return self._row.get("updated_at")

    @property
    def completed_at(self) -> str | None:
        return self._row.get("completed_at")

    async def next_step(self, user_input: dict[str, Any] | None = None) -> Workflow:
        """Advance exactly one step (and any ``automate_next`` chain); update this object and return it.

        So the reference's ``while wf.status == "ACTIVE": await wf.next_step()`` works.
        """
        if self._saga_requested:
            await self._persist_saga_mode()
        self._take(await self._engine.next_step(self.id, user_input))
        return self

    def enable_saga_mode(self) -> _SagaSwitch:
        """Compensate this instance on failure even if its definition has no ``saga_mode``.

        The reference documents it both awaited and not: awaiting stores the
        switch now; otherwise the next ``next_step`` stores it before running.
        """
        self._saga_requested = True
        return _SagaSwitch(self)

    async def _persist_saga_mode(self) -> None:
        self._take(await self._engine.enable_saga_mode(self.id))
        self._saga_requested = False

    def _take(self, other: Workflow) -> None:
        self._row, self.state = other._row, other.state

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict of the instance (state dumped)."""
        keys = (
            "workflow_type",
            "workflow_version",
            "status",
            "current_step",
            "parent_id",
            "idempotency_key",
            "error",
            "version",
            "created_at",
            "updated_at",
            "completed_at",
        )
        out: dict[str, Any] = {"id": str(self.id)}
        out.update({k: self._row.get(k) for k in keys})
        out["state"] = self.state.model_dump(mode="json")
        return out

    def __repr__(self) -> str:
        return f"<Workflow {self.workflow_type} {self.id} {self.status} at {self.current_step!r}>"


class _SagaSwitch:
    """What ``enable_saga_mode`` returns: awaiting it stores the switch (nothing runs unless awaited)."""

    def __init__(self, workflow: Workflow) -> None:
        self._workflow = workflow

    def __await__(self) -> Generator[Any, None, None]:
        return self._workflow._persist_saga_mode().__await__()
