"""Template engine interface: strings with ``{{ state.x }}`` in HTTP configs and child data."""

from __future__ import annotations

from abc import ABC, abstractmethod


class TemplateEngine(ABC):
    """Renders a template string against a context; must be sandboxed."""

    @abstractmethod
    def render(self, template: str, context: dict) -> str:
        """Return the rendered text; raise ``TemplateError`` on any failure."""
