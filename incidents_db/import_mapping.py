"""The mapping file of `remediate import --sql`: which queries to run and how their columns become our fields.

A mapping (YAML, ``remediate.sql-mapping/v1``) has an ``incidents`` and an optional ``events`` section;
each names a read-only ``query``, ``columns`` (our field -> the query's column), ``values`` (per field,
the source's value -> ours, e.g. ``P1 -> sev1``), ``defaults`` (per field, a constant for what the source
lacks) and ``time`` (how the source writes times). Every field must be one of ours and every column one
the query returns; anything else is refused with its name before a row is read.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from incidents_db.errors import MappingError
from playbooks.yamlfiles import read_yaml

FORMAT = "remediate.sql-mapping/v1"
INCIDENT_FIELDS = ("id", "title", "severity", "topology", "services", "opened_at", "resolved_at",
                   "root_cause_service", "root_cause_fault")  # fmt: skip
EVENT_FIELDS = ("incident_id", "type", "at", "status", "name", "service", "labels", "value", "values", "version",
                "change", "action", "target", "params", "actor", "outcome", "text")  # fmt: skip
_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


class TimeFormat(BaseModel):
    """How the source writes times: database timestamps, epoch numbers or text in a strftime format."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["native", "epoch_s", "epoch_ms", "iso", "strftime"] = "native"
    format: str | None = None
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _check(self) -> TimeFormat:
        if (self.kind == "strftime") != (self.format is not None):
            raise ValueError("format is needed with kind: strftime and only with it")
        zone_of(self.timezone)
        return self


def zone_of(name: str) -> tzinfo:
    """Return the zone a naive source time is in: UTC, an offset (+02:00) or an IANA name (Europe/Paris)."""
    if name.upper() == "UTC":
        return UTC
    found = _OFFSET.match(name)
    if found:
        sign = -1 if found.group(1) == "-" else 1
        return timezone(sign * timedelta(hours=int(found.group(2)), minutes=int(found.group(3))))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; expected UTC, +HH:MM or an IANA name") from None


class Section(BaseModel):
    """One query and how its columns map onto our fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    query: str = Field(min_length=1)
    columns: dict[str, str] = Field(min_length=1)
    values: dict[str, dict[str, Any]] = Field(default_factory=dict)
    defaults: dict[str, Any] = Field(default_factory=dict)
    time: TimeFormat = Field(default_factory=TimeFormat)
    times: dict[str, TimeFormat] = Field(default_factory=dict)

    def time_of(self, field: str) -> TimeFormat:
        """Return how the source writes one time field (``times`` over ``time``)."""
        return self.times.get(field, self.time)

    @field_validator("values", mode="before")
    @classmethod
    def _text_keys(cls, value: Any) -> Any:
        # a source's value is matched as text: YAML's 1: sev1 and "1": sev1 mean the same
        if isinstance(value, dict):
            return {
                f: {str(k): v for k, v in m.items()} if isinstance(m, dict) else m for f, m in value.items()
            }
        return value

    @field_validator("query")
    @classmethod
    def _read_only(cls, value: str) -> str:
        if not re.match(r"^\s*(select|with)\b", value, re.IGNORECASE) or ";" in value.strip().rstrip(";"):
            raise ValueError("expected one read-only SELECT (or WITH ... SELECT) statement")
        return value.strip().rstrip(";")


class Mapping(BaseModel):
    """A whole mapping file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["remediate.sql-mapping/v1"]
    id_prefix: str = ""
    incidents: Section
    events: Section | None = None

    @model_validator(mode="after")
    def _check_fields(self) -> Mapping:
        _known("incidents", self.incidents, INCIDENT_FIELDS, ("id", "title", "severity", "opened_at"))
        if self.events is not None:
            _known("events", self.events, EVENT_FIELDS, ("incident_id", "type", "at"))
        return self


def _known(where: str, section: Section, fields: tuple[str, ...], required: tuple[str, ...]) -> None:
    for part in ("columns", "values", "defaults", "times"):
        unknown = sorted(set(getattr(section, part)) - set(fields))
        if unknown:
            raise ValueError(
                f"{where}.{part}: unknown field(s) {', '.join(unknown)}; fields: {', '.join(fields)}"
            )
    missing = [f for f in required if f not in section.columns and f not in section.defaults]
    if missing:
        raise ValueError(
            f"{where}.columns: {', '.join(missing)} must be mapped to a column (or given in defaults)"
        )


def load_mapping(path: Path) -> Mapping:
    """Read and validate a mapping file; raise MappingError naming the file, the key and the rule."""
    raw = read_yaml(path, MappingError, "mapping file ")
    try:
        return Mapping.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top)"
        raise MappingError(f"mapping file {path}: {where}: {err['msg']}") from None


def check_columns(where: str, section: Section, returned: list[str]) -> None:
    """Refuse a mapping naming a column the query does not return (the column is named)."""
    unknown = sorted({c for c in section.columns.values() if c not in returned})
    if unknown:
        raise MappingError(
            f"{where}.columns: unknown column(s) {', '.join(repr(c) for c in unknown)}: "
            f"the {where} query returns {', '.join(returned) or 'no columns'}"
        )


def to_time(value: Any, fmt: TimeFormat) -> str | None:
    """Return a source time as ISO 8601 with its offset (naive times are in ``fmt.timezone``)."""
    if value is None or value == "":
        return None
    if fmt.kind in ("epoch_s", "epoch_ms"):
        seconds = float(value) / (1000.0 if fmt.kind == "epoch_ms" else 1.0)
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    if isinstance(value, datetime):
        at = value
    elif fmt.kind == "strftime":
        at = datetime.strptime(str(value), str(fmt.format))
    else:
        at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if at.tzinfo is None:
        at = at.replace(tzinfo=zone_of(fmt.timezone))
    return at.isoformat()
