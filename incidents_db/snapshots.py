"""The latest metric snapshot of each service, as pushed to the bot (migration 0005).

Live incidents get alerts from the webhooks; the signals a policy reads besides alerts (error rates,
latency, saturation, per-call error rates, replicas, request rate) arrive as snapshots. The store keeps
the newest one per service here, so an incident that opens later starts with the recent picture, and
the intake copies snapshots into the timelines of open incidents (at a bounded pace) so that mining
sees what the bot saw.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from incidents_db.models import Base, IncidentEvent


class ServiceSnapshot(Base):
    """The newest metric values received for one service."""

    __tablename__ = "service_snapshots"

    service: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    at: Mapped[datetime] = mapped_column()
    values: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    received_at: Mapped[datetime] = mapped_column()


def keep_latest(
    *, db_session: Session, service: str, at: datetime, values: dict[str, float], now: datetime
) -> bool:
    """Store a snapshot unless a newer one is already kept; return whether it was stored (not committed).

    One upsert (``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` on SQLite and PostgreSQL), so two bot
    replicas storing the first snapshot of a service at once cannot collide on the key.
    """
    table = ServiceSnapshot.__table__.c
    insert = sqlite_insert if db_session.get_bind().dialect.name == "sqlite" else pg_insert
    row = {"service": service, "at": at, "values": dict(values), "received_at": now}
    statement = insert(ServiceSnapshot).values(**row)
    statement = statement.on_conflict_do_update(
        index_elements=[table.service],
        set_={"at": statement.excluded.at, "values": statement.excluded["values"], "received_at": now},
        where=table.at <= statement.excluded.at,
    )
    # RETURNING the entity with populate_existing also refreshes an object of this row already loaded
    stored = db_session.scalars(
        statement.returning(ServiceSnapshot), execution_options={"populate_existing": True}
    ).first()
    return stored is not None


def latest(
    *, db_session: Session, since: datetime, services: Iterable[str] | None = None
) -> list[ServiceSnapshot]:
    """Return the kept snapshots taken at or after ``since`` (of the given services only, if named)."""
    query = sa.select(ServiceSnapshot).where(ServiceSnapshot.at >= since).order_by(ServiceSnapshot.service)
    if services is not None:
        query = query.where(ServiceSnapshot.service.in_(sorted(set(services))))
    return list(db_session.execute(query).scalars())


def recent_metrics(
    *, db_session: Session, incident_ids: Iterable[str], since: datetime
) -> dict[tuple[str, str], tuple[datetime, dict[str, Any]]]:
    """Return (incident id, service) -> (time, values) of the newest metrics event at or after ``since``."""
    ids = sorted(set(incident_ids))
    if not ids:
        return {}
    rows = db_session.execute(
        sa.select(IncidentEvent.incident_id, IncidentEvent.service, IncidentEvent.at, IncidentEvent.payload)
        .where(IncidentEvent.incident_id.in_(ids), IncidentEvent.type == "metrics", IncidentEvent.at >= since)
        .order_by(IncidentEvent.incident_id, IncidentEvent.seq)
    )
    return {
        (str(i), str(s)): (at, dict((payload or {}).get("values") or {}))
        for i, s, at, payload in rows
        if s is not None
    }


def kept_summary(*, db_session: Session) -> tuple[int, datetime | None]:
    """Return how many services have a kept snapshot, and when the newest of them was received."""
    kept, newest = db_session.execute(
        sa.select(sa.func.count(), sa.func.max(ServiceSnapshot.received_at))
    ).one()
    return int(kept), newest
