"""The webhook payloads we accept, parsed once at the edge into `AlertIn` values.

Every field is bounded here, before anything reaches the store (see `docs/alerts.md`, "Limits"): a
value the store cannot hold or a card cannot show is refused with the field it came in, a summary is
clipped visibly, a value that is no finite number is dropped with a warning. Alerts are checked one by
one, so one hostile alert never loses the good ones of its delivery: `parse_alerts` returns the
accepted alerts and, per refused one, its index and why.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from bot.alerts.errors import AllRefusedError, BadPayloadError
from bot.alerts.links import MAX_URL, URL_FIELDS, links_of
from bot.alerts.resolve import Resolution, ServiceResolver
from bot.notify.mrkdwn import clip

SEVERITY_WORDS = {
    "critical": "sev1", "sev1": "sev1", "p1": "sev1",
    "page": "sev2", "high": "sev2", "error": "sev2", "major": "sev2", "sev2": "sev2", "p2": "sev2",
    "warning": "sev3", "warn": "sev3", "medium": "sev3", "minor": "sev3", "sev3": "sev3", "p3": "sev3",
    "info": "sev4", "low": "sev4", "sev4": "sev4", "p4": "sev4", "p5": "sev4",
}  # fmt: skip
# the labels read when no resolver is given (tests, the demo); serve reads Settings.alert_service_labels
SERVICE_LABELS = ("deployment", "statefulset", "daemonset", "container", "pod", "app", "service", "job")

# Limits at the edge. Names, services and fingerprints fit the store's String(200) columns; the rest
# keeps a timeline event and a card small whatever a sender puts in.
MAX_NAME = 200  # alert name, service, fingerprint
MAX_LABELS = 100  # labels per alert
MAX_LABEL_KEY = 200
MAX_LABEL_VALUE = 1000
MAX_SUMMARY = 500  # the summary becomes an incident title: clipped with an ellipsis, not refused
MAX_WORD = 100  # severity words, PagerDuty urgency
MAX_GROUP_KEY = 4000  # Alertmanager's groupKey (all group labels): used to group, never stored
MAX_ALERTS = 1000  # per delivery
MAX_DEPTH = 32  # JSON nesting of a body; real payloads nest 5 deep
_BIG_INT_DIGITS = 30  # a JSON integer longer than this is read as a float (10**400 becomes inf)
_SURROGATE = re.compile("[\ud800-\udfff]")
# A JSON string, or an unterminated one through the end: it always matches where it starts, so a scan
# never restarts inside it (linear time whatever the quotes and backslashes).
_STRINGS = re.compile(rb'"[^"\\]*(?:\\[\s\S]?[^"\\]*)*(?:"|\Z)')
_PARENS = bytes.maketrans(b"[{]}", b"(())")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def storable(value: str) -> str:
    """Refuse text the store cannot hold: NUL (PostgreSQL) and lone surrogates (not UTF-8 encodable)."""
    if "\x00" in value:
        raise ValueError("contains a NUL character (\\u0000), which the store cannot hold")
    if _SURROGATE.search(value):
        raise ValueError("contains a lone UTF-16 surrogate, which is no valid Unicode text")
    return value


Text = Annotated[str, AfterValidator(storable)]
Name = Annotated[str, StringConstraints(max_length=MAX_NAME), AfterValidator(storable)]
Word = Annotated[str, StringConstraints(max_length=MAX_WORD), AfterValidator(storable)]
LabelKey = Annotated[str, StringConstraints(max_length=MAX_LABEL_KEY), AfterValidator(storable)]
LabelValue = Annotated[str, StringConstraints(max_length=MAX_LABEL_VALUE), AfterValidator(storable)]
Labels = Annotated[dict[LabelKey, LabelValue], Field(max_length=MAX_LABELS)]
Summary = Annotated[str, AfterValidator(storable), AfterValidator(lambda v: clip(v, MAX_SUMMARY))]
Url = Annotated[str, StringConstraints(max_length=MAX_URL), AfterValidator(storable)]


def _big_int(digits: str) -> int | float:
    return int(digits) if len(digits) <= _BIG_INT_DIGITS else float(digits)


def decode_json(body: bytes) -> Any:
    """Decode a request body; refuse (BadPayloadError) non-JSON and nesting deeper than MAX_DEPTH.

    The depth is checked on the bytes before parsing (a parser would recurse first); integers too long
    for a float become +-inf, so later checks drop them as non-finite instead of overflowing.
    """
    # The brackets outside strings as parentheses; each pass drops the innermost pairs, so a nesting of
    # depth d is gone after d passes. A pair left after MAX_DEPTH passes is nested deeper.
    parens = _STRINGS.sub(b"", body).translate(_PARENS, _NOT_BRACKETS)
    for _ in range(MAX_DEPTH):
        shorter = parens.replace(b"()", b"")
        if len(shorter) == len(parens):
            break
        parens = shorter
    if b"()" in parens:
        raise BadPayloadError(f"the body is nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(body, parse_int=_big_int)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadPayloadError("the body is not JSON") from None


@dataclass(frozen=True)
class AlertIn:
    """One alert, whatever sent it: what fires or resolved where, and how to recognise it again."""

    source: str
    name: str
    service: str
    status: Literal["firing", "resolved"]
    fingerprint: str
    at: datetime | None = None
    severity: str = "sev3"
    summary: str = ""
    value: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    group: str | None = None
    links: dict[str, str] = field(default_factory=dict)  # runbook, source, dashboard, silence: http(s) URLs
    resolution: Resolution | None = field(default=None, compare=False)  # how the service was found


@dataclass(frozen=True)
class Problem:
    """Why one item of a delivery (by its index) was refused, or what was dropped from it."""

    index: int
    message: str


T = TypeVar("T")


@dataclass(frozen=True)
class Delivery(Generic[T]):
    """What a delivery's items came to: the accepted ones, and the refused ones with their reasons."""

    accepted: list[T]
    refused: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def answer(self) -> dict[str, Any]:
        """Return the refusals and warnings for the JSON answer."""
        return {
            "refused": [{"index": p.index, "error": p.message} for p in self.refused],
            "warnings": [{"index": p.index, "warning": p.message} for p in self.warnings],
        }

    def check(self, what: str, payload: str) -> Delivery[T]:
        """Return self, or raise AllRefusedError naming every problem when nothing was accepted.

        Args:
            what: the list the items came in (``alerts``), so a problem reads ``alerts.0.name: ...``.
            payload: what the body is, for the message (``generic payload``).
        """
        if self.accepted or not self.refused:
            return self
        named = "; ".join(_located(f"{what}.{p.index}", p.message) for p in self.refused[:5])
        raise AllRefusedError(f"not a valid {payload}: {named}", self.answer()["refused"])


def _located(where: str, message: str) -> str:
    """Prefix each ``field: problem`` part of ``message`` with ``where.``; other text with ``where: ``."""
    parts = []
    for part in message.split("; "):
        path, _, rest = part.partition(": ")
        if path == "(top)":
            parts.append(f"{where}: {rest}")
        else:
            parts.append(f"{where}.{part}" if rest and " " not in path else f"{where}: {part}")
    return "; ".join(parts)


def severity_of(*words: Any) -> str:
    """Return sev1..sev4 for the first recognised severity word (sev3 when none is)."""
    for word in words:
        found = SEVERITY_WORDS.get(str(word).strip().lower()) if word is not None else None
        if found:
            return found
    return "sev3"


def fingerprint_of(*parts: Any) -> str:
    """Return a stable fingerprint of the parts (for sources that send none)."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:16]


def aware_at(value: datetime | None) -> datetime | None:
    """Refuse a zone-less ``at`` (the alert and snapshot forms share this rule)."""
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError("'at' needs a time zone, e.g. 2026-03-02T10:14:00Z")
    return value


def finite(value: float | None, where: str, warnings: list[str]) -> float | None:
    """Return ``value`` when it is a finite number; else None, saying in ``warnings`` it was dropped."""
    if value is None or math.isfinite(value):
        return value
    warnings.append(f"{where}: {value!r} is not a finite number; the value was dropped")
    return None


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class PromAlert(_Model):
    """One alert of an Alertmanager (or Grafana) webhook."""

    status: Literal["firing", "resolved"]
    labels: Labels
    annotations: dict[str, Text] = Field(default_factory=dict)
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    fingerprint: Name = ""
    values: dict[Text, float | None] | None = None  # Grafana: a query's value, null without data
    generatorURL: Url = ""
    silenceURL: Url = ""  # Grafana
    dashboardURL: Url = ""  # Grafana
    panelURL: Url = ""  # Grafana

    _aware = field_validator("startsAt", "endsAt")(aware_at)

    @field_validator("labels")
    @classmethod
    def _named(cls, value: dict[str, str]) -> dict[str, str]:
        if not value.get("alertname"):
            raise ValueError("every alert needs the label 'alertname'")
        if len(value["alertname"]) > MAX_NAME:
            raise ValueError(f"the label 'alertname' has at most {MAX_NAME} characters")
        return value


class AlertmanagerPayload(_Model):
    """Prometheus Alertmanager webhook, version 4 (its alerts are checked one by one)."""

    version: Literal["4"]
    groupKey: Annotated[str, StringConstraints(max_length=MAX_GROUP_KEY)] = ""
    status: Literal["firing", "resolved"]
    alerts: list[Any] = Field(min_length=1, max_length=MAX_ALERTS)
    externalURL: Url = ""  # where this Alertmanager is reached: its silence links start here


class GrafanaPayload(_Model):
    """Grafana alerting webhook (unified alerting; Alertmanager-shaped alerts)."""

    status: Literal["firing", "resolved"]
    alerts: list[Any] = Field(min_length=1, max_length=MAX_ALERTS)
    groupKey: Annotated[str, StringConstraints(max_length=MAX_GROUP_KEY)] = ""


class _PdService(_Model):
    summary: Name = ""
    id: str = ""


class _PdData(_Model):
    id: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME - 10), AfterValidator(storable)]
    type: str = "incident"
    title: Summary = ""
    status: str = ""
    urgency: Word = ""
    service: _PdService | None = None
    priority: dict[str, Any] | None = None
    html_url: Url = ""  # the incident's page: the card's source link


class _PdEvent(_Model):
    id: str
    event_type: str
    resource_type: str = "incident"
    occurred_at: datetime | None = None
    data: _PdData

    _aware = field_validator("occurred_at")(aware_at)


class PagerDutyPayload(_Model):
    """PagerDuty V3 webhook: one event per delivery."""

    event: _PdEvent


class GenericAlert(_Model):
    """One alert of the generic form (see docs/alerts.md)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[Name, Field(min_length=1)]
    service: Annotated[Name, Field(min_length=1)]
    status: Literal["firing", "resolved"] = "firing"
    severity: Word = "sev3"
    summary: Summary = ""
    fingerprint: Name | None = None
    at: datetime | None = None
    value: float | None = None
    labels: Labels = Field(default_factory=dict)

    _aware = field_validator("at")(aware_at)


class GenericPayload(_Model):
    """The generic form: ``{"alerts": [...]}`` (its alerts are checked one by one)."""

    model_config = ConfigDict(extra="forbid")

    alerts: list[Any] = Field(min_length=1, max_length=MAX_ALERTS)


def problems(exc: ValidationError) -> str:
    """Return the first few validation errors as ``field.path: message``, joined by semicolons."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()[:5])


def _prom(source: str, raw: Any, group: str, warnings: list[str], found: _Found) -> AlertIn:
    a = PromAlert.model_validate(raw)
    labels = a.labels
    resolution = found.resolver.service_of(labels)
    at = a.startsAt if a.status == "firing" else (a.endsAt or a.startsAt)
    value = next(iter(a.values.items()), None) if a.values else None
    return AlertIn(
        source=source,
        name=labels["alertname"],
        service=resolution.service,
        status=a.status,
        fingerprint=a.fingerprint or fingerprint_of(sorted(labels.items())),
        at=at if at is not None and at.year > 1 else None,
        severity=severity_of(labels.get("severity"), labels.get("priority")),
        summary=clip(a.annotations.get("summary", "") or a.annotations.get("description", ""), MAX_SUMMARY),
        value=finite(value[1], f"values.{clip(value[0], 50)}", warnings) if value else None,
        labels=dict(labels),
        group=group or None,
        links=links_of(a.annotations, a.model_dump(include=set(URL_FIELDS)), labels, found.external_url),
        resolution=resolution,
    )


def _generic(source: str, raw: Any, _group: str, warnings: list[str], _found: _Found) -> AlertIn:
    a = GenericAlert.model_validate(raw)
    return AlertIn(
        source=source,
        name=a.name,
        service=a.service,
        status=a.status,
        fingerprint=a.fingerprint or fingerprint_of(a.name, a.service, sorted(a.labels.items())),
        at=a.at,
        severity=severity_of(a.severity),
        summary=a.summary,
        value=finite(a.value, "value", warnings),
        labels=dict(a.labels),
    )


def _each(source: str, alerts: list[Any], group: str, one: Any, found: _Found) -> Delivery[AlertIn]:
    accepted: list[AlertIn] = []
    refused: list[Problem] = []
    warned: list[Problem] = []
    for index, raw in enumerate(alerts):
        warnings: list[str] = []
        try:
            accepted.append(one(source, raw, group, warnings, found))
        except ValidationError as exc:
            refused.append(Problem(index, problems(exc)))
            continue
        except BadPayloadError as exc:
            refused.append(Problem(index, str(exc)))
            continue
        warned.extend(Problem(index, w) for w in warnings)
    return Delivery(accepted, refused, warned).check("alerts", f"{source} payload")


def _pagerduty(source: str, body: Any) -> Delivery[AlertIn]:
    pd = PagerDutyPayload.model_validate(body).event
    if pd.resource_type != "incident" or not pd.event_type.startswith("incident."):
        return Delivery([])
    kind = pd.event_type.removeprefix("incident.")
    if kind not in ("triggered", "resolved", "reopened"):
        return Delivery([])  # acknowledged, annotated, ...: nothing for the timeline
    data = pd.data
    service = data.service.summary if data.service and data.service.summary else ""
    if not service:
        raise BadPayloadError("the PagerDuty incident names no service (event.data.service.summary)")
    priority = (data.priority or {}).get("summary")
    alert = AlertIn(
        source=source,
        name=clip(data.title, MAX_NAME) or "PagerDutyIncident",
        service=service,
        status="resolved" if kind == "resolved" else "firing",
        fingerprint=f"pagerduty:{data.id}",
        at=pd.occurred_at,
        severity=severity_of(priority if isinstance(priority, str) else None, data.urgency),
        summary=data.title,
        labels={"pagerduty_incident": data.id},
        links=links_of({}, {"generatorURL": data.html_url}, {}, ""),
    )
    return Delivery([alert])


@dataclass(frozen=True)
class _Found:
    resolver: ServiceResolver
    external_url: str = ""


def parse_alerts(source: str, body: Any, resolver: ServiceResolver | None = None) -> Delivery[AlertIn]:
    """Parse a decoded JSON body of ``source`` alert by alert; raise BadPayloadError when nothing is usable.

    The envelope (version, group key, the list itself) is all or nothing; each alert is accepted or
    refused on its own, and a refused one is named by its index in the answer. ``resolver`` finds the
    service in an alert's labels (`bot.alerts.resolve`); without one, ``SERVICE_LABELS`` in order.
    """
    found = _Found(resolver or ServiceResolver(SERVICE_LABELS))
    try:
        if source == "alertmanager":
            am = AlertmanagerPayload.model_validate(body)
            return _each(source, am.alerts, am.groupKey, _prom, replace(found, external_url=am.externalURL))
        if source == "grafana":
            gf = GrafanaPayload.model_validate(body)
            return _each(source, gf.alerts, gf.groupKey, _prom, found)
        if source == "pagerduty":
            return _pagerduty(source, body)
        if source == "generic":
            generic = GenericPayload.model_validate(body)
            return _each(source, generic.alerts, "", _generic, found)
    except ValidationError as exc:
        raise BadPayloadError(f"not a valid {source} payload: {problems(exc)}") from None
    raise BadPayloadError(
        f"unknown alert source {source!r}; expected alertmanager, pagerduty, grafana or generic"
    )
