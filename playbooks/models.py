"""Typed models of the action catalog, parsed once from YAML at load."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ServiceKind = Literal["frontend", "service", "database", "cache", "queue"]
SERVICE_KINDS: tuple[str, ...] = ("frontend", "service", "database", "cache", "queue")
EXECUTOR_KINDS: tuple[str, ...] = ("sim", "webhook", "shell", "kubernetes")


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

    model_config = ConfigDict(extra="forbid", frozen=True)

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
    cost_usd: float = Field(default=0.0, ge=0)
    rate_limit: RateLimit | None = None
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
        return self

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
