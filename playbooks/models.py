"""Typed models of the action catalog, parsed once from YAML at load."""

from __future__ import annotations

import math
import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ServiceKind = Literal["frontend", "service", "database", "cache", "queue"]
SERVICE_KINDS: tuple[str, ...] = ("frontend", "service", "database", "cache", "queue")
EXECUTOR_KINDS: tuple[str, ...] = ("sim", "webhook", "shell", "kubernetes")
DEFAULT_TIMEOUT_S = 300.0
MAX_TIMEOUT_S = 3600.0


class Risk(StrEnum):
    """How much harm an action can do when it goes wrong, in increasing order."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Return 0 for low up to 3 for critical, for comparisons."""
        return list(Risk).index(self)


class ParamSpec(BaseModel):
    """One typed parameter of an action, with the checks applied to every value."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    type: Literal["int", "float", "str", "bool", "enum"]
    description: str = ""
    default: Any = None
    min: float | None = None
    max: float | None = None
    regex: str | None = None
    choices: tuple[str, ...] | None = None
    required: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> ParamSpec:
        if self.type == "enum" and not self.choices:
            raise ValueError("an enum parameter needs 'choices'")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex {self.regex!r} does not compile: {exc}") from None
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        if self.default is not None:
            self.check("default", self.default)
        return self

    def check(self, name: str, value: Any) -> Any:
        """Return the value converted to the parameter's type, or raise ValueError saying what was expected."""
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            raise ValueError(f"parameter {name}: expected true or false, got {value!r}")
        if self.type in ("int", "float"):
            if isinstance(value, bool):
                raise ValueError(f"parameter {name}: expected a number, got {value!r}")
            try:
                number: float = int(str(value), 10) if self.type == "int" else float(value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"parameter {name}: expected {'an integer' if self.type == 'int' else 'a number'}, got {value!r}"
                ) from None
            if not math.isfinite(number):  # nan compares false with everything, so it would pass min and max
                raise ValueError(f"parameter {name}: expected a finite number, got {value!r}")
            if self.min is not None and number < self.min:
                raise ValueError(f"parameter {name}: {number} is below the minimum {self.min:g}")
            if self.max is not None and number > self.max:
                raise ValueError(f"parameter {name}: {number} is above the maximum {self.max:g}")
            return number
        text = value if isinstance(value, str) else None
        if text is None:
            raise ValueError(f"parameter {name}: expected text, got {value!r}")
        if self.type == "enum" and self.choices and text not in self.choices:
            raise ValueError(f"parameter {name}: expected one of {', '.join(self.choices)}, got {text!r}")
        if self.regex is not None and re.fullmatch(self.regex, text) is None:
            raise ValueError(f"parameter {name}: {text!r} does not match {self.regex}")
        return text


class RateLimit(BaseModel):
    """At most `max` runs of the action per target within `per_s` seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max: int = Field(ge=1)
    per_s: int = Field(ge=1)


class Blast(BaseModel):
    """How many replicas of the target an action adds or takes out of service, for blast-radius limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    effect: Literal["add", "remove"]
    count: int | None = Field(default=None, ge=1)
    count_param: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Blast:
        if (self.count is None) == (self.count_param is None):
            raise ValueError("give exactly one of 'count' and 'count_param'")
        return self

    def replicas(self, params: dict[str, Any]) -> int:
        """Return the number of replicas the action touches with these (validated) parameters."""
        if self.count is not None:
            return self.count
        return int(params.get(self.count_param or "", 0))


class Action(BaseModel):
    """One remediation action: what it does, where it applies, how risky it is and how each executor runs it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=1)
    scope: Literal["service", "global"] = "service"
    applies_to: tuple[ServiceKind, ...] = ()
    risk: Risk
    approver_role: str = "oncall"
    rollback: str | None = None
    duration_s: float = Field(default=60.0, ge=0)
    # how long the bot waits for an executor to perform it before recording `unknown` (not duration_s,
    # the time the fix takes to show its effect)
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0, le=MAX_TIMEOUT_S)
    cost_usd: float = Field(default=0.0, ge=0)
    # how long after the action completes the bot waits before judging it (docs/verification.md);
    # None: the action's duration_s. `rollback` names the inverse a harmful verdict undoes it with.
    settle_s: float | None = Field(default=None, ge=0, le=MAX_TIMEOUT_S)
    # may run on one replica first, verified, then on the rest ("canary first" on the approval)
    canary: bool = False
    # after a canary that passed, the rest of the rollout waits for a second approval (docs/verification.md)
    canary_second_approval: bool = False
    rate_limit: RateLimit | None = None
    blast: Blast | None = None
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    executors: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("executors")
    @classmethod
    def _known_executors(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        unknown = sorted(set(value) - set(EXECUTOR_KINDS))
        if unknown:
            raise ValueError(
                f"unknown executor(s) {', '.join(unknown)}; expected some of {', '.join(EXECUTOR_KINDS)}"
            )
        return value

    @model_validator(mode="after")
    def _scope_consistent(self) -> Action:
        if self.scope == "service" and not self.applies_to:
            raise ValueError("a service-scoped action needs 'applies_to' (the service kinds it acts on)")
        if self.blast is not None and self.blast.count_param and self.blast.count_param not in self.params:
            raise ValueError(f"blast.count_param {self.blast.count_param!r} is not a parameter of the action")
        if self.canary_second_approval and not self.canary:
            raise ValueError("canary_second_approval needs canary: true")
        return self

    @property
    def settle(self) -> float:
        """Return the settle time in seconds: ``settle_s``, else ``duration_s``."""
        return self.duration_s if self.settle_s is None else self.settle_s

    def validate_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Return params with defaults filled and values typed; raise ValueError on any bad or unknown one."""
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise ValueError(f"action {self.id} has no parameter(s) {', '.join(unknown)}")
        clean: dict[str, Any] = {}
        for name, spec in self.params.items():
            if name in params:
                clean[name] = spec.check(name, params[name])
            elif spec.required and spec.default is None:
                raise ValueError(f"action {self.id} needs parameter {name}")
            elif spec.default is not None:
                clean[name] = spec.default
        return clean


class CatalogFile(BaseModel):
    """The top level of an actions YAML file."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    actions: list[Action]


ChangeKind = Literal["deploy", "config_change", "any"]
MetricOp = Literal[">", ">=", "<", "<="]


class MetricCondition(BaseModel):
    """A metric of the symptomatic service compared with a threshold, e.g. ``memory > 0.9``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(min_length=1)
    op: MetricOp
    value: float

    def holds(self, observed: float) -> bool:
        """Return whether an observed value satisfies the condition."""
        if self.op == ">":
            return observed > self.value
        if self.op == ">=":
            return observed >= self.value
        if self.op == "<":
            return observed < self.value
        return observed <= self.value

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


class Symptoms(BaseModel):
    """What must be seen on one service for a runbook to apply; every given condition must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alerts_any: tuple[str, ...] = ()
    alerts_all: tuple[str, ...] = ()
    metrics: tuple[MetricCondition, ...] = ()
    recent_change: ChangeKind | None = None
    kinds: tuple[ServiceKind, ...] = ()

    @model_validator(mode="after")
    def _not_empty(self) -> Symptoms:
        if not (self.alerts_any or self.alerts_all or self.metrics or self.recent_change):
            raise ValueError("a runbook needs at least one symptom (alerts, metrics or a recent change)")
        return self

    @property
    def specificity(self) -> int:
        """Return how many conditions the symptoms name; more specific runbooks rank first."""
        return (
            (1 if self.alerts_any else 0)
            + len(self.alerts_all)
            + len(self.metrics)
            + (2 if self.recent_change else 0)
            + (1 if self.kinds else 0)
        )


class RunbookStep(BaseModel):
    """One candidate action of a runbook, in the order a responder would try them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    params: dict[str, Any] = Field(default_factory=dict)
    why: str = ""


class Runbook(BaseModel):
    """Symptoms of one fault type mapped to ordered candidate actions on the symptomatic service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    fault: str = Field(min_length=1)
    description: str = Field(min_length=1)
    when: Symptoms
    steps: tuple[RunbookStep, ...] = Field(min_length=1)


class RunbookFile(BaseModel):
    """The top level of a runbooks YAML file."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    runbooks: list[Runbook] = Field(default_factory=list)
    fallback: tuple[RunbookStep, ...] = ()
