"""Deploys and config changes pushed to the bot (`POST /events/deploy`), kept for a while (migration 0008).

The policy reads "recent deploy / config change" features, as imported history supplies them. Live,
each change joins the timelines of the open incidents it concerns at once; and it is kept here until
``keep_until`` (its time plus the recency window the bot had when it arrived), so an incident that
opens later starts with it on its timeline (`incidents_db.incidents.create`), dated when it happened.
A change is recorded once: a re-sent delivery (same ``key``) is a duplicate and adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from incidents_db.models import Base

KINDS = ("deploy", "config_change")  # the timeline event types a change becomes


class ChangeEvent(Base):
    """One deploy or config change of one service, as it arrived."""

    __tablename__ = "change_events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(sa.String(64), unique=True)
    service: Mapped[str] = mapped_column(sa.String(200), index=True)
    kind: Mapped[str] = mapped_column(sa.String(20))
    at: Mapped[datetime] = mapped_column()
    received_at: Mapped[datetime] = mapped_column()
    keep_until: Mapped[datetime] = mapped_column(index=True)
    # the graph the service was a node of when it arrived: the change concerns every incident on it
    topology: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    source: Mapped[str] = mapped_column(sa.String(50))
    details: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)

    def timeline_fields(self) -> dict[str, Any]:
        """Return the timeline event's payload (``version`` for a deploy, ``change`` for a config change)."""
        return {"source": self.source, **dict(self.details or {})}


def keep(
    *,
    db_session: Session,
    key: str,
    service: str,
    kind: str,
    at: datetime,
    now: datetime,
    keep_until: datetime,
    topology: str | None,
    source: str,
    details: dict[str, Any],
) -> bool:
    """Store a change unless one with this ``key`` is stored; return whether it was stored (not committed).

    One ``INSERT ... ON CONFLICT DO NOTHING`` (SQLite and PostgreSQL), so two replicas receiving the
    same re-sent delivery store it once.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    insert = sqlite_insert if db_session.get_bind().dialect.name == "sqlite" else pg_insert
    row = {
        "key": key, "service": service, "kind": kind, "at": at, "received_at": now,
        "keep_until": keep_until, "topology": topology, "source": source, "details": dict(details),
    }  # fmt: skip
    statement = insert(ChangeEvent).values(**row).on_conflict_do_nothing(index_elements=["key"])
    stored = db_session.execute(statement.returning(ChangeEvent.id)).first()
    return stored is not None


def kept_for(
    *, db_session: Session, services: Iterable[str], topology: str | None, now: datetime
) -> list[ChangeEvent]:
    """Return the kept changes a new incident starts with, oldest first.

    Those still within their window at ``now`` and not after it, of the incident's ``services`` or of
    any node of its ``topology`` (the graph the bot observes incidents on).
    """
    concerns: sa.ColumnElement[bool] = ChangeEvent.service.in_(sorted(set(services)))
    if topology is not None:
        concerns = sa.or_(concerns, ChangeEvent.topology == topology)
    query = (
        sa.select(ChangeEvent)
        .where(ChangeEvent.keep_until >= now, ChangeEvent.at <= now, concerns)
        .order_by(ChangeEvent.at, ChangeEvent.id)
    )
    return list(db_session.execute(query).scalars())


def recent(*, db_session: Session, service: str | None = None, limit: int = 50) -> list[ChangeEvent]:
    """Return the newest stored changes (of one service, if named), newest first."""
    query = sa.select(ChangeEvent).order_by(ChangeEvent.at.desc(), ChangeEvent.id.desc()).limit(limit)
    if service is not None:
        query = query.where(ChangeEvent.service == service)
    return list(db_session.execute(query).scalars())
