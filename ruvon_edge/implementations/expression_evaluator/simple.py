"""The default condition evaluator: the safe AST-interpreted language of ``ruvon_edge.expressions``."""

from __future__ import annotations

from ruvon_edge.expressions import compile_expression, evaluate
from ruvon_edge.providers.expression_evaluator import ExpressionEvaluator


class SimpleExpressionEvaluator(ExpressionEvaluator):
    """Evaluates route and loop conditions without ``eval``; bounded in time and size."""

    def evaluate(self, expression: str, context: dict) -> bool:
        """Return the truth of ``expression`` in ``context``; ExpressionError if it is refused or fails."""
        return bool(evaluate(expression, context))

    def check(self, expression: str) -> None:
        """Raise ExpressionError if ``expression`` is outside the safe language."""
        compile_expression(expression)
