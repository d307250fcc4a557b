"""Definition snapshots: every instance runs the definition it started with.

The stored form of a definition travels in the instance's row; its content
hash (in the row's context) finds the already-validated definition in memory,
so a step never re-parses it. A process that has not seen the hash validates
the stored form again through the registry (callables still checked against
``allowed_modules``), never the registry's current version of the type, and
replays the steps ``dynamic_injection`` inserted into that instance.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

from ruvon_edge.definition.models import WorkflowDefinition
from ruvon_edge.definition.registry import WorkflowRegistry
from ruvon_edge.engine import injection


class Snapshots:
    """Stored forms of definitions and the definitions behind stored forms, memoised both ways."""

    def __init__(self, registry: WorkflowRegistry) -> None:
        self.registry = registry
        self._stored: dict[int, tuple[WorkflowDefinition, dict[str, Any], str]] = {}
        self._by_hash: dict[str, WorkflowDefinition] = {}

    def store(self, definition: WorkflowDefinition) -> tuple[dict[str, Any], str]:
        """The stored form of ``definition`` and its content hash."""
        cached = self._stored.get(id(definition))
        if cached is None or cached[0] is not definition:
            data = definition.model_dump(mode="json", by_alias=True, exclude_defaults=True)
            digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
            cached = (definition, data, digest)
            self._stored[id(definition)] = cached
            self._by_hash[digest] = definition
        return cached[1], cached[2]

    def definition_of(self, row: dict[str, Any]) -> WorkflowDefinition:
        """The definition an instance started with (its snapshot), not the registry's current one."""
        digest = row["context"].get("definition_hash")
        definition = self._by_hash.get(digest) if digest else None
        if definition is None:
            definition = self.registry.load_snapshot(row["definition"])
            if row["context"].get("injected_steps"):
                definition = injection.replay(definition, row["context"]["injected_steps"])
            if digest:
                self._by_hash[digest] = definition
        return definition

    def state_of(self, row: dict[str, Any]) -> BaseModel:
        """The instance's state as its pydantic model."""
        return self.registry.state_model(self.definition_of(row)).model_validate(row["state"])
