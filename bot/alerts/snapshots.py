"""Metric snapshots pushed to `POST /snapshots`: the signals besides alerts that rankings read.

A snapshot is one service's current metric values (error rate, p99, saturation, per-call error rates
``error_rate_to:<callee>``, ``replicas``, ``traffic_ratio``, ...; the names of
`docs/incident-format.md`). The newest per service is kept in the store; each snapshot also joins the
timeline of every open incident it concerns (a service of the bot's topology, or one the incident
names), without posting to the incident's thread: at once when a value moved materially since the
last one there (see `moved`), otherwise at most once per ``Settings.snapshot_interval_s`` per
incident and service, so steady metrics do not flood the timeline. A new incident starts with the
kept snapshots that are recent enough, so the first card already ranks on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.alerts.errors import BadPayloadError
from bot.alerts.models import Delivery, Name, Problem, aware_at, problems, storable
from bot.notify.delivery import refresh_card
from bot.notify.mrkdwn import clip
from bot.services import Services
from incidents_db import incidents
from incidents_db.locks import lock_incidents
from incidents_db.snapshots import keep_latest, recent_metrics

MAX_SNAPSHOTS = 1000
MAX_VALUES = 500
FUTURE_SLACK_S = 300.0  # clocks disagree a little; a snapshot further ahead than this is refused
MAX_AGE_S = 86_400.0  # a snapshot older than this says nothing about now: refused
MOVE_REL, MOVE_ABS = 0.25, 0.02  # a value moved materially: by more than 25 % of itself and 0.02


def moved(before: dict[str, Any], after: dict[str, float]) -> bool:
    """Return whether a snapshot differs materially from the last one in a timeline (noise does not)."""
    if before.keys() != after.keys():
        return True
    for key, value in after.items():
        old = float(before[key])
        if abs(value - old) > max(MOVE_ABS, MOVE_REL * abs(old)):
            return True
    return False


class SnapshotIn(BaseModel):
    """One service's metric values at one time."""

    model_config = ConfigDict(extra="forbid")

    service: Annotated[Name, Field(min_length=1)]
    at: datetime | None = None
    values: dict[str, float] = Field(min_length=1, max_length=MAX_VALUES)

    @field_validator("service")
    @classmethod
    def _service(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must name a service")
        return value

    _aware = field_validator("at")(aware_at)

    @field_validator("values", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        for key, number in value.items():
            if not isinstance(key, str) or not 0 < len(key.strip()) <= 200:
                raise ValueError(f"metric name {clip(repr(key), 60)} must be 1 to 200 characters")
            storable(key)
            if isinstance(number, bool) or not isinstance(number, int | float) or not _finite(number):
                raise ValueError(f"metric {key!r} must be a finite number, got {clip(repr(number), 40)}")
        return value


def _finite(number: float) -> bool:
    try:
        return math.isfinite(number)
    except OverflowError:  # an int too large for a float
        return False


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    snapshots: list[Any] = Field(min_length=1, max_length=MAX_SNAPSHOTS)


def parse_snapshots(body: Any, *, now: datetime | None = None) -> Delivery[SnapshotIn]:
    """Parse ``{"snapshots": [...]}``, a bare list, or one snapshot object, snapshot by snapshot.

    A snapshot that is invalid, or dated more than FUTURE_SLACK_S after ``now``, is refused on its own
    (named by its index); BadPayloadError when the envelope is wrong or every snapshot was refused.
    """
    if isinstance(body, list) or (isinstance(body, dict) and "snapshots" not in body):
        body = {"snapshots": body if isinstance(body, list) else [body]}
    try:
        items = _Body.model_validate(body).snapshots
    except ValidationError as exc:
        raise BadPayloadError(f"not a valid snapshot payload: {problems(exc)}") from None
    accepted: list[SnapshotIn] = []
    refused: list[Problem] = []
    for index, raw in enumerate(items):
        try:
            snap = SnapshotIn.model_validate(raw)
        except ValidationError as exc:
            refused.append(Problem(index, problems(exc)))
            continue
        if now is not None and snap.at is not None and snap.at - now > timedelta(seconds=FUTURE_SLACK_S):
            refused.append(
                Problem(index, f"at: {snap.at.isoformat()} is in the future; check the sender's clock")
            )
            continue
        if now is not None and snap.at is not None and now - snap.at > timedelta(seconds=MAX_AGE_S):
            refused.append(Problem(index, f"at: {snap.at.isoformat()} is more than a day old"))
            continue
        accepted.append(snap)
    return Delivery(accepted, refused).check("snapshots", "snapshot payload")


@dataclass(frozen=True)
class SnapshotResult:
    """What one delivery did."""

    stored: int
    stale: int
    attached: int
    incidents: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON body of the answer."""
        return {
            "stored": self.stored,
            "stale": self.stale,
            "attached": self.attached,
            "incidents": list(self.incidents),
        }


def ingest_snapshots(services: Services, snapshots: list[SnapshotIn]) -> SnapshotResult:
    """Keep the newest snapshot per service and add them to open incidents' timelines; commit."""
    now = services.clock()
    known = set(services.topology.services) if services.topology is not None else set()
    interval = timedelta(seconds=services.settings.snapshot_interval_s)
    stored = stale = attached = 0
    touched: dict[str, None] = {}
    with services.sessions() as s:
        lock_incidents(db_session=s)  # what was attached last is read, then written: run alone
        open_now = incidents.open_incidents(db_session=s, limit=1000)
        window = min((snap.at or now for snap in snapshots), default=now) - interval
        last = recent_metrics(db_session=s, incident_ids=[i.id for i in open_now], since=window)
        for snap in sorted(snapshots, key=lambda x: x.at or now):
            at = snap.at or now
            values = {k.strip(): float(v) for k, v in snap.values.items()}
            if not keep_latest(db_session=s, service=snap.service, at=at, values=values, now=now):
                stale += 1
                continue
            stored += 1
            for incident in open_now:
                if snap.service not in known and snap.service not in (incident.services or ()):
                    continue
                previous = last.get((incident.id, snap.service))
                if previous is not None and at - previous[0] < interval and not moved(previous[1], values):
                    continue
                incidents.append(
                    db_session=s,
                    incident_id=incident.id,
                    type_="metrics",
                    at=at,
                    service=snap.service,
                    affects=False,
                    values=values,
                )
                last[(incident.id, snap.service)] = (at, values)
                attached += 1
                touched[incident.id] = None
        for incident_id in touched:
            refresh_card(db_session=s, incident_id=incident_id, now=now)
        s.commit()
    return SnapshotResult(stored, stale, attached, tuple(touched))
