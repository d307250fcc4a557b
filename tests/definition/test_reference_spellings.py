"""The reference SDK's documented YAML keys load into our canonical definition (contract §2a)."""

from __future__ import annotations

import textwrap

import pytest

from ruvon_edge.definition.loader import load_yaml
from ruvon_edge.definition.models import MergeConflict, MergeStrategy, StepType
from ruvon_edge.errors import DefinitionError


def _load(text: str):
    return load_yaml(textwrap.dedent(text))


def _error(text: str) -> str:
    with pytest.raises(DefinitionError) as info:
        _load(text)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_top_level_aliases_and_tolerated_keys() -> None:
    """initial_state_model, saga_enabled, automate_start, description and parameters load."""
    definition = _load(
        """
        workflow_type: T
        description: "demo"
        initial_state_model: "fixtures_defs.models.OrderState"
        saga_enabled: true
        automate_start: true
        parameters: {limit: 5, host: "127.0.0.1"}
        steps:
          - name: A
            type: STANDARD
            function: m.f
            description: "first"
            dependencies: []
            required_input: [order_id]
        """
    )
    assert definition.initial_state_model_path == "fixtures_defs.models.OrderState"
    assert definition.saga_mode and definition.automate_start
    assert definition.steps[0].required_input == ["order_id"]


def test_builtins_dict_means_no_state_model() -> None:
    """initial_state_model: builtins.dict keeps the state a plain (permissive) dict."""
    assert (
        _load(
            "workflow_type: T\ninitial_state_model: builtins.dict\nsteps: [{name: A, function: m.f}]\n"
        ).initial_state_model_path
        is None
    )


def test_parallel_and_merge_spellings() -> None:
    """function_path, upper-case merge_strategy and merge_conflict_behavior map onto ours."""
    definition = _load(
        """
        workflow_type: T
        steps:
          - name: P
            type: PARALLEL
            tasks:
              - {name: a, function_path: m.a}
            merge_strategy: "DEEP"
            merge_conflict_behavior: "PREFER_EXISTING"
          - name: Q
            type: PARALLEL
            tasks: [{name: b, function_path: m.b}]
            merge_conflict_behavior: "raise_error"
        """
    )
    p, q = definition.steps
    assert p.tasks[0].function == "m.a" and p.merge_strategy is MergeStrategy.DEEP
    assert p.merge_conflict is MergeConflict.KEEP and q.merge_conflict is MergeConflict.ERROR


def test_http_step_level_keys_and_reference_request_keys(monkeypatch) -> None:
    """output_key/includes at step level, query_params, retry_policy, body mapping and ${VAR:-default} load."""
    monkeypatch.setenv("API_HOST", "127.0.0.1:8080")
    monkeypatch.delenv("API_TOKEN", raising=False)
    step = _load(
        """
        workflow_type: T
        parameters: {page_size: 25}
        steps:
          - name: Fetch
            type: HTTP
            http_config:
              method: "GET"
              url: "http://${API_HOST}/items"
              headers: {Authorization: "Bearer ${API_TOKEN:-none}"}
              query_params: {limit: "{{parameters.page_size}}"}
              body: {a: 1}
              timeout: 10
              retry_policy: {max_attempts: 3, delay_seconds: 2}
            output_key: "items"
            includes: ["body", "status_code"]
        """
    ).steps[0]
    config = step.http_config
    assert config.url == "http://127.0.0.1:8080/items"
    assert config.headers == {"Authorization": "Bearer none"}
    assert config.params == {"limit": 25} and config.json_body == {"a": 1}
    assert config.retry.max_attempts == 3 and config.retry.backoff_seconds == 2
    assert config.output_key == "items" and config.includes == ["body", "status_code"]


def test_fire_and_forget_and_step_type_aliases() -> None:
    """target_workflow_type/initial_data_template, COMPENSATABLE and HUMAN_APPROVAL load."""
    a, b, c = _load(
        """
        workflow_type: T
        steps:
          - name: Spawn
            type: "FIRE_AND_FORGET"
            target_workflow_type: "EmailDelivery"
            initial_data_template: {to: "{{state.email}}"}
          - {name: Charge, type: COMPENSATABLE, function: m.f, compensate_function: m.g}
          - {name: Approve, type: HUMAN_APPROVAL, approval_config: {title: "Bid review"}}
        """
    ).steps
    assert a.workflow_type == "EmailDelivery" and a.initial_data == {"to": "{{state.email}}"}
    assert b.type is StepType.STANDARD and c.type is StepType.HUMAN_IN_LOOP


def test_unsupported_step_types_are_refused_by_name() -> None:
    """WASM and AI_* steps get one clear error naming the type (no field noise)."""
    message = _error(
        """
        workflow_type: T
        steps:
          - {name: A, type: WASM, wasm_config: {wasm_hash: abc}}
          - {name: B, type: AI_INFERENCE, ai_config: {model_name: m}}
        """
    )
    assert message == (
        "steps[0].type: step type WASM is not supported by Ruvon Edge; "
        "steps[1].type: step type AI_INFERENCE is not supported by Ruvon Edge"
    )


def test_every_problem_is_listed_with_suggestions() -> None:
    """A misspelt key gets a did-you-mean, and every problem of the file is in the one line."""
    message = _error(
        """
        workflow_type: T
        steps:
          - {name: A, fucntion: m.f}
          - {name: B, function: m.f, automate_nxt: true}
        """
    )
    assert "steps[0].fucntion: unknown key (did you mean 'function'?)" in message
    assert "steps[1].automate_nxt: unknown key (did you mean 'automate_next'?)" in message


def test_cross_check_problems_are_all_listed() -> None:
    """Two bad route targets and a bad condition are reported together."""
    message = _error(
        """
        workflow_type: T
        steps:
          - name: A
            type: DECISION
            function: m.f
            routes:
              - {condition: "x > 1", target: Nope}
              - {condition: "__import__('os')", target: A}
              - {default: Gone}
        """
    )
    assert "unknown step 'Nope'" in message and "unknown step 'Gone'" in message
    assert "steps[0].routes[1].condition" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "workflow_type: A\nworkflow_type: B\nsteps: []\n",
            "duplicate key 'workflow_type' (first at line 1)",
        ),
        (
            "workflow_type: T\nsteps: [{name: A, function: m.f, retry: {max_attempts: "
            + "9" * 5000
            + "}}]\n",
            "a number has too many digits",
        ),
        ("a: " + "[" * 20000 + "\n", "invalid YAML"),
    ],
)
def test_hostile_yaml_gives_one_clear_line(text: str, expected: str) -> None:
    """Duplicate keys, huge integers and deep nesting are load errors, never an internal error."""
    assert expected in _error(text)


def test_dynamic_injection_both_documented_forms_load() -> None:
    """The rules form and the short {condition, steps} form validate their injected steps."""
    first, second = _load(
        """
        workflow_type: T
        steps:
          - name: Evaluate_Risk
            function: m.f
            dynamic_injection:
              rules:
                - condition_key: "risk_level"
                  value_match: "high"
                  action: "INSERT_AFTER_CURRENT"
                  steps_to_insert:
                    - {name: Manual_Review, type: HUMAN_IN_LOOP}
          - name: Process_Order
            function: m.f
            dynamic_injection:
              condition: "state.amount > 10000"
              steps:
                - {name: High_Value_Review, function: m.g}
              insert_after: "Process_Order"
        """
    ).steps
    assert first.dynamic_injection.rules[0].steps_to_insert[0].name == "Manual_Review"
    assert second.dynamic_injection.rules[0].condition == "state.amount > 10000"


def test_injected_steps_are_checked_at_load() -> None:
    """A bad injected step is a load error with its path."""
    message = _error(
        """
        workflow_type: T
        steps:
          - name: A
            function: m.f
            dynamic_injection:
              rules:
                - {condition_key: k, value_match: 1, steps_to_insert: [{name: B, type: ASYNC}]}
        """
    )
    assert (
        "steps[0].dynamic_injection.rules[0].steps_to_insert[0].function: required for a ASYNC step"
        in message
    )
