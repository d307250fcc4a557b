"""The public surface stays what the contract says, and importing it stays cheap."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import ruvon_edge

ROOT = Path(__file__).resolve().parents[1]
HEAVY = [
    "asyncpg",
    "redis",
    "celery",
    "opentelemetry",
    "uvicorn",
    "httpx",
    "jinja2",
    "structlog",
    "tenacity",
]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return set(json.loads(out.stdout))


def test_all_names_resolve_and_match_the_contract():
    """Every name in __all__ imports, and the contract's names are all there."""
    contract = {
        "WorkflowEngine",
        "WorkflowRegistry",
        "StepContext",
        "WorkflowJumpDirective",
        "WorkflowPauseDirective",
        "StartSubWorkflowDirective",
        "WorkflowStatus",
    }
    assert contract <= set(ruvon_edge.__all__)
    for name in ruvon_edge.__all__:
        assert getattr(ruvon_edge, name) is not None, name


def test_importing_ruvon_edge_loads_no_server_or_lazy_library():
    """`import ruvon_edge` pulls in none of the heavy or first-use libraries."""
    loaded = _modules_after("import ruvon_edge")
    assert not {m.split(".")[0] for m in loaded} & set(HEAVY)


def test_building_an_engine_with_sqlite_loads_no_server_library():
    """An edge engine on SQLite never imports asyncpg, redis, celery, opentelemetry or uvicorn."""
    loaded = _modules_after(
        "from ruvon_edge import WorkflowEngine, WorkflowRegistry\n"
        "from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider\n"
        "WorkflowEngine(SQLitePersistenceProvider(':memory:'), WorkflowRegistry())"
    )
    assert not {m.split(".")[0] for m in loaded} & {
        "asyncpg",
        "redis",
        "celery",
        "opentelemetry",
        "uvicorn",
    }


def test_contract_module_paths_export_their_classes():
    """Each implementation named in the contract lives at its module path."""
    import importlib

    table = {
        "ruvon_edge.implementations.persistence.sqlite": "SQLitePersistenceProvider",
        "ruvon_edge.implementations.persistence.memory": "MemoryPersistenceProvider",
        "ruvon_edge.implementations.persistence.postgres": "PostgresPersistenceProvider",
        "ruvon_edge.implementations.persistence.redis": "RedisPersistenceProvider",
        "ruvon_edge.implementations.execution.sync": "SyncExecutionProvider",
        "ruvon_edge.implementations.execution.thread_pool": "ThreadPoolExecutionProvider",
        "ruvon_edge.implementations.observability.logging": "LoggingObserver",
        "ruvon_edge.implementations.observability.otel": "OtelObserver",
        "ruvon_edge.implementations.observability.events": "EventPublisherObserver",
        "ruvon_edge.implementations.expression_evaluator.simple": "SimpleExpressionEvaluator",
        "ruvon_edge.implementations.templating.jinja2": "Jinja2TemplateEngine",
        "ruvon_edge.providers.persistence": "PersistenceProvider",
        "ruvon_edge.providers.execution": "ExecutionProvider",
        "ruvon_edge.providers.observer": "WorkflowObserver",
    }
    for module, name in table.items():
        assert hasattr(importlib.import_module(module), name), f"{module}.{name}"


def test_persistence_errors_have_the_contract_hierarchy():
    """WorkflowNotFoundError is a PersistenceError and a ValueError; PersistenceError is a RuntimeError."""
    from ruvon_edge.providers import persistence as p

    assert issubclass(p.PersistenceError, RuntimeError)
    assert issubclass(p.WorkflowNotFoundError, p.PersistenceError) and issubclass(
        p.WorkflowNotFoundError, ValueError
    )
    assert issubclass(p.DuplicateIdempotencyKeyError, p.PersistenceError)
    assert issubclass(p.TaskNotFoundError, p.PersistenceError)


def test_persistence_provider_composes_the_roles_with_the_reference_abstract_methods():
    """PersistenceProvider is a WorkflowStore, TaskQueue and EdgeSyncStore whose abstract methods are the SDK's."""
    from ruvon_edge.providers import persistence as p

    assert all(
        issubclass(p.PersistenceProvider, role)
        for role in (p.WorkflowStore, p.TaskQueue, p.EdgeSyncStore)
    )
    assert p.PersistenceProvider.__abstractmethods__ == {
        "initialize", "close", "save_workflow", "load_workflow", "list_workflows", "log_execution",
        "record_metric", "claim_next_task", "heartbeat_update", "scan_stale_heartbeats",
    }  # fmt: skip
    assert p.EdgeSyncStore.__abstractmethods__ == {"initialize", "close"}


def test_import_rules_hold():
    """The import-linter contracts in pyproject.toml (the architecture's arrows) are kept."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:]
