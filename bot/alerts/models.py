"""The webhook payloads we accept, parsed once at the edge into `AlertIn` values."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.alerts.errors import BadPayloadError

SEVERITY_WORDS = {
    "critical": "sev1", "sev1": "sev1", "p1": "sev1",
    "page": "sev2", "high": "sev2", "error": "sev2", "major": "sev2", "sev2": "sev2", "p2": "sev2",
    "warning": "sev3", "warn": "sev3", "medium": "sev3", "minor": "sev3", "sev3": "sev3", "p3": "sev3",
    "info": "sev4", "low": "sev4", "sev4": "sev4", "p4": "sev4", "p5": "sev4",
}  # fmt: skip
SERVICE_LABELS = ("service", "app", "job", "container", "deployment")


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
    """Refuse a zone-less ``at`` (the generic alert and snapshot forms share this rule)."""
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError("'at' needs a time zone, e.g. 2026-03-02T10:14:00Z")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class PromAlert(_Model):
    """One alert of an Alertmanager (or Grafana) webhook."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    fingerprint: str = ""
    values: dict[str, float] | None = None

    @field_validator("labels")
    @classmethod
    def _named(cls, value: dict[str, str]) -> dict[str, str]:
        if not value.get("alertname"):
            raise ValueError("every alert needs the label 'alertname'")
        return value


class AlertmanagerPayload(_Model):
    """Prometheus Alertmanager webhook, version 4."""

    version: Literal["4"]
    groupKey: str = ""
    status: Literal["firing", "resolved"]
    alerts: list[PromAlert] = Field(min_length=1)
    commonLabels: dict[str, str] = Field(default_factory=dict)


class GrafanaPayload(_Model):
    """Grafana alerting webhook (unified alerting; Alertmanager-shaped alerts)."""

    status: Literal["firing", "resolved"]
    alerts: list[PromAlert] = Field(min_length=1)
    groupKey: str = ""
    orgId: int | None = None


class _PdService(_Model):
    summary: str = ""
    id: str = ""


class _PdData(_Model):
    id: str
    type: str = "incident"
    title: str = ""
    status: str = ""
    urgency: str = ""
    service: _PdService | None = None
    priority: dict[str, Any] | None = None


class _PdEvent(_Model):
    id: str
    event_type: str
    resource_type: str = "incident"
    occurred_at: datetime | None = None
    data: _PdData


class PagerDutyPayload(_Model):
    """PagerDuty V3 webhook: one event per delivery."""

    event: _PdEvent


class GenericAlert(_Model):
    """One alert of the generic form (see docs/alerts.md)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    service: str = Field(min_length=1, max_length=200)
    status: Literal["firing", "resolved"] = "firing"
    severity: str = "sev3"
    summary: str = ""
    fingerprint: str | None = Field(default=None, max_length=200)
    at: datetime | None = None
    value: float | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    _aware = field_validator("at")(aware_at)


class GenericPayload(_Model):
    """The generic form: ``{"alerts": [...]}``."""

    model_config = ConfigDict(extra="forbid")

    alerts: list[GenericAlert] = Field(min_length=1, max_length=1000)


def problems(exc: ValidationError) -> str:
    """Return the first few validation errors as ``field.path: message``, joined by semicolons."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()[:5])


def _prom(source: str, alerts: list[PromAlert], group: str) -> list[AlertIn]:
    out = []
    for a in alerts:
        labels = a.labels
        service = next((labels[k] for k in SERVICE_LABELS if labels.get(k)), "")
        if not service:
            raise BadPayloadError(
                f"alert {labels['alertname']!r} names no service; add one of the labels {', '.join(SERVICE_LABELS)}"
            )
        at = a.startsAt if a.status == "firing" else (a.endsAt or a.startsAt)
        value = next(iter(a.values.values()), None) if a.values else None
        out.append(
            AlertIn(
                source=source,
                name=labels["alertname"],
                service=service,
                status=a.status,
                fingerprint=a.fingerprint or fingerprint_of(sorted(labels.items())),
                at=at if at is not None and at.year > 1 else None,
                severity=severity_of(labels.get("severity"), labels.get("priority")),
                summary=a.annotations.get("summary", "") or a.annotations.get("description", ""),
                value=value,
                labels=dict(labels),
                group=group or None,
            )
        )
    return out


def parse_alerts(source: str, body: Any) -> list[AlertIn]:
    """Parse a decoded JSON body of ``source``; raise BadPayloadError saying what is wrong."""
    try:
        if source == "alertmanager":
            am = AlertmanagerPayload.model_validate(body)
            return _prom(source, am.alerts, am.groupKey)
        if source == "grafana":
            gf = GrafanaPayload.model_validate(body)
            return _prom(source, gf.alerts, gf.groupKey)
        if source == "pagerduty":
            pd = PagerDutyPayload.model_validate(body).event
            if pd.resource_type != "incident" or not pd.event_type.startswith("incident."):
                return []
            kind = pd.event_type.removeprefix("incident.")
            if kind not in ("triggered", "resolved", "reopened"):
                return []  # acknowledged, annotated, ...: nothing for the timeline
            data = pd.data
            service = data.service.summary if data.service and data.service.summary else ""
            if not service:
                raise BadPayloadError("the PagerDuty incident names no service (event.data.service.summary)")
            priority = (data.priority or {}).get("summary")
            return [
                AlertIn(
                    source=source,
                    name=data.title or "PagerDutyIncident",
                    service=service,
                    status="resolved" if kind == "resolved" else "firing",
                    fingerprint=f"pagerduty:{data.id}",
                    at=pd.occurred_at,
                    severity=severity_of(priority, data.urgency),
                    summary=data.title,
                    labels={"pagerduty_incident": data.id},
                )
            ]
        if source == "generic":
            generic = GenericPayload.model_validate(body)
            return [
                AlertIn(
                    source=source,
                    name=a.name,
                    service=a.service,
                    status=a.status,
                    fingerprint=a.fingerprint or fingerprint_of(a.name, a.service, sorted(a.labels.items())),
                    at=a.at,
                    severity=severity_of(a.severity),
                    summary=a.summary,
                    value=a.value,
                    labels=dict(a.labels),
                )
                for a in generic.alerts
            ]
    except ValidationError as exc:
        raise BadPayloadError(f"not a valid {source} payload: {problems(exc)}") from None
    raise BadPayloadError(
        f"unknown alert source {source!r}; expected alertmanager, pagerduty, grafana or generic"
    )
