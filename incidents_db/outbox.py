"""The durable Slack outbox and the Events API dedupe table (migration 0003).

The bot never calls Slack's Web API inline for anything that must not be lost: it writes an outbox row
in the same transaction as the change it announces, and a worker delivers rows, retrying with backoff
on rate limits (429 with Retry-After), 5xx answers and timeouts. Rows are claimed with a short lease,
so several bot replicas can share one store without sending a row twice at the same time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from incidents_db.models import Base, utcnow

PENDING, SENT, DEAD = "pending", "sent", "dead"


class OutboxMessage(Base):
    """One Web API call (or card render) waiting to reach Slack, with its retry state."""

    __tablename__ = "slack_outbox"
    __table_args__ = (
        sa.CheckConstraint("state IN ('pending','sent','dead')", name="ck_slack_outbox_state"),
        sa.Index("ix_slack_outbox_due", "state", "next_attempt_at"),
        sa.Index("ix_slack_outbox_coalesce", "coalesce_key", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    incident_id: Mapped[str | None] = mapped_column(sa.String(200), nullable=True, index=True)
    coalesce_key: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    state: Mapped[str] = mapped_column(sa.String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(nullable=True)
    last_error: Mapped[str] = mapped_column(sa.Text, default="")
    result: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(nullable=True)


class SlackCard(Base):
    """Where an incident's card was posted, so later changes update it in place (chat.update)."""

    __tablename__ = "slack_cards"

    incident_id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    channel: Mapped[str] = mapped_column(sa.String(64))
    ts: Mapped[str] = mapped_column(sa.String(32))
    thread_seq: Mapped[int] = mapped_column(sa.Integer, default=-1)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SeenEvent(Base):
    """An Events API event id already handled; Slack's retries of it are acknowledged and dropped."""

    __tablename__ = "slack_events_seen"

    event_id: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)


@dataclass(frozen=True)
class Message:
    """A claimed outbox row, detached from the session."""

    id: int
    kind: str
    incident_id: str | None
    payload: dict[str, Any]
    attempts: int


def enqueue(
    *,
    db_session: Session,
    kind: str,
    payload: dict[str, Any],
    incident_id: str | None = None,
    coalesce_key: str | None = None,
    now: datetime | None = None,
    min_interval_s: float = 0.0,
) -> int:
    """Add a message (not committed); with ``coalesce_key``, reuse a pending one with the same key.

    Coalescing is what turns an alert storm into one card update: the worker renders the card when it
    sends, so one pending "card" row per incident is enough however many changes arrive. With
    ``min_interval_s``, a new row for a key is not due until that long after the key's previous row, so
    however fast the worker drains, a key reaches Slack at most once per interval (the changes that
    arrive meanwhile join the waiting row).
    """
    now = now or utcnow()
    due = now
    if coalesce_key is not None:
        existing = db_session.execute(
            sa.select(OutboxMessage.id).where(
                OutboxMessage.coalesce_key == coalesce_key,
                OutboxMessage.state == PENDING,
                OutboxMessage.attempts == 0,
                OutboxMessage.locked_until.is_(None),
            )
            .order_by(OutboxMessage.id)
            .limit(1)  # concurrent writers (no process-wide lock) may have added one each
        ).scalar_one_or_none()
        if existing is not None:
            return int(existing)
        if min_interval_s > 0:
            previous = db_session.execute(
                sa.select(OutboxMessage.next_attempt_at, OutboxMessage.sent_at)
                .where(OutboxMessage.coalesce_key == coalesce_key)
                .order_by(OutboxMessage.id.desc())
                .limit(1)
            ).first()
            if previous is not None:
                last = previous.sent_at or previous.next_attempt_at  # in flight: its own due time
                due = max(now, last + timedelta(seconds=min_interval_s))
    row = OutboxMessage(
        kind=kind,
        incident_id=incident_id,
        coalesce_key=coalesce_key,
        payload=payload,
        state=PENDING,
        attempts=0,
        next_attempt_at=due,
        last_error="",
        result={},
        created_at=now,
    )
    db_session.add(row)
    db_session.flush()
    return row.id


def claim_due(*, db_session: Session, now: datetime, limit: int = 20, lease_s: float = 60.0) -> list[Message]:
    """Claim up to ``limit`` due pending messages, oldest first, for ``lease_s`` seconds; commit the claim."""
    candidates = db_session.execute(
        sa.select(OutboxMessage)
        .where(
            OutboxMessage.state == PENDING,
            OutboxMessage.next_attempt_at <= now,
            sa.or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until < now),
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
    ).scalars()
    claimed: list[Message] = []
    until = now + timedelta(seconds=lease_s)
    for row in list(candidates):
        result = db_session.execute(
            sa.update(OutboxMessage)
            .where(
                OutboxMessage.id == row.id,
                OutboxMessage.state == PENDING,
                sa.or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until < now),
            )
            .values(locked_until=until)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) == 1:
            claimed.append(Message(row.id, row.kind, row.incident_id, dict(row.payload), row.attempts))
    db_session.commit()
    return claimed


def mark_sent(*, db_session: Session, message_id: int, now: datetime, result: dict[str, Any]) -> None:
    """Record a delivered message (not committed)."""
    db_session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(
            state=SENT,
            sent_at=now,
            result=result,
            locked_until=None,
            attempts=OutboxMessage.attempts + 1,
        )
    )


def mark_retry(
    *,
    db_session: Session,
    message_id: int,
    now: datetime,
    delay_s: float,
    error: str,
    max_attempts: int,
) -> bool:
    """Schedule another attempt after ``delay_s``; past ``max_attempts`` give up (``dead``). Return True if retried."""
    row = db_session.get(OutboxMessage, message_id)
    if row is None:
        return False
    row.attempts += 1
    row.last_error = error[:2000]
    row.locked_until = None
    if row.attempts >= max_attempts:
        row.state = DEAD
        return False
    row.next_attempt_at = now + timedelta(seconds=delay_s)
    return True


def release(*, db_session: Session, message_id: int, now: datetime, delay_s: float) -> None:
    """Put a claimed message back without counting an attempt (it waits for something else first)."""
    db_session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(locked_until=None, next_attempt_at=now + timedelta(seconds=delay_s))
    )


def counts(*, db_session: Session) -> dict[str, int]:
    """Return how many messages are pending, sent and dead."""
    rows = db_session.execute(sa.select(OutboxMessage.state, sa.func.count()).group_by(OutboxMessage.state))
    found = {state: int(n) for state, n in rows}
    return {state: found.get(state, 0) for state in (PENDING, SENT, DEAD)}


def get_card(*, db_session: Session, incident_id: str) -> SlackCard | None:
    """Return where the incident's card was posted, if it was."""
    return db_session.get(SlackCard, incident_id)


def set_card(*, db_session: Session, incident_id: str, channel: str, ts: str, now: datetime) -> None:
    """Remember where the incident's card lives (not committed)."""
    row = db_session.get(SlackCard, incident_id)
    if row is None:
        db_session.add(
            SlackCard(incident_id=incident_id, channel=channel, ts=ts, thread_seq=-1, updated_at=now)
        )
    else:
        row.channel, row.ts, row.updated_at = channel, ts, now


def first_delivery(*, db_session: Session, event_id: str, now: datetime) -> bool:
    """Record an Events API event id and commit; return False when it was seen before (a retry)."""
    try:
        db_session.add(SeenEvent(event_id=event_id, at=now))
        db_session.commit()
    except sa.exc.IntegrityError:
        db_session.rollback()
        return False
    return True
