"""Live incidents: declare, append events, find, resolve, reopen, amend (keyword-only, with the session).

`incidents_db.service` offers import-shaped functions (whole records); a live incident grows one event
at a time, so these functions add that, on the same tables. Writers take the incidents' write lock
(`incidents_db.locks`) first, so ids and ``seq`` numbers are never allocated twice.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from incidents_db import fingerprints
from incidents_db.changes import kept_for
from incidents_db.errors import IncidentNotFoundError
from incidents_db.locks import lock_incidents
from incidents_db.models import ApprovalRequest, Execution, Incident, IncidentEvent
from incidents_db.service import get_record
from incidents_db.snapshots import latest
from incidents_db.timeline import Appender


class OpenForService(Protocol):
    """Returns the open incident of a service updated at ``since`` or later (the latest), or None."""

    def __call__(
        self, *, db_session: Session, service: str, since: datetime | None = None
    ) -> Incident | None:
        """Return the incident an alert of the service joins, if any."""
        ...


SEVERITIES = ("sev1", "sev2", "sev3", "sev4")
_NUMBERED = re.compile(r"INC-(\d+)")


def next_incident_id(*, db_session: Session) -> str:
    """Return ``INC-<n>`` one above the highest numbered incident id in the store.

    ``Incident.number`` is n of every ``INC-<n>`` id (computed by the database, so imported ids count;
    other ids have none), so this is one step down its index however many incidents there are. Call it
    under the incidents' write lock (`create` does), or two writers could pick the same id.
    """
    highest = db_session.execute(sa.select(sa.func.max(Incident.number))).scalar()
    return f"INC-{(highest or 0) + 1}"


def next_incident_id_scan(*, db_session: Session) -> str:
    """Return the next id as before migration 0019, reading every ``INC-`` id (a reference).

    What `next_incident_id`'s tests and `benchmarks/bench_intake.py` compare with; it also counts ids of
    more than 18 digits, which have no number.
    """
    ids = db_session.execute(sa.select(Incident.id).where(Incident.id.like("INC-%"))).scalars()
    highest = max((int(m.group(1)) for i in ids if (m := _NUMBERED.fullmatch(i))), default=0)
    return f"INC-{highest + 1}"


def create(
    *,
    db_session: Session,
    title: str,
    services: Iterable[str],
    severity: str,
    source: str,
    now: datetime,
    topology: str | None = None,
    _next_id: Callable[..., str] = next_incident_id,
) -> Incident:
    """Add an open incident (flushed, not committed); its timeline starts with the kept recent changes.

    Deploys and config changes still within their recency window (`incidents_db.changes`) of its
    services, or of any node of its ``topology``, come first, dated when they happened, as in history.
    ``_next_id`` is for the reference runs only (`next_incident_id_scan`).
    """
    lock_incidents(db_session=db_session)  # the id is one above the highest: allocate it alone
    if severity not in SEVERITIES:
        severity = "sev3"
    incident = Incident(
        id=_next_id(db_session=db_session),
        title=title[:500] or "untitled incident",
        severity=severity,
        status="open",
        topology=topology,
        services=sorted(set(services)),
        source=source,
        opened_at=now,
        created_at=now,
        updated_at=now,
    )
    db_session.add(incident)
    db_session.flush()
    attach_kept_changes(db_session=db_session, incident_id=incident.id, now=now)
    return incident


def append(
    *,
    db_session: Session,
    incident_id: str,
    type_: str,
    at: datetime,
    service: str | None = None,
    affects: bool = True,
    **payload: Any,
) -> int:
    """Append one timeline event (flushed, not committed) and return its seq.

    The event is stamped no earlier than the timeline's last event, so a timeline stays in time order
    (what `remediate.incident/v1` requires) whatever clocks the senders have. ``affects=False`` (metric
    snapshots) leaves the incident's services and its last-update time alone: context is not activity.
    The incidents' write lock is taken first, so concurrent writers (replicas, the action runner) never
    pick the same ``seq``. Many events at once: `incidents_db.timeline.Appender`, the same code.
    """
    appender = Appender(db_session)
    seq = appender.append(
        incident_id=incident_id, type_=type_, at=at, service=service, affects=affects, **payload
    )
    appender.flush()
    return seq


def find(*, db_session: Session, incident_id: str) -> Incident | None:
    """Return the incident with exactly this id, or None."""
    return db_session.get(Incident, incident_id)


def get(*, db_session: Session, incident_id: str) -> Incident:
    """Return the incident (ids are matched case-insensitively) or raise IncidentNotFoundError."""
    incident = find(db_session=db_session, incident_id=incident_id) or find(
        db_session=db_session, incident_id=incident_id.upper()
    )
    if incident is None:
        raise IncidentNotFoundError(
            f"no incident {incident_id!r} in the store; `remediate incidents list` shows the ids",
            incident_id=incident_id,
        )
    return incident


def record(*, db_session: Session, incident_id: str) -> dict[str, Any]:
    """Return the incident with its timeline in `remediate.incident/v1` form."""
    return get_record(
        db_session=db_session, incident_id=get(db_session=db_session, incident_id=incident_id).id
    )


def open_incidents(*, db_session: Session, limit: int = 20) -> list[Incident]:
    """Return open incidents, newest first."""
    query = (
        sa.select(Incident).where(Incident.status == "open").order_by(Incident.opened_at.desc()).limit(limit)
    )
    return list(db_session.execute(query).scalars())


def open_for_service(*, db_session: Session, service: str, since: datetime | None = None) -> Incident | None:
    """Return the most recently updated open incident affecting the service (updated at ``since`` or later).

    Ties on the last update go to the latest opened, then to the first created (lowest number), then to
    the id. One query: it walks the open incidents (of the window) latest first along
    `ix_incidents_status_updated_at` and stops at the first that lists the service (a JSON test in SQL),
    so the resolved incidents of the store are never read.
    """
    query = (
        sa.select(Incident)
        .where(Incident.status == "open", _lists(db_session, service))
        .order_by(
            Incident.updated_at.desc(),
            Incident.opened_at.desc(),
            Incident.number.asc().nulls_last(),
            Incident.id.asc(),
        )
        .limit(1)
    )
    if since is not None:
        query = query.where(Incident.updated_at >= since)
    return db_session.execute(query).scalars().first()


def _lists(db_session: Session, service: str) -> sa.ColumnElement[bool]:
    """SQL: the incident's ``services`` (a JSON list) holds ``service``."""
    if db_session.get_bind().dialect.name == "postgresql":
        return sa.cast(Incident.services, postgresql.JSONB).contains([service])
    each = sa.func.json_each(Incident.services).table_valued("value")
    return sa.exists().where(each.c.value == service)


def open_for_service_scan(
    *, db_session: Session, service: str, since: datetime | None = None
) -> Incident | None:
    """Return the open incident of the service as before migration 0019 (a reference).

    It read the 200 latest opened open incidents and sorted them here; what `open_for_service`'s tests
    and `benchmarks/bench_intake.py` compare with.
    """
    for incident in sorted(
        open_incidents(db_session=db_session, limit=200), key=lambda i: i.updated_at, reverse=True
    ):
        if service in (incident.services or []):
            return None if since is not None and incident.updated_at < since else incident
    return None


def resolve(*, db_session: Session, incident_id: str, actor: str, now: datetime, note: str = "") -> bool:
    """Resolve an open incident (flushed, not committed); return False when it already was resolved."""
    incident = get(db_session=db_session, incident_id=incident_id)
    if incident.status == "resolved":
        return False
    if note:
        append(db_session=db_session, incident_id=incident.id, type_="note", at=now, actor=actor, text=note)
    append(db_session=db_session, incident_id=incident.id, type_="resolved", at=now, actor=actor)
    incident.status = "resolved"
    incident.resolved_at = max(now, incident.opened_at)
    fingerprints.forget(db_session=db_session, incident_id=incident.id)  # only open incidents hold alerts
    db_session.flush()
    return True


def reopen(*, db_session: Session, incident_id: str, actor: str, now: datetime) -> bool:
    """Reopen a resolved incident (flushed, not committed); return False when it is open already.

    The timeline keeps its ``resolved`` event and gets a ``reopened`` note; a later resolve adds another.
    """
    incident = get(db_session=db_session, incident_id=incident_id)
    if incident.status != "resolved":
        return False
    append(db_session=db_session, incident_id=incident.id, type_="note", at=now, actor=actor,
           text="reopened", reopened=True)  # fmt: skip
    incident.status, incident.resolved_at = "open", None
    db_session.flush()
    return True


def amend(
    *,
    db_session: Session,
    incident_id: str,
    actor: str,
    now: datetime,
    title: str | None = None,
    severity: str | None = None,
) -> dict[str, tuple[str, str]]:
    """Change an incident's title or severity (flushed); return {field: (before, after)} of what changed.

    Each change is a timeline note (``changed``, ``before``, ``after``); an unchanged value adds nothing.
    """
    incident = get(db_session=db_session, incident_id=incident_id)
    if severity is not None and severity not in SEVERITIES:
        raise ValueError(f"severity is one of {', '.join(SEVERITIES)}, got {severity!r}")
    wanted = {
        "title": None if title is None else (title.strip()[:500] or incident.title),
        "severity": severity,
    }
    changed: dict[str, tuple[str, str]] = {}
    for field, after in wanted.items():
        before = getattr(incident, field)
        if after is None or after == before:
            continue
        append(db_session=db_session, incident_id=incident.id, type_="note", at=now, actor=actor,
               text=f"{field} changed from {before!r} to {after!r}"[:2000], changed=field,
               before=before, after=after)  # fmt: skip
        setattr(incident, field, after)
        changed[field] = (before, after)
    db_session.flush()
    return changed


def requester_of(rec: dict[str, Any]) -> str | None:
    """Return who declared the incident (the actor of its ``declared`` note), None for alert-born ones."""
    for event in rec.get("events", []):
        if event.get("type") == "note" and event.get("kind") == "declared":
            return str(event.get("actor"))
    return None


def recent_records(*, db_session: Session, exclude: str, limit: int = 200) -> list[dict[str, Any]]:
    """Return up to ``limit`` other incidents (newest first) with their timelines, for similarity."""
    ids = db_session.execute(
        sa.select(Incident.id).where(Incident.id != exclude).order_by(Incident.opened_at.desc()).limit(limit)
    ).scalars()
    return [get_record(db_session=db_session, incident_id=i) for i in list(ids)]


def alert_states(*, db_session: Session) -> dict[str, tuple[str, str]]:
    """Return fingerprint -> (incident id, latest status) over the alerts of open incidents, by a full scan.

    Intake reads the indexed `incidents_db.fingerprints` instead; this scan is what that table must
    always equal (its tests) and the same-run reference of `benchmarks/bench_intake.py`.
    """
    rows = db_session.execute(
        sa.select(IncidentEvent.incident_id, IncidentEvent.payload)
        .join(Incident, Incident.id == IncidentEvent.incident_id)
        .where(Incident.status == "open", IncidentEvent.type == "alert")
        .order_by(IncidentEvent.incident_id, IncidentEvent.seq)
    )
    states: dict[str, tuple[str, str]] = {}
    for incident_id, payload in rows:
        fp = (payload or {}).get("fingerprint")
        if fp:
            states[str(fp)] = (incident_id, str(payload.get("status")))
    return states


def events_after(*, db_session: Session, incident_id: str, seq: int) -> list[IncidentEvent]:
    """Return the incident's timeline events after ``seq``, in order."""
    rows = db_session.execute(
        sa.select(IncidentEvent)
        .where(IncidentEvent.incident_id == incident_id, IncidentEvent.seq > seq)
        .order_by(IncidentEvent.seq)
    ).scalars()
    return list(rows)


def attach_recent_snapshots(
    *, db_session: Session, incident_id: str, now: datetime, also: Iterable[str] = (), max_age_s: float
) -> int:
    """Copy the kept snapshots of the incident's services (and ``also``) into its timeline; return how many.

    Only snapshots received within ``max_age_s`` of ``now`` are copied, stamped ``now`` (not committed).
    """
    incident = get(db_session=db_session, incident_id=incident_id)
    names = set(incident.services or ()) | set(also)
    rows = latest(db_session=db_session, since=now - timedelta(seconds=max_age_s), services=names)
    for row in rows:
        append(
            db_session=db_session,
            incident_id=incident_id,
            type_="metrics",
            at=now,
            service=row.service,
            affects=False,
            values=dict(row.values),
        )
    return len(rows)


def attach_kept_changes(*, db_session: Session, incident_id: str, now: datetime) -> int:
    """Copy the kept changes that concern the incident into its timeline, at their own times; return how many.

    Context, not activity (``affects=False``): a callee's deploy does not make it an affected service.
    """
    incident = get(db_session=db_session, incident_id=incident_id)
    rows = kept_for(
        db_session=db_session, services=incident.services or (), topology=incident.topology, now=now
    )
    for row in rows:
        append(
            db_session=db_session,
            incident_id=incident_id,
            type_=row.kind,
            at=row.at,
            service=row.service,
            affects=False,
            **row.timeline_fields(),
        )
    return len(rows)


def incidents_of_requests(*, db_session: Session, request_ids: Iterable[str]) -> set[str]:
    """Return the ids of the incidents the given approval requests act on."""
    return {
        row.incident_id
        for rid in request_ids
        if (row := db_session.get(ApprovalRequest, rid)) is not None and row.incident_id
    }


def execution_outcome(*, db_session: Session, request_id: str) -> dict[str, Any] | None:
    """Return the recorded outcome of a request's execution ({} when none yet), None without an execution."""
    execution = db_session.query(Execution).filter_by(request_id=request_id).one_or_none()
    return None if execution is None else dict(execution.outcome or {})
