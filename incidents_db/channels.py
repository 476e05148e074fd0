"""Incident channels: each incident's own Slack channel and where it stands (migration 0014).

One row per incident that was given a channel (``incident_channels`` setting on). Its ``state`` is the
store's decision, so several bot replicas agree without talking to each other:

- ``creating``: the name was chosen and ``conversations.create`` may have run (a crash leaves it here;
  the next attempt adopts the channel it finds under that name if the bot created it);
- ``open``: the channel exists, the card lives in it; ``invited`` lists who was invited;
- ``failed``: it could not be created; the card went to the main channel and stays there;
- ``archiving``: the archive job chose it (one conditional update: one replica wins) and queued the
  ``conversations.archive`` call in the outbox;
- ``archived``: Slack archived it.

Keyword-only functions taking the session; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from incidents_db.models import Base, Incident, IncidentEvent
from incidents_db.roles import ROLES

CREATING, OPEN, FAILED, ARCHIVING, ARCHIVED = "creating", "open", "failed", "archiving", "archived"
STATES = (CREATING, OPEN, FAILED, ARCHIVING, ARCHIVED)


class IncidentChannel(Base):
    """The Slack channel of one incident, or why it has none."""

    __tablename__ = "incident_channels"
    __table_args__ = (
        sa.CheckConstraint(
            "state IN ('creating','open','failed','archiving','archived')", name="ck_incident_channels_state"
        ),
    )

    incident_id: Mapped[str] = mapped_column(
        sa.String(200), sa.ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(sa.String(80))
    channel_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True, index=True)
    state: Mapped[str] = mapped_column(sa.String(16))
    invited: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    error: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column()
    archived_at: Mapped[datetime | None] = mapped_column(nullable=True)


def get(*, db_session: Session, incident_id: str) -> IncidentChannel | None:
    """Return the incident's channel row, if it was given one (or tried)."""
    return db_session.get(IncidentChannel, incident_id)


def begin(*, db_session: Session, incident_id: str, name: str, now: datetime) -> IncidentChannel:
    """Record that the incident's channel is being created under ``name`` (flushed, not committed)."""
    row = IncidentChannel(
        incident_id=incident_id,
        name=name,
        channel_id=None,
        state=CREATING,
        invited=[],
        error="",
        created_at=now,
    )
    db_session.add(row)
    db_session.flush()
    return row


def opened(*, db_session: Session, incident_id: str, channel_id: str, name: str) -> None:
    """Record the created channel (its id and the name Slack gave it)."""
    row = db_session.get(IncidentChannel, incident_id)
    if row is not None:
        row.channel_id, row.name, row.state, row.error = channel_id, name, OPEN, ""


def failed(*, db_session: Session, incident_id: str, error: str) -> None:
    """Record that the channel could not be created; the card goes to the main channel for good."""
    row = db_session.get(IncidentChannel, incident_id)
    if row is not None:
        row.state, row.error = FAILED, error[:2000]


def add_invited(*, db_session: Session, incident_id: str, users: Iterable[str]) -> None:
    """Remember that these users were invited (a later card update invites only newcomers)."""
    row = db_session.get(IncidentChannel, incident_id)
    if row is not None:
        row.invited = sorted(set(row.invited or ()) | set(users))


def incident_of(*, db_session: Session, channel_id: str) -> str | None:
    """Return the incident whose own channel this is, if any."""
    return db_session.execute(
        sa.select(IncidentChannel.incident_id).where(IncidentChannel.channel_id == channel_id).limit(1)
    ).scalar_one_or_none()


def own_channel_ids() -> sa.Select[Any]:
    """Return a subquery of every incident channel's id (to tell them from the main channel)."""
    return sa.select(IncidentChannel.channel_id).where(IncidentChannel.channel_id.is_not(None))


def current_roles(*, db_session: Session, incident_id: str) -> dict[str, str]:
    """Return role -> user id (commander, scribe) from the incident's latest ``role`` notes."""
    found: dict[str, str] = {}
    rows = db_session.execute(
        sa.select(IncidentEvent.payload)
        .where(IncidentEvent.incident_id == incident_id, IncidentEvent.type == "note")
        .order_by(IncidentEvent.seq)
    ).scalars()
    for payload in rows:
        if payload.get("kind") == "role" and payload.get("role") in ROLES and payload.get("user"):
            found[str(payload["role"])] = str(payload["user"])
    return found


def start_archiving(*, db_session: Session, now: datetime, after_s: float) -> list[tuple[str, str]]:
    """Move open channels of incidents resolved at least ``after_s`` ago to ``archiving``; return (incident, channel).

    Each move is a conditional update from ``open``: when two replicas run the job at once, the database
    lets one of them win each row, so each channel is archived once. The caller queues the archive call
    in the same transaction and commits.
    """
    cutoff = now - timedelta(seconds=after_s)
    due = db_session.execute(
        sa.select(IncidentChannel.incident_id, IncidentChannel.channel_id)
        .join(Incident, Incident.id == IncidentChannel.incident_id)
        .where(
            IncidentChannel.state == OPEN,
            IncidentChannel.channel_id.is_not(None),
            Incident.resolved_at.is_not(None),
            Incident.resolved_at <= cutoff,
        )
        .order_by(Incident.resolved_at)
    ).all()
    chosen: list[tuple[str, str]] = []
    for incident_id, channel_id in due:
        result = db_session.execute(
            sa.update(IncidentChannel)
            .where(IncidentChannel.incident_id == incident_id, IncidentChannel.state == OPEN)
            .values(state=ARCHIVING)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) == 1:
            chosen.append((str(incident_id), str(channel_id)))
    return chosen


def archived(*, db_session: Session, incident_id: str, now: datetime) -> None:
    """Record that Slack archived the incident's channel."""
    db_session.execute(
        sa.update(IncidentChannel)
        .where(IncidentChannel.incident_id == incident_id)
        .values(state=ARCHIVED, archived_at=now)
        .execution_options(synchronize_session=False)
    )
