"""Outbox coalescing and pacing on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from incidents_db import outbox
from incidents_db.db import open_store

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _enqueue(session: Session, now: datetime, interval: float = 1.0) -> int:
    return outbox.enqueue(
        db_session=session, kind="card", incident_id="INC-1", coalesce_key="card:INC-1", payload={},
        now=now, min_interval_s=interval,
    )  # fmt: skip


def test_pending_rows_coalesce_and_a_sent_key_is_paced(db_url: str) -> None:
    engine = open_store(db_url)
    with Session(engine) as s:
        first = _enqueue(s, T0)
        assert _enqueue(s, T0 + timedelta(milliseconds=10)) == first  # joins the waiting row
        s.commit()
        claimed = outbox.claim_due(db_session=s, now=T0)
        assert [m.id for m in claimed] == [first]
        # While the first is in flight, a change gets a new row, due one interval after the first.
        second = _enqueue(s, T0 + timedelta(milliseconds=20))
        s.commit()
        outbox.mark_sent(db_session=s, message_id=first, now=T0 + timedelta(milliseconds=50), result={})
        s.commit()
        assert outbox.claim_due(db_session=s, now=T0 + timedelta(milliseconds=500)) == []
        assert [m.id for m in outbox.claim_due(db_session=s, now=T0 + timedelta(seconds=1))] == [second]
        outbox.mark_sent(db_session=s, message_id=second, now=T0 + timedelta(seconds=1), result={})
        s.commit()
        # Long after the last send, a change is due at once.
        third = _enqueue(s, T0 + timedelta(minutes=5))
        s.commit()
        assert [m.id for m in outbox.claim_due(db_session=s, now=T0 + timedelta(minutes=5))] == [third]
        # Without an interval nothing is held back.
        outbox.mark_sent(db_session=s, message_id=third, now=T0 + timedelta(minutes=5), result={})
        fourth = _enqueue(s, T0 + timedelta(minutes=5), interval=0.0)
        s.commit()
        assert [m.id for m in outbox.claim_due(db_session=s, now=T0 + timedelta(minutes=5))] == [fourth]
    engine.dispose()
