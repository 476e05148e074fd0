"""The incident store API: keyword-only functions taking the session (or a connection for bulk work)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from incidents_db.errors import IncidentNotFoundError
from incidents_db.models import Incident, IncidentEvent, utcnow
from incidents_db.schema import FORMAT, IncidentRecord, iso

INCIDENTS = Incident.__table__
EVENTS = IncidentEvent.__table__
# Keys of an event that live in their own columns; everything else of the event goes to `payload`.
EVENT_COLUMNS = frozenset({"at", "type", "service"})


@dataclass(frozen=True)
class IncidentSummary:
    """One line of `remediate incidents list`."""

    id: str
    title: str
    severity: str
    status: str
    opened_at: datetime
    resolved_at: datetime | None
    events: int


def incident_row(
    record: IncidentRecord, *, source: str = "import", now: datetime | None = None
) -> dict[str, Any]:
    """Return the `incidents` row of one validated record."""
    stamp = now or utcnow()
    root = record.root_cause
    return {
        "id": record.id,
        "title": record.title,
        "severity": record.severity,
        "status": "resolved" if record.resolved_at is not None else "open",
        "topology": record.topology,
        "services": list(record.services or ()),
        "root_cause_service": root.service if root else None,
        "root_cause_fault": root.fault if root else None,
        "source": source,
        "opened_at": record.opened_at,
        "resolved_at": record.resolved_at,
        "created_at": stamp,
        "updated_at": stamp,
    }


def event_rows(record: IncidentRecord) -> list[dict[str, Any]]:
    """Return the `incident_events` rows of one validated record, `seq` counting from 0."""
    return [
        {
            "incident_id": record.id,
            "seq": seq,
            "at": event.at,
            "type": event.type,
            "service": getattr(event, "service", None),
            "payload": event.model_dump(exclude=set(EVENT_COLUMNS), exclude_none=True),
        }
        for seq, event in enumerate(record.events)
    ]


def existing_ids(*, connection: sa.Connection | Session, ids: Iterable[str]) -> set[str]:
    """Return which of `ids` are already in the store (one query per 500 ids)."""
    wanted = list(ids)
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found.update(connection.execute(sa.select(INCIDENTS.c.id).where(INCIDENTS.c.id.in_(chunk))).scalars())
    return found


def add_incident(*, db_session: Session, record: IncidentRecord, source: str = "import") -> bool:
    """Add one incident with its timeline; return False (changing nothing) when its id already exists."""
    if db_session.get(Incident, record.id) is not None:
        return False
    db_session.add(Incident(**incident_row(record, source=source)))
    db_session.flush()
    db_session.add_all(IncidentEvent(**row) for row in event_rows(record))
    db_session.flush()
    return True


def event_to_dict(
    *, at: datetime, type_: str, service: str | None, payload: dict[str, Any]
) -> dict[str, Any]:
    """Return one timeline event in `remediate.incident/v1` form."""
    event: dict[str, Any] = {"at": iso(at), "type": type_}
    if service is not None:
        event["service"] = service
    event.update(payload)
    return event


def incident_to_dict(incident: sa.Row[Any] | Incident, events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Return one incident in `remediate.incident/v1` form (the shape `remediate export` writes)."""
    record: dict[str, Any] = {
        "format": FORMAT,
        "id": incident.id,
        "title": incident.title,
        "severity": incident.severity,
    }
    if incident.topology is not None:
        record["topology"] = incident.topology
    record["services"] = list(incident.services or ())
    record["opened_at"] = iso(incident.opened_at)
    if incident.resolved_at is not None:
        record["resolved_at"] = iso(incident.resolved_at)
    if incident.root_cause_service is not None or incident.root_cause_fault is not None:
        cause = {"service": incident.root_cause_service, "fault": incident.root_cause_fault}
        record["root_cause"] = {k: v for k, v in cause.items() if v is not None}
    record["events"] = list(events)
    return record


def get_record(*, db_session: Session, incident_id: str) -> dict[str, Any]:
    """Return one incident with its timeline in `remediate.incident/v1` form; raise if unknown."""
    incident = db_session.get(Incident, incident_id)
    if incident is None:
        raise IncidentNotFoundError(
            f"no incident {incident_id!r} in the store; `remediate incidents list` shows the ids",
            incident_id=incident_id,
        )
    rows = db_session.execute(
        sa.select(EVENTS.c.at, EVENTS.c.type, EVENTS.c.service, EVENTS.c.payload)
        .where(EVENTS.c.incident_id == incident_id)
        .order_by(EVENTS.c.seq)
    )
    events = [event_to_dict(at=r.at, type_=r.type, service=r.service, payload=r.payload) for r in rows]
    return incident_to_dict(incident, events)


def list_incidents(
    *, db_session: Session, status: str | None = None, limit: int = 50, offset: int = 0
) -> list[IncidentSummary]:
    """Return incidents, newest opened first, with their number of timeline events."""
    query = (
        sa.select(
            INCIDENTS.c.id,
            INCIDENTS.c.title,
            INCIDENTS.c.severity,
            INCIDENTS.c.status,
            INCIDENTS.c.opened_at,
            INCIDENTS.c.resolved_at,
        )
        .order_by(INCIDENTS.c.opened_at.desc(), INCIDENTS.c.id)
        .limit(limit)
        .offset(offset)
    )
    if status is not None:
        query = query.where(INCIDENTS.c.status == status)
    page = db_session.execute(query).all()
    counts: dict[str, int] = {}
    if page:
        counted = (
            sa.select(EVENTS.c.incident_id, sa.func.count())
            .where(EVENTS.c.incident_id.in_([row.id for row in page]))
            .group_by(EVENTS.c.incident_id)
        )
        counts = {incident_id: int(n) for incident_id, n in db_session.execute(counted)}
    return [IncidentSummary(*row, events=counts.get(row.id, 0)) for row in page]


def count_incidents(*, db_session: Session, status: str | None = None) -> int:
    """Return how many incidents the store holds (optionally only open or resolved ones)."""
    query = sa.select(sa.func.count()).select_from(INCIDENTS)
    if status is not None:
        query = query.where(INCIDENTS.c.status == status)
    return int(db_session.execute(query).scalar_one())
