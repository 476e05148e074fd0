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


def _row(session: Session, message_id: int) -> outbox.OutboxMessage:
    row = session.get(outbox.OutboxMessage, message_id, populate_existing=True)
    assert row is not None
    return row


def test_dead_rows_stay_are_retried_on_schedule_and_revived(db_url: str) -> None:
    engine = open_store(db_url)
    with Session(engine) as s:
        card = _enqueue(s, T0, interval=0.0)
        note = outbox.enqueue(db_session=s, kind="thread", incident_id="INC-1", payload={"text": "x"}, now=T0)
        s.commit()
        assert [m.id for m in outbox.claim_due(db_session=s, now=T0)] == [card, note]
        # a 429 is not an attempt: the row goes back for the Retry-After, its error noted
        outbox.release(db_session=s, message_id=card, now=T0, delay_s=2.0, error="chat.postMessage: 429")
        assert _row(s, card).attempts == 0 and "429" in _row(s, card).last_error
        # a refused row and an outage row die; both stay in the table
        assert not outbox.mark_retry(db_session=s, message_id=note, now=T0, delay_s=1, error="channel_not_found",
                                     max_attempts=0, dead_retry_s=300, refused=True)  # fmt: skip
        s.commit()
        claimed = outbox.claim_due(db_session=s, now=T0 + timedelta(seconds=2))
        assert [m.id for m in claimed] == [card]
        assert not outbox.mark_retry(db_session=s, message_id=card, now=T0 + timedelta(seconds=2), delay_s=1,
                                     error="HTTP 500", max_attempts=1, dead_retry_s=300, uncertain=True)  # fmt: skip
        s.commit()
        assert outbox.counts(db_session=s) == {"pending": 0, "sent": 0, "dead": 2}
        assert [m.id for m in outbox.list_messages(db_session=s, state="dead")] == [note, card]
        assert outbox.oldest_pending(db_session=s) == T0
        assert outbox.card_post_uncertain(db_session=s, incident_id="INC-1")
        # not due before dead_retry_s, due after it (and a failure there keeps it dead)
        assert outbox.claim_due(db_session=s, now=T0 + timedelta(seconds=100)) == []
        later = outbox.claim_due(db_session=s, now=T0 + timedelta(seconds=303))
        assert {m.id for m in later} == {card, note}
        assert [m.uncertain for m in later if m.id == card] == [True]
        outbox.mark_retry(db_session=s, message_id=card, now=T0 + timedelta(seconds=303), delay_s=1,
                          error="HTTP 500", max_attempts=12, dead_retry_s=300)  # fmt: skip
        outbox.mark_retry(db_session=s, message_id=note, now=T0 + timedelta(seconds=303), delay_s=1,
                          error="channel_not_found", max_attempts=0, refused=True)  # fmt: skip
        s.commit()
        assert _row(s, card).state == "dead" and _row(s, card).uncertain  # uncertain is sticky
        # Slack answers again: the outage row is revived with a fresh budget; the refused one waits
        assert outbox.revive_dead(db_session=s, now=T0 + timedelta(seconds=310)) == 1
        s.commit()
        assert (_row(s, card).state, _row(s, card).attempts) == ("pending", 0)
        assert _row(s, note).state == "dead"
        # `remediate outbox retry --all` sends the refused one too
        assert outbox.retry_now(db_session=s, now=T0 + timedelta(seconds=311)) == 1
        assert outbox.retry_now(db_session=s, now=T0 + timedelta(seconds=311), message_id=9999) == 0
        s.commit()
        assert _row(s, note).state == "pending" and not _row(s, note).refused
    engine.dispose()


def test_a_sent_row_supersedes_older_unsent_rows_of_its_key(db_url: str) -> None:
    engine = open_store(db_url)
    with Session(engine) as s:
        old = _enqueue(s, T0, interval=0.0)
        s.commit()
        outbox.claim_due(db_session=s, now=T0)
        outbox.mark_retry(db_session=s, message_id=old, now=T0, delay_s=1, error="HTTP 500", max_attempts=1)
        new = _enqueue(s, T0 + timedelta(seconds=1), interval=0.0)
        s.commit()
        assert new != old
        outbox.claim_due(db_session=s, now=T0 + timedelta(seconds=1))
        outbox.mark_sent(db_session=s, message_id=new, now=T0 + timedelta(seconds=1), result={"ts": "1.2"})
        s.commit()
        assert _row(s, old).state == "sent" and _row(s, old).result == {"superseded_by": new}
        assert outbox.counts(db_session=s)["dead"] == 0
    engine.dispose()


def test_replies_are_claimed_before_cards_due_at_the_same_time(db_url: str) -> None:
    engine = open_store(db_url)
    with Session(engine) as s:
        card = _enqueue(s, T0, interval=0.0)
        reply = outbox.enqueue(db_session=s, kind="respond", payload={"url": "u", "body": {}}, now=T0)
        s.commit()
        assert [m.id for m in outbox.claim_due(db_session=s, now=T0, limit=1)] == [reply]
        assert [m.id for m in outbox.claim_due(db_session=s, now=T0, limit=1)] == [card]
    engine.dispose()


def test_a_key_with_a_row_in_flight_waits_until_that_row_is_done(db_url: str) -> None:
    """Two replicas never deliver one incident's card at once (both would post it when none exists yet)."""
    engine = open_store(db_url)
    with Session(engine) as s:
        first = _enqueue(s, T0, interval=0.0)
        s.commit()
        assert [m.id for m in outbox.claim_due(db_session=s, now=T0)] == [first]  # replica A: in flight
        second = _enqueue(s, T0, interval=0.0)  # a change meanwhile: a new row of the same key
        s.commit()
        assert second != first
        assert outbox.claim_due(db_session=s, now=T0) == []  # replica B waits for A
        outbox.mark_sent(db_session=s, message_id=first, now=T0, result={})
        s.commit()
        assert [m.id for m in outbox.claim_due(db_session=s, now=T0)] == [second]
        # a lease that expired (its replica died) no longer holds the key back
        third = _enqueue(s, T0, interval=0.0)
        s.commit()
        assert outbox.claim_due(db_session=s, now=T0 + timedelta(seconds=30)) == []
        claimed = outbox.claim_due(db_session=s, now=T0 + timedelta(seconds=61))
        assert [m.id for m in claimed] == [second, third]  # one worker: delivered in turn
    engine.dispose()
