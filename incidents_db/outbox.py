"""The durable Slack outbox and the Events API dedupe table (migration 0003).

The bot never calls Slack's Web API inline for anything that must not be lost: it writes an outbox row
in the same transaction as the change it announces, and a worker delivers rows, retrying with backoff
on rate limits (429 with Retry-After), 5xx answers and timeouts. Rows are claimed with a short lease,
so several bot replicas can share one store without sending a row twice at the same time.

Nothing is dropped: a row that fails ``max_attempts`` times becomes ``dead`` but stays in the table,
is tried again every ``dead_retry_s`` (`claim_due` claims due dead rows too), and is revived at once
(`revive_dead`) when a delivery succeeds again, unless Slack refused the call itself (``refused``).
Rate limits (429) never count as attempts (`release`). Migration 0007 adds ``uncertain`` and
``refused``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column

from incidents_db.channels import own_channel_ids
from incidents_db.models import Base, utcnow

PENDING, SENT, DEAD = "pending", "sent", "dead"
# replies to a person who is waiting go out before cards and timelines that are due at the same time
REPLY_KINDS = ("respond", "ephemeral", "message")
OUTBOX_CLAIM_KEY = 0x72656D6F7574  # "remout": the advisory lock id that serialises claims on PostgreSQL


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
    # an attempt may have reached Slack without its answer reaching us: look it up before sending again
    uncertain: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    # Slack refused the call itself (not an outage): a dead row waits for its schedule, not a revival
    refused: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())


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
    uncertain: bool = False
    created_at: datetime | None = None


@dataclass(frozen=True)
class Letter:
    """An outbox row as `remediate outbox list` and /healthz show it."""

    id: int
    kind: str
    incident_id: str | None
    state: str
    attempts: int
    last_error: str
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    uncertain: bool
    refused: bool

    def to_json(self) -> dict[str, Any]:
        """Return the row as JSON-friendly values (times in ISO 8601)."""
        out = dict(self.__dict__)
        for key in ("created_at", "next_attempt_at", "sent_at"):
            out[key] = _iso(out[key])
        return out


def _iso(at: datetime | None) -> str | None:
    if at is None:
        return None
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).isoformat()


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
            sa.select(OutboxMessage.id)
            .where(
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
    """Claim up to ``limit`` due pending (or dead) messages, replies then oldest first, for ``lease_s`` s; commit.

    A row whose coalesce key has another row in flight (any replica's live lease) waits, or two replicas
    could both post one incident's first card; on PostgreSQL all replicas' claims run one at a time.
    """
    if db_session.get_bind().dialect.name == "postgresql":
        db_session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": OUTBOX_CLAIM_KEY})
    o = aliased(OutboxMessage)
    in_flight = sa.exists().where(o.coalesce_key == OutboxMessage.coalesce_key, o.id != OutboxMessage.id,
                                  o.state.in_((PENDING, DEAD)), o.locked_until >= now)  # fmt: skip
    candidates = db_session.execute(
        sa.select(OutboxMessage)
        .where(
            OutboxMessage.state.in_((PENDING, DEAD)),
            OutboxMessage.next_attempt_at <= now,
            sa.or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until < now),
            ~in_flight,
        )
        .order_by(sa.case((OutboxMessage.kind.in_(REPLY_KINDS), 0), else_=1), OutboxMessage.id)
        .limit(limit)
    ).scalars()
    claimed: list[Message] = []
    until = now + timedelta(seconds=lease_s)
    for row in list(candidates):
        result = db_session.execute(
            sa.update(OutboxMessage)
            .where(
                OutboxMessage.id == row.id,
                OutboxMessage.state.in_((PENDING, DEAD)),
                sa.or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until < now),
            )
            .values(locked_until=until)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) == 1:
            claimed.append(Message(row.id, row.kind, row.incident_id, dict(row.payload), row.attempts,
                                   bool(row.uncertain), row.created_at))  # fmt: skip
    db_session.commit()
    return claimed


def mark_sent(*, db_session: Session, message_id: int, now: datetime, result: dict[str, Any]) -> None:
    """Record a delivered message (not committed); older unsent rows of its coalesce key are superseded.

    Cards and timelines are rendered when sent, so a later row of the same key carried everything an
    older dead or waiting row would have: that one is closed as sent, with ``superseded_by`` in its result.
    """
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
    key = db_session.execute(
        sa.select(OutboxMessage.coalesce_key).where(OutboxMessage.id == message_id)
    ).scalar_one_or_none()
    if key is not None:
        db_session.execute(
            sa.update(OutboxMessage)
            .where(
                OutboxMessage.coalesce_key == key,
                OutboxMessage.id < message_id,
                OutboxMessage.state.in_((PENDING, DEAD)),
                sa.or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until < now),
            )
            .values(state=SENT, sent_at=now, locked_until=None, result={"superseded_by": message_id})
            .execution_options(synchronize_session=False)
        )


def mark_retry(
    *,
    db_session: Session,
    message_id: int,
    now: datetime,
    delay_s: float,
    error: str,
    max_attempts: int,
    dead_retry_s: float = 300.0,
    uncertain: bool = False,
    refused: bool = False,
) -> bool:
    """Count a failed attempt and schedule the next; past ``max_attempts`` the row is ``dead``.

    A dead row stays in the table and is tried again ``dead_retry_s`` later (and at once when
    `revive_dead` runs). ``uncertain`` (the call may have reached Slack) is sticky until the row is
    sent; ``refused`` records whether this failure was Slack refusing the call. Return True while the
    row is still pending.
    """
    row = db_session.get(OutboxMessage, message_id)
    if row is None:
        return False
    row.attempts += 1
    row.last_error = error[:2000]
    row.locked_until = None
    row.uncertain = bool(row.uncertain) or uncertain
    row.refused = refused
    if row.state == DEAD or row.attempts >= max_attempts:
        row.state = DEAD
        row.next_attempt_at = now + timedelta(seconds=dead_retry_s)
        return False
    row.next_attempt_at = now + timedelta(seconds=delay_s)
    return True


def release(
    *, db_session: Session, message_id: int, now: datetime, delay_s: float, error: str | None = None
) -> None:
    """Put a claimed message back without counting an attempt (rate limited, or waiting for its card)."""
    values: dict[str, Any] = {"locked_until": None, "next_attempt_at": now + timedelta(seconds=delay_s)}
    if error is not None:
        values["last_error"] = error[:2000]
    db_session.execute(sa.update(OutboxMessage).where(OutboxMessage.id == message_id).values(**values))


def revive_dead(*, db_session: Session, now: datetime) -> int:
    """Make every dead row that Slack did not refuse pending again with a fresh budget (not committed).

    Called when a delivery succeeds: Slack answers again, so what died of an outage goes out now.
    """
    result = db_session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.state == DEAD, OutboxMessage.refused.is_(False))
        .values(state=PENDING, attempts=0, next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def retry_now(*, db_session: Session, now: datetime, message_id: int | None = None) -> int:
    """Make one message (any state but sent), or every dead one, pending and due now; return how many."""
    query = sa.update(OutboxMessage).values(
        state=PENDING, attempts=0, next_attempt_at=now, refused=False, locked_until=None
    )
    if message_id is None:
        query = query.where(OutboxMessage.state == DEAD)
    else:
        query = query.where(OutboxMessage.id == message_id, OutboxMessage.state != SENT)
    result = db_session.execute(query.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


def list_messages(*, db_session: Session, state: str | None = None, limit: int = 200) -> list[Letter]:
    """Return outbox rows (of one state, or all), newest first, at most ``limit``."""
    query = sa.select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if state is not None:
        query = query.where(OutboxMessage.state == state)
    return [
        Letter(
            id=r.id,
            kind=r.kind,
            incident_id=r.incident_id,
            state=r.state,
            attempts=r.attempts,
            last_error=r.last_error,
            created_at=r.created_at,
            next_attempt_at=r.next_attempt_at,
            sent_at=r.sent_at,
            uncertain=bool(r.uncertain),
            refused=bool(r.refused),
        )
        for r in db_session.execute(query).scalars()
    ]


def oldest_pending(*, db_session: Session) -> datetime | None:
    """Return when the oldest message not yet sent (pending or dead) was queued, if any."""
    at = db_session.execute(
        sa.select(sa.func.min(OutboxMessage.created_at)).where(OutboxMessage.state.in_((PENDING, DEAD)))
    ).scalar_one_or_none()
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at


def card_post_uncertain(*, db_session: Session, incident_id: str) -> bool:
    """Return True when a card post for the incident may have reached Slack unanswered."""
    return (
        db_session.execute(
            sa.select(OutboxMessage.id)
            .where(
                OutboxMessage.incident_id == incident_id,
                OutboxMessage.kind == "card",
                OutboxMessage.uncertain.is_(True),
            )
            .limit(1)
        ).first()
        is not None
    )


def counts(*, db_session: Session) -> dict[str, int]:
    """Return how many messages are pending, sent and dead."""
    rows = db_session.execute(sa.select(OutboxMessage.state, sa.func.count()).group_by(OutboxMessage.state))
    found = {state: int(n) for state, n in rows}
    return {state: found.get(state, 0) for state in (PENDING, SENT, DEAD)}


def get_card(*, db_session: Session, incident_id: str) -> SlackCard | None:
    """Return where the incident's card was posted, if it was."""
    return db_session.get(SlackCard, incident_id)


def latest_card_channel(*, db_session: Session) -> str | None:
    """Return the main channel's id from its most recently updated card (incidents' own channels skipped)."""
    return db_session.execute(
        sa.select(SlackCard.channel)
        .where(SlackCard.channel.not_in(own_channel_ids()))
        .order_by(SlackCard.updated_at.desc())
        .limit(1)
    ).scalar_one_or_none()


def origin_trace(*, db_session: Session, incident_id: str) -> dict[str, str]:
    """Return the trace carrier (``traceparent``) the incident's first card row was queued with, or {}."""
    payload = db_session.execute(
        sa.select(OutboxMessage.payload)
        .where(OutboxMessage.incident_id == incident_id, OutboxMessage.kind == "card")
        .order_by(OutboxMessage.id)
        .limit(1)
    ).scalar_one_or_none()
    found = (payload or {}).get("trace")
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


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


def forget_seen(*, db_session: Session, before: datetime) -> int:
    """Delete event ids and request fingerprints recorded before ``before``; return how many.

    Slack retries an event for about an hour and a signed request is valid for five minutes, so a
    record older than a day can never be matched again; without this the table grows forever.
    """
    result = db_session.execute(sa.delete(SeenEvent).where(SeenEvent.at < before))
    return int(getattr(result, "rowcount", 0) or 0)
