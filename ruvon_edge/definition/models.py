"""Frozen models of a workflow definition, as read from YAML or built in Python.

Field names keep the reference SDK's meaning. Cross-field checks (route
targets exist, expressions are safe, callables are allowed) live in
``loader``/``registry``; these models check shape and types only.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class StepType(StrEnum):
    """The kinds of step a definition may use."""

    STANDARD = "STANDARD"
    DECISION = "DECISION"
    PARALLEL = "PARALLEL"
    ASYNC = "ASYNC"
    HTTP = "HTTP"
    HUMAN_IN_LOOP = "HUMAN_IN_LOOP"
    SUB_WORKFLOW = "SUB_WORKFLOW"
    LOOP = "LOOP"
    FIRE_AND_FORGET = "FIRE_AND_FORGET"
    AUDIT_EMIT = "AUDIT_EMIT"
    CRON_SCHEDULE = "CRON_SCHEDULE"


class MergeStrategy(StrEnum):
    """How a step's result dict is merged into the state."""

    SHALLOW = "shallow"  # result keys overwrite top-level state keys
    DEEP = "deep"  # nested dicts merge key by key
    REPLACE = "replace"  # the result becomes the whole state
    APPEND = "append"  # lists are extended, other keys behave as shallow


class MergeConflict(StrEnum):
    """What happens when a result key already holds a different value."""

    OVERWRITE = "overwrite"
    KEEP = "keep"  # the existing value wins
    ERROR = "error"  # the step fails


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, defer_build=True)


class RetryPolicy(_Frozen):
    """Attempts and exponential backoff for a failing step (tenacity underneath)."""

    max_attempts: int = Field(default=1, ge=1, le=100)
    backoff_seconds: float = Field(default=0.0, ge=0, le=3600)
    backoff_multiplier: float = Field(default=2.0, ge=1, le=10)
    max_backoff_seconds: float = Field(default=60.0, ge=0, le=3600)


class Route(_Frozen):
    """``{condition, next_step}`` (``target`` is a synonym) or ``{default: step}``."""

    condition: str | None = None
    next_step: str | None = Field(default=None, alias="target")
    default: str | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Route:
        if self.default is not None:
            if self.condition is not None or self.next_step is not None:
                raise ValueError("a default route takes only 'default'")
        elif self.condition is None or self.next_step is None:
            raise ValueError(
                "a route needs 'condition' and 'next_step' (or 'target'), or 'default'"
            )
        return self

    @property
    def destination(self) -> str:
        """The step this route leads to."""
        return self.default if self.default is not None else self.next_step  # type: ignore[return-value]


class ParallelTask(_Frozen):
    """One static task of a PARALLEL step."""

    name: str
    function: str
    kwargs: dict[str, Any] = Field(default_factory=dict)


class HttpConfig(_Frozen):
    """Request of an HTTP step; string values may hold ``{{ }}`` templates."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    body: str | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=600, alias="timeout")
    expected_status: list[int] = Field(default_factory=lambda: [200, 201, 202, 204])
    retry: RetryPolicy | None = None
    output_key: str | None = None
    includes: list[Literal["status_code", "headers", "body"]] | None = None
    response_mapping: dict[str, str] = Field(default_factory=dict)


class AuditConfig(_Frozen):
    """What an AUDIT_EMIT step writes to the audit trail (string payload values may be templates)."""

    event_type: str = Field(min_length=1, max_length=200)
    severity: str = "INFO"
    payload: dict[str, Any] = Field(default_factory=dict)
    retention_days: int = Field(default=2555, ge=1)
    tags: list[str] = Field(default_factory=list)
    pii_fields: list[str] = Field(default_factory=list)


class InjectionRule(_Frozen):
    """Insert steps into this instance when the state matches.

    The reference's form tests one state path (``condition_key`` with
    ``value_match`` or ``value_is_not``); ``condition`` is a §3 expression.
    """

    condition_key: str | None = None
    value_match: Any = None
    value_is_not: list[Any] | None = None
    condition: str | None = None
    action: Literal["INSERT_AFTER_CURRENT"] = "INSERT_AFTER_CURRENT"
    steps_to_insert: list[StepDefinition] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_test(self) -> InjectionRule:
        if (self.condition is None) == (self.condition_key is None):
            raise ValueError("a rule needs 'condition_key' or 'condition' (one of them)")
        if (
            self.condition_key is not None
            and self.value_is_not is None
            and "value_match" not in self.model_fields_set
        ):
            raise ValueError("'condition_key' needs 'value_match' or 'value_is_not'")
        return self


class DynamicInjection(_Frozen):
    """``dynamic_injection`` of a step: rules checked after the step completed."""

    rules: list[InjectionRule] = Field(min_length=1)


class StepDefinition(_Frozen):
    """One step of a workflow."""

    name: str = Field(min_length=1, max_length=200)
    type: StepType = StepType.STANDARD
    description: str | None = None
    function: str | None = None
    compensate_function: str | None = None
    input_model: str | None = None
    retry: RetryPolicy | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)
    automate_next: bool = False
    retry_safe: bool = False
    required_input: list[str] = Field(default_factory=list)  # the reference's legacy check, kept
    dependencies: list[str] = Field(default_factory=list)  # informational, as in the reference
    dynamic_injection: DynamicInjection | None = None
    routes: list[Route] = Field(default_factory=list)
    merge_strategy: MergeStrategy = MergeStrategy.SHALLOW
    merge_conflict: MergeConflict = MergeConflict.OVERWRITE
    # PARALLEL
    tasks: list[ParallelTask] = Field(default_factory=list)
    iterate_over: str | None = None
    task_function: str | None = None
    item_var_name: str = "item"
    batch_size: int | None = Field(default=None, ge=1)
    allow_partial_success: bool = False
    merge_function: str | None = None
    # HTTP
    http_config: HttpConfig | None = None
    # SUB_WORKFLOW / FIRE_AND_FORGET
    workflow_type: str | None = None
    initial_data: dict[str, Any] = Field(default_factory=dict)
    # LOOP
    mode: Literal["ITERATE", "WHILE"] | None = None
    while_condition: str | None = None
    max_iterations: int = Field(default=1000, ge=1)
    on_max_iterations: Literal["stop", "fail"] = "stop"
    loop_body: list[StepDefinition] = Field(default_factory=list)
    # AUDIT_EMIT
    audit_config: AuditConfig | None = None
    # CRON_SCHEDULE (also workflow_type and initial_data)
    schedule_name: str | None = None
    cron_expression: str | None = None
    # HUMAN_IN_LOOP: the reference's approval metadata, shown with the wait
    approval_config: dict[str, Any] | None = None


class WorkflowDefinition(_Frozen):
    """A whole workflow: its type, version, state model and steps in order."""

    workflow_type: str = Field(min_length=1, max_length=200)
    workflow_version: str = "1"
    description: str | None = None
    initial_state_model_path: str | None = None
    saga_mode: bool = False
    automate_start: bool = False
    parameters: dict[str, Any] = Field(default_factory=dict)
    schedule: str | None = None
    steps: list[StepDefinition] = Field(min_length=1)

    @field_validator("workflow_version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        # YAML reads `workflow_version: 1.0` as a float; users mean the text.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    def step(self, name: str) -> StepDefinition:
        """Return the step called ``name`` (KeyError if absent)."""
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    def index_of(self, name: str) -> int:
        """Return the position of step ``name``."""
        for i, s in enumerate(self.steps):
            if s.name == name:
                return i
        raise KeyError(name)
