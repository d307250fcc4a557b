"""``Workflow``: a read-only view of one stored instance, with the reference SDK's ``next_step``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import BaseModel

if TYPE_CHECKING:
    from ruvon_edge.engine.core import Engine


class Workflow:
    """A snapshot of a workflow instance as last committed."""

    __slots__ = ("_engine", "_row", "_state")

    def __init__(self, engine: Engine, row: dict[str, Any], state: BaseModel | None = None) -> None:
        self._engine = engine
        self._row = row
        self._state = state

    @property
    def state(self) -> BaseModel:
        """The state as its model; built on first use, so a view needs no user code until then."""
        if self._state is None:
            self._state = self._engine.snapshots.state_of(self._row)
        return self._state

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
        """Advance exactly one step (and any ``automate_next`` chain); return the new snapshot."""
        return await self._engine.next_step(self.id, user_input)

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
