"""Rendering ``{{ }}`` templates inside nested config (HTTP requests, child workflow data).

Every string inside dicts and lists is rendered through the engine's template
engine (the sandboxed one by default); keys and non-string values are kept as
they are. Rendered values stay strings: the template engine's interface
returns text, and a typed state model of the receiving side coerces them.
A failure names where it happened (``http_config.headers.X-Token``), never
the rendered text, which may hold a secret.
"""

from __future__ import annotations

from typing import Any

from ruvon_edge.engine.outcome import StepRun
from ruvon_edge.errors import TemplateError
from ruvon_edge.providers.template_engine import TemplateEngine


def template_context(run: StepRun) -> dict[str, Any]:
    """What templates of a step may read: ``state``, ``workflow_id``, ``workflow_type``, ``step_name``."""
    return {
        "state": run.state.model_dump(mode="json"),
        "workflow_id": run.row["id"],
        "workflow_type": run.row["workflow_type"],
        "step_name": run.step.name,
    }


def render_structure(
    engine: TemplateEngine, value: Any, context: dict[str, Any], where: str
) -> Any:
    """Return ``value`` with every string in it rendered; ``TemplateError`` names the failing path."""
    if isinstance(value, str):
        if not any(mark in value for mark in ("{{", "{%", "{#")):
            return value
        try:
            return engine.render(value, context)
        except TemplateError as exc:
            raise TemplateError(f"cannot render {where}: {exc}") from None
        except Exception as exc:  # a third-party engine's own error type: still one clear line
            raise TemplateError(f"cannot render {where}: {type(exc).__name__}: {exc}") from None
    if isinstance(value, dict):
        return {k: render_structure(engine, v, context, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render_structure(engine, v, context, f"{where}[{i}]") for i, v in enumerate(value)]
    return value
