"""Where the engine is built: the public ``WorkflowEngine`` fills in default providers.

Keeping the choice of implementations here (and not inside ``engine``) keeps
the engine honest about depending on interfaces only.
"""

from __future__ import annotations

from ruvon_edge.definition.registry import WorkflowRegistry
from ruvon_edge.engine.core import Engine
from ruvon_edge.providers.execution import ExecutionProvider
from ruvon_edge.providers.expression_evaluator import ExpressionEvaluator
from ruvon_edge.providers.observer import NoopObserver, WorkflowObserver
from ruvon_edge.providers.persistence import PersistenceProvider
from ruvon_edge.providers.template_engine import TemplateEngine


class WorkflowEngine(Engine):
    """The engine with defaults: SyncExecutionProvider, NoopObserver, SimpleExpressionEvaluator, Jinja2TemplateEngine."""

    def __init__(
        self,
        persistence: PersistenceProvider,
        registry: WorkflowRegistry,
        *,
        execution: ExecutionProvider | None = None,
        observer: WorkflowObserver | None = None,
        expression_evaluator: ExpressionEvaluator | None = None,
        template_engine: TemplateEngine | None = None,
    ) -> None:
        if execution is None:
            from ruvon_edge.implementations.execution.sync import SyncExecutionProvider

            execution = SyncExecutionProvider()
        if expression_evaluator is None:
            from ruvon_edge.implementations.expression_evaluator.simple import (
                SimpleExpressionEvaluator,
            )

            expression_evaluator = SimpleExpressionEvaluator()
        if template_engine is None:
            template_engine = _DeferredJinja2()
        super().__init__(
            persistence,
            registry,
            execution=execution,
            observer=observer or NoopObserver(),
            expression_evaluator=expression_evaluator,
            template_engine=template_engine,
        )


class _DeferredJinja2(TemplateEngine):
    """``Jinja2TemplateEngine``, imported on the first render: most workflows never render one."""

    def __init__(self) -> None:
        self._engine: TemplateEngine | None = None

    def render(self, template: str, context: dict) -> str:
        if self._engine is None:
            from ruvon_edge.implementations.templating.jinja2 import Jinja2TemplateEngine

            self._engine = Jinja2TemplateEngine()
        return self._engine.render(template, context)
