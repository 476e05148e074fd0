"""The `remediate.incident/v1` JSON Lines record, validated with Pydantic (the import/export edge).

Every rule of the format is enforced here; `format_error` turns a validation failure into one line that
names the field and the rule it broke. Unknown keys are ignored.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

FORMAT = "remediate.incident/v1"
EVENT_TYPES: tuple[str, ...] = ("alert", "metrics", "deploy", "config_change", "action", "note", "resolved")
SEVERITIES: tuple[str, ...] = ("sev1", "sev2", "sev3", "sev4")
OUTCOMES: tuple[str, ...] = ("succeeded", "failed", "no_effect", "unknown")


# PostgreSQL text columns cannot hold NUL; refusing it here keeps both backends alike (a pattern is
# checked in pydantic-core, a Python validator per field cost ~10 % of parsing).
_NO_NUL = r"^[^\x00]*$"


def _finite_json(value: Any) -> Any:
    # JSON has no NaN or Infinity (PostgreSQL's json type refuses them); a parameter value must be finite.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{item} is not a JSON number; values must be finite")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


Text = Annotated[str, Field(min_length=1, pattern=_NO_NUL)]
# Names are stored in indexed columns of at most 200 characters.
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=_NO_NUL)]
OptionalName = Annotated[str, Field(max_length=200, pattern=_NO_NUL)] | None
Number = Annotated[float, Field(allow_inf_nan=False)]
Timestamp = AwareDatetime


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


class _Record(BaseModel):
    # strict: no silent coercion ("1" is not a number, 1700000000 is not a timestamp); extra keys ignored.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class _Event(_Record):
    at: Timestamp


class AlertEvent(_Event):
    """An alert started firing or resolved on a service."""

    type: Literal["alert"]
    status: Literal["firing", "resolved"]
    name: Name
    service: Name
    labels: dict[str, str] | None = None
    value: Number | None = None


class MetricsEvent(_Event):
    """A snapshot of one service's metrics."""

    type: Literal["metrics"]
    service: Name
    values: dict[str, Number]


class DeployEvent(_Event):
    """A new version of a service went out."""

    type: Literal["deploy"]
    service: Name
    version: str | None = None


class ConfigChangeEvent(_Event):
    """A service's configuration changed."""

    type: Literal["config_change"]
    service: Name
    change: str | None = None


class ActionEvent(_Event):
    """Someone (or something) acted on the system, with the outcome."""

    type: Literal["action"]
    action: Name
    target: OptionalName = None
    params: Annotated[dict[str, Any], AfterValidator(_finite_json)] | None = None
    actor: Text
    outcome: Literal["succeeded", "failed", "no_effect", "unknown"]


class NoteEvent(_Event):
    """A free-text note on the timeline."""

    type: Literal["note"]
    actor: str | None = None
    text: Text


class ResolvedEvent(_Event):
    """The incident was declared resolved."""

    type: Literal["resolved"]


Event = Annotated[
    AlertEvent | MetricsEvent | DeployEvent | ConfigChangeEvent | ActionEvent | NoteEvent | ResolvedEvent,
    Field(discriminator="type"),
]


EVENT_MODELS: dict[str, type[_Event]] = {
    "alert": AlertEvent,
    "metrics": MetricsEvent,
    "deploy": DeployEvent,
    "config_change": ConfigChangeEvent,
    "action": ActionEvent,
    "note": NoteEvent,
    "resolved": ResolvedEvent,
}


class RootCause(_Record):
    """Where the incident came from, where known."""

    service: OptionalName = None
    fault: OptionalName = None


class IncidentRecord(_Record):
    """One line of a `remediate.incident/v1` file."""

    format: Literal["remediate.incident/v1"]
    id: Name
    title: Text
    severity: Literal["sev1", "sev2", "sev3", "sev4"]
    topology: OptionalName = None
    services: list[Name] | None = None
    opened_at: Timestamp
    resolved_at: Timestamp | None = None
    root_cause: RootCause | None = None
    events: list[Event] = Field(default_factory=list)

    _blank_id = field_validator("id", "title")(_non_blank)

    @model_validator(mode="after")
    def _time_rules(self) -> IncidentRecord:
        if self.resolved_at is not None and self.resolved_at < self.opened_at:
            raise ValueError(
                f"resolved_at {iso(self.resolved_at)} is before opened_at {iso(self.opened_at)}; "
                "an incident cannot resolve before it opens"
            )
        for index in range(1, len(self.events)):
            if self.events[index].at < self.events[index - 1].at:
                raise ValueError(
                    f"events[{index}].at {iso(self.events[index].at)} is before events[{index - 1}].at "
                    f"{iso(self.events[index - 1].at)}; events must be in time order"
                )
        return self


def iso(value: datetime) -> str:
    """Return an RFC 3339 UTC timestamp with a `Z` (microseconds only when present)."""
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text + "Z"


_FRIENDLY: dict[str, str] = {
    "timezone_aware": "timestamp has no time zone; write RFC 3339 with a zone, e.g. 2026-03-02T10:14:00Z",
    "datetime_type": "expected an RFC 3339 timestamp string with a zone, e.g. 2026-03-02T10:14:00Z",
    "datetime_from_date_parsing": "not an RFC 3339 timestamp; expected e.g. 2026-03-02T10:14:00Z",
    "datetime_parsing": "not an RFC 3339 timestamp; expected e.g. 2026-03-02T10:14:00Z",
    "missing": "required field is missing",
    "string_too_short": "must not be empty",
    "string_too_long": "is longer than 200 characters",
    "finite_number": "NaN and Infinity are not JSON numbers; values must be finite",
    "string_pattern_mismatch": "must not contain NUL (\\u0000) characters",
    "union_tag_not_found": "event needs a 'type' (one of " + ", ".join(EVENT_TYPES) + ")",
}


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in EVENT_TYPES and text.endswith("]"):
            continue  # the discriminator branch name adds nothing for a person
        else:
            text += ("." if text else "") + str(part)
    return text


def format_error(exc: ValidationError) -> str:
    """Return one line naming the first broken rule: `field: what was wrong and what was expected`."""
    err = exc.errors(include_url=False)[0]
    kind = err["type"]
    loc = _location(tuple(err["loc"]))
    if kind == "json_invalid":
        return f"malformed JSON: {err.get('ctx', {}).get('error', err['msg'])}"
    if kind == "model_type" and not loc:
        return "expected a JSON object (one incident per line)"
    if kind == "literal_error" and loc == "format":
        return f"format: expected exactly {FORMAT!r}, got {err.get('input')!r}"
    if kind == "union_tag_invalid":
        got = err.get("ctx", {}).get("tag")
        return f"{loc}.type: unknown event type {got!r}; expected one of {', '.join(EVENT_TYPES)}"
    if kind == "value_error":
        message = str(err.get("ctx", {}).get("error", err["msg"]))
        return f"{loc}: {message}" if loc else message
    message = _FRIENDLY.get(kind, err["msg"])
    if kind == "literal_error":
        message = f"{err['msg'].replace('Input should be', 'expected')}, got {err.get('input')!r}"
    return f"{loc}: {message}" if loc else message


def parse_line(line: bytes | str) -> IncidentRecord:
    """Validate one JSON line; raise `pydantic.ValidationError` when it breaks a rule."""
    return IncidentRecord.model_validate_json(line)
