"""The alerts of open incidents, by fingerprint (migration 0018): how intake finds an alert's incident.

One row per fingerprint held by an open incident: the incident, the alert's current status (firing or
resolved) and when it was last seen. Appending to a timeline (`incidents_db.timeline`) keeps the row of
every fingerprinted alert it writes and `incidents.resolve` drops the rows of the incident it resolves,
both under the incidents' write lock (`incidents_db.locks`), so the table always says what a scan of the open incidents' alert
events would say (`incidents.alert_states`), and intake reads only the fingerprints of its delivery,
through the primary key, however many incidents are open and however long they are.

A fingerprint is the primary key, so the database itself refuses a second open incident for one alert,
across replicas too.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from incidents_db.models import Base, Incident, IncidentEvent

_CHUNK = 500  # fingerprints per IN (...) query


class AlertFingerprint(Base):
    """One alert of an open incident: its incident and current status."""

    __tablename__ = "alert_fingerprints"
    __table_args__ = (
        sa.CheckConstraint("status IN ('firing','resolved')", name="ck_alert_fingerprints_status"),
    )

    fingerprint: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    incident_id: Mapped[str] = mapped_column(sa.ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(sa.String(16))
    last_seen: Mapped[datetime] = mapped_column()


def states_of(*, db_session: Session, fingerprints: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Return fingerprint -> (incident id, status) for those of ``fingerprints`` an open incident holds."""
    wanted = sorted({f for f in fingerprints if f})
    states: dict[str, tuple[str, str]] = {}
    table = AlertFingerprint.__table__.c
    for start in range(0, len(wanted), _CHUNK):
        rows = db_session.execute(
            sa.select(table.fingerprint, table.incident_id, table.status).where(
                table.fingerprint.in_(wanted[start : start + _CHUNK])
            )
        )
        states.update((fp, (incident_id, status)) for fp, incident_id, status in rows)
    return states


def statuses_of(*, db_session: Session, incident_id: str) -> list[str]:
    """Return the current statuses of the incident's alerts (empty when it holds none)."""
    return list(
        db_session.execute(
            sa.select(AlertFingerprint.status).where(AlertFingerprint.incident_id == incident_id)
        ).scalars()
    )


def row(fingerprint: str, *, incident_id: str, status: object, at: datetime) -> dict[str, Any]:
    """Return the row saying the incident holds the alert, now in ``status``, seen at ``at``.

    A status other than resolved is kept as firing: an alert that has not resolved is active.
    """
    status = "resolved" if status == "resolved" else "firing"
    return {"fingerprint": fingerprint, "incident_id": incident_id, "status": status, "last_seen": at}


def write(*, db_session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert the rows, or update the fingerprints' existing rows (one statement; not committed).

    Call it under the incidents' write lock (`incidents_db.timeline` does), so two writers never race on
    a fingerprint; at most one row per fingerprint.
    """
    changed = ("incident_id", "status", "last_seen")
    upsert: sa.Executable
    if db_session.get_bind().dialect.name == "postgresql":
        pg = postgresql.insert(AlertFingerprint)
        upsert = pg.on_conflict_do_update(
            index_elements=["fingerprint"], set_={name: pg.excluded[name] for name in changed}
        )
    else:
        lite = sqlite.insert(AlertFingerprint)
        upsert = lite.on_conflict_do_update(
            index_elements=["fingerprint"], set_={name: lite.excluded[name] for name in changed}
        )
    db_session.execute(upsert, rows)


def forget(*, db_session: Session, incident_id: str) -> int:
    """Drop the rows of an incident that is no longer open; return how many there were."""
    result = db_session.execute(
        sa.delete(AlertFingerprint)
        .where(AlertFingerprint.incident_id == incident_id)
        .execution_options(synchronize_session="fetch")
    )
    return int(getattr(result, "rowcount", 0) or 0)


def backfill(*, connection: sa.Connection) -> int:
    """Fill the table from the alert events of the open incidents (the migration's upgrade); return rows.

    The same scan intake did before the table existed: per fingerprint, its latest event (by incident
    id, then seq) among the open incidents' alerts.
    """
    rows = connection.execute(
        sa.select(IncidentEvent.incident_id, IncidentEvent.at, IncidentEvent.payload)
        .join(Incident, Incident.id == IncidentEvent.incident_id)
        .where(Incident.status == "open", IncidentEvent.type == "alert")
        .order_by(IncidentEvent.incident_id, IncidentEvent.seq)
    )
    latest: dict[str, dict[str, Any]] = {}
    for incident_id, at, payload in rows:
        fp = (payload or {}).get("fingerprint")
        if fp:
            status = "resolved" if payload.get("status") == "resolved" else "firing"
            latest[str(fp)] = {
                "fingerprint": str(fp),
                "incident_id": incident_id,
                "status": status,
                "last_seen": at,
            }
    if latest:
        connection.execute(sa.insert(AlertFingerprint), list(latest.values()))
    return len(latest)
