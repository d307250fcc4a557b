"""Small helpers shared by the step-type tests: a registry over YAML texts and an event recorder."""

from __future__ import annotations

from typing import Any

from ruvon_edge import WorkflowRegistry
from ruvon_edge.providers.observer import WorkflowObserver


def registry_of(*texts: str) -> WorkflowRegistry:
    """A registry allowing ``steps_fixtures`` with every YAML text registered."""
    registry = WorkflowRegistry(allowed_modules=["steps_fixtures"])
    for text in texts:
        registry.register_yaml(text)
    return registry


class RecordingObserver(WorkflowObserver):
    """Keeps every hook call as ``(hook, args)``, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def on_workflow_started(self, workflow_id, workflow_type):
        self.calls.append(("on_workflow_started", (str(workflow_id), workflow_type)))

    async def on_child_workflow_started(self, parent_id, child_id, child_type):
        self.calls.append(
            ("on_child_workflow_started", (str(parent_id), str(child_id), child_type))
        )

    async def on_workflow_completed(self, workflow_id):
        self.calls.append(("on_workflow_completed", (str(workflow_id),)))
