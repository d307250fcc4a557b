"""Loading definitions: YAML in, checked models out, one-line errors with the path of the problem."""

from __future__ import annotations

import textwrap

import pytest

from ruvon_edge.definition.loader import format_loc, load_dict, load_file, load_yaml
from ruvon_edge.definition.models import StepType, WorkflowDefinition
from ruvon_edge.errors import DefinitionError, ExpressionError

ORDER_YAML = textwrap.dedent(
    """
    workflow_type: OrderProcessing
    workflow_version: 1.0
    initial_state_model_path: fixtures_defs.models.OrderState
    saga_mode: true
    steps:
      - name: Reserve
        function: fixtures_defs.steps.reserve
        compensate_function: fixtures_defs.steps.release
        retry: {max_attempts: 3, backoff_seconds: 0.5}
        timeout_seconds: 10
        automate_next: true
      - name: Route
        type: DECISION
        function: fixtures_defs.steps.score
        routes:
          - {condition: "state.amount > 50", next_step: Review}
          - {condition: "country in ['DE', 'FR']", target: Ship}
          - {default: Ship}
      - name: Review
        type: HUMAN_IN_LOOP
        input_model: fixtures_defs.models.ReviewInput
      - name: Ship
        type: HTTP
        http_config: {method: POST, url: "https://example.test/ship/{{ state.order_id }}", json: {id: "{{ state.order_id }}"}}
    """
)


def _error(text: str) -> DefinitionError:
    with pytest.raises(DefinitionError) as info:
        load_yaml(textwrap.dedent(text))
    assert "\n" not in str(info.value)
    return info.value


def test_contract_example_loads() -> None:
    """The contract's OrderProcessing example loads with its types, routes and HTTP config."""
    definition = load_yaml(ORDER_YAML)
    assert definition.workflow_type == "OrderProcessing"
    assert definition.workflow_version == "1.0"
    assert [s.type for s in definition.steps] == [
        StepType.STANDARD,
        StepType.DECISION,
        StepType.HUMAN_IN_LOOP,
        StepType.HTTP,
    ]
    route = definition.step("Route").routes
    assert [r.destination for r in route] == ["Review", "Ship", "Ship"]
    assert definition.steps[0].retry.max_attempts == 3
    assert definition.step("Ship").http_config.json_body == {"id": "{{ state.order_id }}"}


def test_snapshot_round_trip() -> None:
    """A definition dumped as JSON by alias loads back equal (what the engine stores per instance)."""
    definition = load_yaml(ORDER_YAML)
    snapshot = definition.model_dump(mode="json", by_alias=True)
    assert load_dict(snapshot) == definition


def test_malformed_yaml_reports_line_and_column() -> None:
    """Broken YAML is refused with the line and column of the problem."""
    error = _error(
        """
        workflow_type: X
        steps:
          - name: A
            function: [unclosed
        """
    )
    assert "invalid YAML at line" in str(error) and "column" in str(error)


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("", "must be a mapping, got nothing"),
        ("- a\n- b\n", "must be a mapping, got a list"),
        ("workflow_type: X\n", "steps: Field required"),
        ("workflow_type: X\nsteps: []\n", "steps: List should have at least 1 item"),
        (
            "workflow_type: X\nsteps:\n  - {name: A, function: m.f}\n  - {name: B, function: m.f, fucntion: m.g}\n",
            "steps[1].fucntion: unknown key",
        ),
        (
            "workflow_type: X\nsteps:\n  - {name: A, type: SOMETIMES, function: m.f}\n",
            "steps[0].type: Input should be",
        ),
        (
            "workflow_type: X\nsteps:\n  - {name: A, function: m.f, retry: {max_attempts: 0}}\n",
            "steps[0].retry.max_attempts: Input should be greater than or equal to 1",
        ),
        (
            "workflow_type: X\nsteps:\n  - name: A\n    type: DECISION\n    function: m.f\n    routes:\n      - {condition: 'x > 1'}\n",
            "steps[0].routes[0]: a route needs 'condition' and 'next_step'",
        ),
        (
            "workflow_type: X\nsteps:\n  - {name: A, type: HTTP, http_config: {method: POST}}\n",
            "steps[0].http_config.url: Field required",
        ),
    ],
)
def test_shape_errors_carry_the_path(yaml_text: str, message: str) -> None:
    """A wrong key or type is refused with the contract-style path (``steps[1].fucntion``)."""
    assert message in str(_error(yaml_text))


def test_unknown_route_target() -> None:
    """A route to a step that does not exist names the route and the unknown step."""
    error = _error(
        """
        workflow_type: X
        steps:
          - {name: A, function: m.f}
          - {name: B, function: m.f}
          - name: C
            type: DECISION
            function: m.f
            routes:
              - {condition: "amount > 1", next_step: Shpi}
          - {name: Ship, function: m.f}
        """
    )
    assert str(error) == "steps[2].routes[0]: unknown step 'Shpi'"
    assert error.path == "steps[2].routes[0]"


def test_unsafe_condition_is_an_expression_error_with_path() -> None:
    """A condition outside the safe language is an ExpressionError at load, with the route's path."""
    with pytest.raises(ExpressionError) as info:
        load_yaml(
            textwrap.dedent(
                """
                workflow_type: X
                steps:
                  - name: A
                    type: DECISION
                    function: m.f
                    routes:
                      - {condition: "state.amount > 1", next_step: B}
                      - {condition: "__import__('os').system('id')", next_step: B}
                  - {name: B, function: m.f}
                """
            )
        )
    assert str(info.value).startswith("steps[0].routes[1].condition: ")
    assert "method call" in str(info.value)


@pytest.mark.parametrize(
    ("step_yaml", "message"),
    [
        ("{name: A}", "steps[0].function: required for a STANDARD step"),
        ("{name: A, type: DECISION}", "steps[0]: a DECISION step needs 'function' or 'routes'"),
        ("{name: A, type: ASYNC}", "steps[0].function: required for a ASYNC step"),
        ("{name: A, type: PARALLEL}", "steps[0]: a PARALLEL step needs 'tasks' or 'iterate_over'"),
        (
            "{name: A, type: PARALLEL, iterate_over: items}",
            "needs 'tasks' or 'iterate_over' with 'task_function'",
        ),
        ("{name: A, type: HTTP}", "steps[0].http_config: required for an HTTP step"),
        (
            "{name: A, type: SUB_WORKFLOW}",
            "steps[0].workflow_type: required for a SUB_WORKFLOW step",
        ),
        ("{name: A, type: FIRE_AND_FORGET}", "steps[0].workflow_type: required"),
        ("{name: A, type: LOOP, function: m.f}", "steps[0].mode: required for a LOOP step"),
        (
            "{name: A, type: LOOP, mode: ITERATE}",
            "steps[0]: a LOOP step needs 'loop_body' or 'function'",
        ),
        (
            "{name: A, type: LOOP, mode: ITERATE, function: m.f}",
            "steps[0].iterate_over: required for an ITERATE loop",
        ),
        (
            "{name: A, type: LOOP, mode: WHILE, function: m.f}",
            "steps[0].while_condition: required for a WHILE loop",
        ),
        (
            "{name: A, type: LOOP, mode: WHILE, function: m.f, while_condition: 'lambda: 1'}",
            "steps[0].while_condition: lambda is not allowed",
        ),
        (
            "{name: A, type: PARALLEL, iterate_over: 'x.__class__', task_function: m.f}",
            "steps[0].iterate_over: the name '__class__'",
        ),
        (
            "{name: A, type: PARALLEL, tasks: [{name: t, function: m.f}, {name: t, function: m.g}]}",
            "steps[0].tasks[1].name: duplicate task name 't'",
        ),
    ],
)
def test_step_type_requirements(step_yaml: str, message: str) -> None:
    """Each step type's required fields are checked at load, naming the field and the type."""
    assert message in str(_error(f"workflow_type: X\nsteps:\n  - {step_yaml}\n"))


def test_human_step_may_omit_function() -> None:
    """A HUMAN_IN_LOOP step without a function is valid (it only waits for input)."""
    definition = load_yaml("workflow_type: X\nsteps:\n  - {name: Wait, type: HUMAN_IN_LOOP}\n")
    assert definition.steps[0].function is None


def test_duplicate_step_names() -> None:
    """Two steps with one name are refused, pointing at the second and the first."""
    error = _error(
        "workflow_type: X\nsteps:\n  - {name: A, function: m.f}\n  - {name: A, function: m.g}\n"
    )
    assert str(error) == "steps[1].name: duplicate step name 'A' (first at steps[0])"


def test_default_route_must_be_last() -> None:
    """A default route followed by more routes is refused (the later routes could never match)."""
    error = _error(
        """
        workflow_type: X
        steps:
          - name: A
            type: DECISION
            function: m.f
            routes:
              - {default: B}
              - {condition: "x", next_step: B}
          - {name: B, function: m.f}
        """
    )
    assert "steps[0].routes[0]: the default route must be the last" in str(error)


def test_loop_body_is_checked_recursively() -> None:
    """Problems inside a LOOP's body are reported with the nested path."""
    error = _error(
        """
        workflow_type: X
        steps:
          - name: L
            type: LOOP
            mode: WHILE
            while_condition: "count < 3"
            loop_body:
              - {name: Inner, function: m.f}
              - {name: Bad, type: HTTP}
        """
    )
    assert str(error) == "steps[0].loop_body[1].http_config: required for an HTTP step"


def test_file_errors_name_the_file(tmp_path) -> None:
    """Errors from a file carry the file name as their source."""
    path = tmp_path / "broken.yaml"
    path.write_text("workflow_type: X\nsteps:\n  - {name: A}\n")
    with pytest.raises(DefinitionError) as info:
        load_file(path)
    assert info.value.source == str(path)
    assert str(info.value) == f"{path}: steps[0].function: required for a STANDARD step"
    with pytest.raises(DefinitionError, match="cannot read file"):
        load_file(tmp_path / "missing.yaml")


def test_yaml_alias_bomb_is_refused_quickly() -> None:
    """A billion-laughs YAML is refused by size before pydantic expands it."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    bomb = (
        "\n".join(lines)
        + "\nworkflow_type: X\nsteps: [{name: A, function: m.f, initial_data: {b: *a8}}]\n"
    )
    with pytest.raises(DefinitionError, match="expands to more than"):
        load_yaml(bomb)


def test_python_objects_in_yaml_are_refused() -> None:
    """yaml.safe_load refuses python object tags, so YAML cannot construct objects."""
    error = _error("workflow_type: !!python/object/apply:os.system ['true']\nsteps: []\n")
    assert "invalid YAML" in str(error)


def test_format_loc() -> None:
    """Pydantic locations become contract-style paths."""
    assert format_loc(("steps", 2, "routes", 0, "next_step")) == "steps[2].routes[0].next_step"


def test_definition_models_are_frozen() -> None:
    """A loaded definition cannot be changed in place."""
    definition = load_yaml(ORDER_YAML)
    with pytest.raises(ValueError):
        definition.steps[0].name = "Other"  # type: ignore[misc]
    assert isinstance(definition, WorkflowDefinition)


def test_a_bad_schedule_is_refused_at_load_with_its_path():
    """A cron expression that cannot be parsed is a DefinitionError at `schedule`, not a crash of `serve`."""
    from ruvon_edge.definition.loader import load_yaml

    text = "workflow_type: T\nschedule: '61 * * * *'\nsteps:\n  - {name: A, type: HUMAN_IN_LOOP}\n"
    with pytest.raises(DefinitionError, match=r"^schedule: "):
        load_yaml(text)
