"""What a step function gets besides the state: who it runs for and where it is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class StepContext:
    """Passed to every step function as ``context``.

    ``user_input`` holds the validated input of a resumed step, and
    ``validated_input`` the same as the step's ``input_model`` instance (the
    dict when it has none; None without input), as the reference names it;
    ``previous_step_result`` is what the previous step returned; ``loop_item``
    and ``loop_index`` are set inside LOOP bodies; ``attempt`` counts retries
    from 1.
    """

    workflow_id: str
    workflow_type: str
    step_name: str
    attempt: int = 1
    user_input: dict[str, Any] = field(default_factory=dict)
    parent_id: str | None = None
    loop_item: Any = None
    loop_index: int | None = None
    previous_step: str | None = None
    sub_workflow_results: dict[str, Any] = field(default_factory=dict)
    validated_input: Any = None
    previous_step_result: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly copy, for tasks dispatched to other processes."""
        return {
            "workflow_id": self.workflow_id,
            "workflow_type": self.workflow_type,
            "step_name": self.step_name,
            "attempt": self.attempt,
            "user_input": self.user_input,
            "parent_id": self.parent_id,
            "loop_item": self.loop_item,
            "loop_index": self.loop_index,
            "previous_step": self.previous_step,
            "previous_step_result": self.previous_step_result,
        }
