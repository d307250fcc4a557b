"""Expression evaluator interface: conditions in routes and loops."""

from __future__ import annotations

from abc import ABC, abstractmethod


class ExpressionEvaluator(ABC):
    """Evaluates a condition against a context; must never run arbitrary code."""

    @abstractmethod
    def evaluate(self, expression: str, context: dict) -> bool:
        """Return the truth of ``expression``; raise ``ExpressionError`` on a bad one."""

    def check(self, expression: str) -> None:
        """Raise ``ExpressionError`` if ``expression`` could never be evaluated (used at load)."""
