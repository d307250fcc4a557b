"""``OtelObserver``: OpenTelemetry traces of workflows -- one span per workflow, one child per step.

The workflow span opens at ``on_workflow_started`` and ends at completion or
failure (status OK or ERROR, the error recorded as an exception event).
Each executed step becomes a child span whose start is back-dated by the
step's ``duration_ms``; compensations are child spans too; status changes,
pauses, resumes and child workflows are events on the workflow span. A
workflow continued by another process (after a restart) gets a fresh
workflow span on its first hook there.

Without the ``[otel]`` extra the observer imports and does nothing. Spans of
workflows that never finish (waiting for days) are bounded: beyond
``max_open_workflows`` the oldest is ended, marked ``ruvon.evicted``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from ruvon_edge.providers.observer import WorkflowObserver

try:  # the [otel] extra; without it every hook is a no-op
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode
except ImportError:  # pragma: no cover - depends on the install
    trace = None  # type: ignore[assignment]


class OtelObserver(WorkflowObserver):
    """Traces workflows with ``tracer_provider`` (default: the global one)."""

    def __init__(
        self,
        tracer_provider: Any = None,
        service_name: str = "ruvon",
        *,
        max_open_workflows: int = 10000,
    ) -> None:
        self.service_name = service_name
        self.max_open_workflows = max_open_workflows
        self.enabled = trace is not None
        self._tracer: Any = None
        if self.enabled:
            provider = tracer_provider or trace.get_tracer_provider()
            self._tracer = provider.get_tracer(
                "ruvon_edge", attributes={"service.name": service_name}
            )
        self._spans: OrderedDict[str, Any] = OrderedDict()
        self._compensations: dict[tuple[str, str], Any] = {}
        self._parents: dict[str, str] = {}

    # -- span bookkeeping ------------------------------------------------------------
    def _open(self, workflow_id: Any, workflow_type: str | None = None) -> Any:
        """Return the workflow's span, starting one if this process has none."""
        wid = str(workflow_id)
        span = self._spans.get(wid)
        if span is not None:
            return span
        parent = self._spans.get(self._parents.pop(wid, ""))
        context = trace.set_span_in_context(parent) if parent is not None else None
        attributes = {"ruvon.workflow_id": wid, "service.name": self.service_name}
        if workflow_type:
            attributes["ruvon.workflow_type"] = workflow_type
        span = self._tracer.start_span(
            f"workflow {workflow_type or wid}", context=context, attributes=attributes
        )
        self._spans[wid] = span
        while len(self._spans) > self.max_open_workflows:
            _, oldest = self._spans.popitem(last=False)
            oldest.set_attribute("ruvon.evicted", True)
            oldest.end()
        return span

    def _child(
        self, workflow_id: Any, name: str, start_ns: int | None = None, **attributes: Any
    ) -> Any:
        context = trace.set_span_in_context(self._open(workflow_id))
        attrs = {
            "ruvon.workflow_id": str(workflow_id),
            **{k: v for k, v in attributes.items() if v is not None},
        }
        return self._tracer.start_span(name, context=context, start_time=start_ns, attributes=attrs)

    def _close(self, workflow_id: Any, status: Any) -> None:
        span = self._open(workflow_id)
        del self._spans[str(workflow_id)]
        span.set_status(status)
        span.end()

    # -- hooks -----------------------------------------------------------------------
    async def on_workflow_started(self, workflow_id, workflow_type: str) -> None:
        if self.enabled:
            self._open(workflow_id, workflow_type)

    async def on_step_executed(
        self, workflow_id, step_name: str, result: Any, duration_ms: float | None = None
    ) -> None:
        if not self.enabled:
            return
        end_ns = time.time_ns()
        start_ns = end_ns - int(duration_ms * 1_000_000) if duration_ms is not None else end_ns
        span = self._child(workflow_id, f"step {step_name}", start_ns, **{"ruvon.step_name": step_name,
                                                                          "ruvon.duration_ms": duration_ms})  # fmt: skip
        if isinstance(result, BaseException):
            span.record_exception(result)
            span.set_status(Status(StatusCode.ERROR, str(result)))
        span.end(end_time=end_ns)

    async def on_workflow_completed(self, workflow_id) -> None:
        if self.enabled:
            self._close(workflow_id, Status(StatusCode.OK))

    async def on_workflow_failed(self, workflow_id, error: Any) -> None:
        if not self.enabled:
            return
        span = self._open(workflow_id)
        if isinstance(error, BaseException):
            span.record_exception(error)
        else:
            span.add_event("exception", {"exception.message": str(error)})
        self._close(workflow_id, Status(StatusCode.ERROR, str(error)))

    async def on_workflow_status_changed(
        self, workflow_id, old_status: str, new_status: str
    ) -> None:
        if self.enabled:
            span = self._open(workflow_id)
            span.set_attribute("ruvon.status", str(new_status))
            span.add_event(
                "status_changed", {"old_status": str(old_status), "new_status": str(new_status)}
            )

    async def on_workflow_paused(self, workflow_id, step_name: str, reason: str) -> None:
        if self.enabled:
            self._open(workflow_id).add_event(
                "paused", {"step_name": str(step_name), "reason": str(reason)}
            )

    async def on_workflow_resumed(self, workflow_id, step_name: str, resume_data: Any) -> None:
        if self.enabled:
            self._open(workflow_id).add_event("resumed", {"step_name": str(step_name)})

    async def on_compensation_started(self, workflow_id, step_name: str, step_index: int) -> None:
        if self.enabled:
            span = self._child(workflow_id, f"compensate {step_name}", None, **{"ruvon.step_name": step_name,
                                                                               "ruvon.step_index": step_index})  # fmt: skip
            self._compensations[(str(workflow_id), step_name)] = span

    async def on_compensation_completed(
        self, workflow_id, step_name: str, success: bool, error: Any = None
    ) -> None:
        if not self.enabled:
            return
        span = self._compensations.pop((str(workflow_id), step_name), None)
        span = span or self._child(
            workflow_id, f"compensate {step_name}", None, **{"ruvon.step_name": step_name}
        )
        if success:
            span.set_status(Status(StatusCode.OK))
        else:
            span.add_event("exception", {"exception.message": str(error)})
            span.set_status(Status(StatusCode.ERROR, str(error)))
        span.end()

    async def on_child_workflow_started(self, parent_id, child_id, child_type: str) -> None:
        if self.enabled:
            self._open(parent_id).add_event(
                "child_started", {"child_id": str(child_id), "child_type": str(child_type)}
            )
            if str(child_id) not in self._spans:
                self._parents[str(child_id)] = str(parent_id)
