"""OtelObserver: spans checked with the OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import obs_app
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from ruvon_edge import WorkflowEngine
from ruvon_edge.implementations.observability.otel import OtelObserver
from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider


@pytest.fixture
def exporter():
    return InMemorySpanExporter()


@pytest.fixture
def observer(exporter):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OtelObserver(tracer_provider=provider, service_name="billing")


def _by_name(exporter) -> dict:
    return {s.name: s for s in exporter.get_finished_spans()}


async def test_workflow_span_parents_one_span_per_step(observer, exporter):
    """A completed workflow is one OK span whose children are its steps, each as long as the step took."""
    await observer.on_workflow_started("w1", "Order")
    await observer.on_step_executed("w1", "Reserve", {"ok": True}, 250.0)
    await observer.on_step_executed("w1", "Ship", {}, 5.0)
    await observer.on_workflow_status_changed("w1", "ACTIVE", "COMPLETED")
    await observer.on_workflow_completed("w1")
    spans = _by_name(exporter)
    root, reserve, ship = spans["workflow Order"], spans["step Reserve"], spans["step Ship"]
    assert root.parent is None and root.status.status_code is StatusCode.OK
    assert (
        root.attributes["ruvon.workflow_id"] == "w1"
        and root.attributes["service.name"] == "billing"
    )
    for step in (reserve, ship):
        assert step.parent.span_id == root.context.span_id
        assert step.context.trace_id == root.context.trace_id
    assert (reserve.end_time - reserve.start_time) == 250_000_000
    assert [e.name for e in root.events] == ["status_changed"]


async def test_failure_marks_the_workflow_span_as_error(observer, exporter):
    """A failed workflow's span has ERROR status and an exception event carrying the error text."""
    await observer.on_workflow_started("w2", "Order")
    await observer.on_workflow_failed("w2", "step 'Pay' failed: card declined")
    [root] = exporter.get_finished_spans()
    assert (
        root.status.status_code is StatusCode.ERROR and "card declined" in root.status.description
    )
    assert root.events[0].name == "exception"
    assert "card declined" in root.events[0].attributes["exception.message"]


async def test_compensations_are_child_spans_with_their_outcome(observer, exporter):
    """Each compensation is a child span of the workflow; a failed one is ERROR with its error."""
    await observer.on_workflow_started("w3", "Saga")
    await observer.on_compensation_started("w3", "Charge", 1)
    await observer.on_compensation_completed("w3", "Charge", False, "refund service down")
    await observer.on_compensation_started("w3", "Reserve", 0)
    await observer.on_compensation_completed("w3", "Reserve", True)
    await observer.on_workflow_failed("w3", "rolled back")
    spans = _by_name(exporter)
    root = spans["workflow Saga"]
    assert spans["compensate Charge"].status.status_code is StatusCode.ERROR
    assert spans["compensate Reserve"].status.status_code is StatusCode.OK
    assert {spans[n].parent.span_id for n in ("compensate Charge", "compensate Reserve")} == {
        root.context.span_id
    }


async def test_child_workflow_span_nests_under_its_parent(observer, exporter):
    """A sub-workflow announced by its parent gets a span inside the parent's trace."""
    await observer.on_workflow_started("p", "Parent")
    await observer.on_child_workflow_started("p", "c", "Child")
    await observer.on_workflow_started("c", "Child")
    await observer.on_workflow_completed("c")
    await observer.on_workflow_completed("p")
    spans = _by_name(exporter)
    assert spans["workflow Child"].parent.span_id == spans["workflow Parent"].context.span_id


async def test_a_resumed_workflow_gets_a_fresh_span(observer, exporter):
    """Hooks for a workflow this process never saw start (continued after a restart) still produce a finished trace."""
    await observer.on_step_executed("w4", "Ship", {}, 1.0)
    await observer.on_workflow_completed("w4")
    spans = _by_name(exporter)
    assert spans["step Ship"].parent.span_id == spans["workflow w4"].context.span_id


async def test_open_spans_are_bounded(exporter):
    """Beyond max_open_workflows the oldest open workflow span is ended and marked evicted."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    obs = OtelObserver(tracer_provider=provider, max_open_workflows=2)
    for wid in ("a", "b", "c"):
        await obs.on_workflow_started(wid, wid.upper())
    [evicted] = exporter.get_finished_spans()
    assert evicted.name == "workflow A" and evicted.attributes["ruvon.evicted"] is True


async def test_engine_run_produces_a_trace(observer, exporter, tmp_path):
    """A saga run by the engine yields a workflow span with its steps and compensation as children, ERROR when it rolled back."""
    store = SQLitePersistenceProvider(str(tmp_path / "edge.db"))
    async with WorkflowEngine(
        persistence=store, registry=obs_app.registry(), observer=observer
    ) as engine:
        wf = await engine.run((await engine.start_workflow("Charge", {"amount": 500})).id)
    assert wf.status == "FAILED_ROLLED_BACK"
    spans = _by_name(exporter)
    root = spans["workflow Charge"]
    assert (
        root.status.status_code is StatusCode.ERROR and "card declined" in root.status.description
    )
    assert {
        n for n, s in spans.items() if s.parent and s.parent.span_id == root.context.span_id
    } == {
        "step Reserve",
        "compensate Reserve",
    }


def test_without_opentelemetry_the_observer_is_an_importable_no_op():
    """With opentelemetry not installed the module imports and every hook does nothing."""
    script = textwrap.dedent(
        """
        import asyncio, sys
        sys.modules["opentelemetry"] = None  # as if the [otel] extra were not installed
        from ruvon_edge.implementations.observability.otel import OtelObserver
        obs = OtelObserver()
        async def main():
            await obs.on_workflow_started("w", "T")
            await obs.on_step_executed("w", "s", {}, 1.0)
            await obs.on_workflow_failed("w", "x")
        asyncio.run(main())
        print(obs.enabled)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "False"
