"""What a step handler hands back to the runner, and what the runner hands it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ruvon_edge.definition.models import StepDefinition, WorkflowDefinition
from ruvon_edge.engine.context import StepContext
from ruvon_edge.providers.persistence import Transition

if TYPE_CHECKING:
    from ruvon_edge.engine.core import Engine


@dataclass
class StepRun:
    """One execution of one step: the services, the instance and the input."""

    engine: Engine
    definition: WorkflowDefinition
    step: StepDefinition
    row: dict[str, Any]
    state: BaseModel
    context: StepContext
    user_input: dict[str, Any] | None = None
    save_progress: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)

    async def checkpoint(self) -> None:
        """Commit the step's progress (``memory`` and ``row["state"]``) now; a crash resumes from here."""
        if self.save_progress is not None:
            await self.save_progress()

    @property
    def resumed(self) -> bool:
        """True when this run carries input for a waiting step."""
        return self.user_input is not None

    @property
    def memory(self) -> dict[str, Any]:
        """The step's own durable scratch space (loop progress, task ids), kept in the row."""
        return self.row["context"].setdefault("steps", {}).setdefault(self.step.name, {})


@dataclass
class Outcome:
    """The result of a handler.

    ``wait`` names a waiting status (WAITING_HUMAN, PENDING_ASYNC, ...): the step
    has not completed and stays current. Otherwise the step completed, ``result``
    merges into ``state`` (the state as the function left it) and the runner
    routes on (``jump`` overrides routes). ``tasks``, ``children`` and extra
    audit ``events`` are committed in the same transaction as the step.
    ``hand_on_input``: the step's input goes on to the next step.
    """

    result: dict[str, Any] = field(default_factory=dict)
    state: BaseModel | None = None
    jump: str | None = None
    wait: str | None = None
    wait_reason: str | None = None
    tasks: list[dict[str, Any]] = field(default_factory=list)
    children: list[Transition] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    merge: bool = True
    hand_on_input: bool = False
