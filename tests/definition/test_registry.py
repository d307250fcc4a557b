"""The registry: definitions by type, and callables resolved only inside allowed_modules."""

from __future__ import annotations

import sys
import textwrap

import pytest
from fixtures_defs import models, steps
from pydantic import BaseModel

from ruvon_edge.definition.models import WorkflowDefinition
from ruvon_edge.definition.registry import WorkflowRegistry
from ruvon_edge.errors import DefinitionError

ALLOWED = ["fixtures_defs"]


def _yaml(
    workflow_type: str = "Order", function: str = "fixtures_defs.steps.reserve", extra: str = ""
) -> str:
    return textwrap.dedent(
        f"""
        workflow_type: {workflow_type}
        initial_state_model_path: fixtures_defs.models.OrderState
        steps:
          - name: Reserve
            function: {function}
            compensate_function: fixtures_defs.steps.release
          - name: Review
            type: HUMAN_IN_LOOP
            input_model: fixtures_defs.models.ReviewInput
            function: fixtures_defs.steps.apply_review
        """
    ) + textwrap.dedent(extra)


def test_register_yaml_and_resolve_everything() -> None:
    """A registered definition is retrievable, and its functions and models resolve to the real objects."""
    registry = WorkflowRegistry(allowed_modules=ALLOWED)
    definition = registry.register_yaml(_yaml())
    assert registry.get("Order") is definition
    assert registry.types() == ["Order"]
    assert registry.resolve("fixtures_defs.steps.reserve") is steps.reserve
    assert registry.resolve("fixtures_defs.steps.Handlers.ship") is steps.Handlers.ship
    assert registry.state_model(definition) is models.OrderState
    assert registry.input_model(definition.step("Review")) is models.ReviewInput
    assert registry.input_model(definition.step("Reserve")) is None


def test_unknown_type_lists_known_types() -> None:
    """Asking for an unregistered type names it and the known ones."""
    registry = WorkflowRegistry(allowed_modules=ALLOWED)
    with pytest.raises(DefinitionError, match=r"unknown workflow type 'Nope' \(known: none\)"):
        registry.get("Nope")
    registry.register_yaml(_yaml("B"))
    registry.register_yaml(_yaml("A"))
    with pytest.raises(DefinitionError) as info:
        registry.get("Nope")
    assert str(info.value) == "unknown workflow type 'Nope' (known: A, B)"


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (
            "os.system",
            "steps[0].function: 'os.system' is outside allowed_modules ['fixtures_defs']",
        ),
        ("fixtures_defsX.steps.f", "is outside allowed_modules"),
        ("builtins.eval", "is outside allowed_modules"),
        (
            "fixtures_defs.steps.system",
            "'fixtures_defs.steps.system' is posix.system, outside allowed_modules",
        ),
        (
            "fixtures_defs.steps.missing",
            "steps[0].function: 'fixtures_defs.steps' has no attribute 'missing'",
        ),
        (
            "fixtures_defs.nomodule.f",
            "steps[0].function: 'fixtures_defs' has no attribute 'nomodule'",
        ),
        (
            "fixtures_defs.broken.f",
            "importing 'fixtures_defs.broken' for 'fixtures_defs.broken.f' failed: RuntimeError: broken on purpose",
        ),
        (
            "fixtures_defs.steps.NOT_CALLABLE",
            "'fixtures_defs.steps.NOT_CALLABLE' is not a function",
        ),
        ("fixtures_defs.steps.Handlers", "is not a function"),
        ("fixtures_defs.steps.__builtins__", "dunder"),
        ("fixtures_defs.steps.reserve.__globals__", "dunder"),
        ("reserve", "is not a dotted path"),
    ],
)
def test_bad_function_paths_are_refused(function: str, message: str) -> None:
    """A function outside allowed_modules, missing, failing to import or not callable is refused with its path."""
    registry = WorkflowRegistry(allowed_modules=ALLOWED)
    with pytest.raises(DefinitionError) as info:
        registry.register_yaml(_yaml(function=function))
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert registry.types() == []


def test_disallowed_module_is_never_imported() -> None:
    """A dotted path outside allowed_modules is refused before its module is imported."""
    registry = WorkflowRegistry(allowed_modules=ALLOWED)
    assert "antigravity" not in sys.modules
    with pytest.raises(DefinitionError, match="outside allowed_modules"):
        registry.resolve("antigravity.fly")
    assert "antigravity" not in sys.modules


def test_allowed_means_module_or_submodule() -> None:
    """'app' allows 'app' and 'app.steps' but not 'application'."""
    registry = WorkflowRegistry(allowed_modules=["app"])
    assert registry.is_allowed("app") and registry.is_allowed("app.steps.reserve")
    assert not registry.is_allowed("application") and not registry.is_allowed("ap")


def test_models_must_be_pydantic() -> None:
    """initial_state_model_path and input_model must name pydantic models."""
    registry = WorkflowRegistry(allowed_modules=ALLOWED)
    bad_state = _yaml().replace("models.OrderState", "models.NotAModel")
    with pytest.raises(DefinitionError) as info:
        registry.register_yaml(bad_state)
    assert str(info.value).startswith(
        "initial_state_model_path: 'fixtures_defs.models.NotAModel' is not a pydantic"
    )
    bad_input = _yaml().replace("models.ReviewInput", "steps.reserve")
    with pytest.raises(DefinitionError, match=r"steps\[1\].input_model: .* is not a pydantic"):
        registry.register_yaml(bad_input)


def test_nested_paths_are_checked() -> None:
    """Task functions, merge functions and loop bodies are resolved and checked too."""
    registry = WorkflowRegistry(allowed_modules=ALLOWED)
    definition = {
        "workflow_type": "Nested",
        "steps": [
            {
                "name": "Fan",
                "type": "PARALLEL",
                "tasks": [
                    {"name": "a", "function": "fixtures_defs.steps.score"},
                    {"name": "b", "function": "os.getcwd"},
                ],
            }
        ],
    }
    with pytest.raises(
        DefinitionError, match=r"^steps\[0\]\.tasks\[1\]\.function: 'os.getcwd' is outside"
    ):
        registry.register(definition)
    loop = {
        "workflow_type": "Loop",
        "steps": [
            {
                "name": "L",
                "type": "LOOP",
                "mode": "WHILE",
                "while_condition": "count < 3",
                "loop_body": [{"name": "Inner", "function": "subprocess.run"}],
            }
        ],
    }
    with pytest.raises(
        DefinitionError, match=r"^steps\[0\]\.loop_body\[0\]\.function: 'subprocess.run'"
    ):
        registry.register(loop)
    assert registry.types() == []


def test_register_model_and_dict() -> None:
    """register() accepts a WorkflowDefinition or a dict, and still runs every check."""
    registry = WorkflowRegistry(allowed_modules=ALLOWED)
    definition = WorkflowDefinition(
        workflow_type="Py", steps=[{"name": "A", "function": "fixtures_defs.steps.reserve"}]
    )
    assert registry.register(definition) is definition
    registry.register(
        {"workflow_type": "Dict", "steps": [{"name": "A", "function": "fixtures_defs.steps.score"}]}
    )
    assert registry.types() == ["Dict", "Py"]
    unchecked = WorkflowDefinition(
        workflow_type="Bad",
        steps=[
            {
                "name": "A",
                "type": "DECISION",
                "function": "fixtures_defs.steps.score",
                "routes": [{"default": "Nope"}],
            }
        ],
    )
    with pytest.raises(DefinitionError, match=r"steps\[0\]\.routes\[0\]: unknown step 'Nope'"):
        registry.register(unchecked)


def test_reregistering_replaces() -> None:
    """Registering the same workflow_type again replaces the stored definition."""
    registry = WorkflowRegistry(allowed_modules=ALLOWED)
    first = registry.register_yaml(_yaml())
    second = registry.register_yaml(_yaml(function="fixtures_defs.steps.score"))
    assert registry.get("Order") is second and second != first


def test_register_file_and_directory_all_or_nothing(tmp_path) -> None:
    """A directory registers every YAML file, or none when one of them is bad."""
    good = tmp_path / "good"
    good.mkdir()
    (good / "a.yaml").write_text(_yaml("A"))
    (good / "b.yml").write_text(_yaml("B"))
    (good / "notes.txt").write_text("ignored")
    registry = WorkflowRegistry(allowed_modules=ALLOWED)
    assert [d.workflow_type for d in registry.register_directory(good)] == ["A", "B"]
    assert registry.register_file(good / "a.yaml").workflow_type == "A"

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "c.yaml").write_text(_yaml("C"))
    (mixed / "d.yaml").write_text(_yaml("D", function="os.system"))
    fresh = WorkflowRegistry(allowed_modules=ALLOWED)
    with pytest.raises(DefinitionError) as info:
        fresh.register_directory(mixed)
    assert info.value.source == str(mixed / "d.yaml")
    assert fresh.types() == []


def test_duplicate_type_in_directory(tmp_path) -> None:
    """Two files of one directory declaring the same workflow_type are refused."""
    (tmp_path / "a.yaml").write_text(_yaml("Same"))
    (tmp_path / "b.yaml").write_text(_yaml("Same"))
    registry = WorkflowRegistry(allowed_modules=ALLOWED)
    with pytest.raises(
        DefinitionError, match="duplicate workflow_type 'Same' \\(also in a.yaml\\)"
    ):
        registry.register_directory(tmp_path)
    assert registry.types() == []


def test_permissive_state_model_per_type() -> None:
    """Without initial_state_model_path the state model accepts any fields, one model per type."""
    registry = WorkflowRegistry(allowed_modules=ALLOWED)
    definition = registry.register(
        {
            "workflow_type": "Free",
            "steps": [{"name": "A", "function": "fixtures_defs.steps.reserve"}],
        }
    )
    model = registry.state_model(definition)
    assert issubclass(model, BaseModel)
    assert model(anything=1, nested={"a": [1]}).model_dump() == {
        "anything": 1,
        "nested": {"a": [1]},
    }
    assert registry.state_model(definition) is model


def test_load_snapshot_does_not_register_and_still_guards_resolve() -> None:
    """A stored snapshot loads back without registering, and resolving its callables still honours allowed_modules."""
    registry = WorkflowRegistry(allowed_modules=ALLOWED)
    definition = registry.register_yaml(_yaml())
    snapshot = definition.model_dump(mode="json", by_alias=True)
    other = WorkflowRegistry(allowed_modules=["elsewhere"])
    restored = other.load_snapshot(snapshot)
    assert restored == definition
    assert other.types() == []
    with pytest.raises(DefinitionError, match="outside allowed_modules"):
        other.resolve(restored.steps[0].function)
    with pytest.raises(DefinitionError, match="snapshot: steps: Field required"):
        other.load_snapshot({"workflow_type": "X"})
