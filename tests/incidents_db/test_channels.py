"""Incident channel rows on both backends: states, invitations, and the archive job's one-winner claim."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from incidents_db import channels, incidents, outbox, roles
from incidents_db.db import open_store

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
DAY = 86400.0


def _incident(s: Session, title: str = "checkout errors") -> str:
    incident = incidents.create(db_session=s, title=title, services=["checkout"], severity="sev2",
                                source="alert", now=T0)  # fmt: skip
    return incident.id


def test_a_channel_goes_from_creating_to_archived_once(db_url: str) -> None:
    engine = open_store(db_url)
    with Session(engine) as s:
        first, second = _incident(s), _incident(s, "cart down")
        channels.begin(db_session=s, incident_id=first, name="inc-1-checkout-errors", now=T0)
        channels.opened(
            db_session=s, incident_id=first, channel_id="C0INC00001", name="inc-1-checkout-errors"
        )
        channels.add_invited(db_session=s, incident_id=first, users=["U2", "U1"])
        channels.add_invited(db_session=s, incident_id=first, users=["U1", "U3"])
        channels.begin(db_session=s, incident_id=second, name="inc-2-cart-down", now=T0)
        channels.failed(db_session=s, incident_id=second, error="conversations.create: missing_scope")
        roles.set_role(db_session=s, incident_id=first, role="commander", user="U9", actor="U1", now=T0)
        s.commit()
        row = channels.get(db_session=s, incident_id=first)
        assert row is not None and row.state == channels.OPEN and row.invited == ["U1", "U2", "U3"]
        assert channels.current_roles(db_session=s, incident_id=first) == {"commander": "U9"}
        assert channels.incident_of(db_session=s, channel_id="C0INC00001") == first
        # a card in an incident's own channel never passes for the main channel
        outbox.set_card(db_session=s, incident_id=first, channel="C0INC00001", ts="1.1", now=T0)
        outbox.set_card(db_session=s, incident_id=second, channel="C0MAIN0001", ts="1.2", now=T0)
        s.commit()
        outbox.set_card(
            db_session=s, incident_id=first, channel="C0INC00001", ts="1.1", now=T0 + timedelta(1)
        )
        s.commit()
        assert outbox.latest_card_channel(db_session=s) == "C0MAIN0001"

        assert channels.start_archiving(db_session=s, now=T0 + timedelta(days=3), after_s=DAY) == []  # open
        incidents.resolve(db_session=s, incident_id=first, actor="U1", now=T0 + timedelta(hours=1))
        incidents.resolve(db_session=s, incident_id=second, actor="U1", now=T0 + timedelta(hours=1))
        s.commit()
        early = T0 + timedelta(hours=24, minutes=59)
        assert channels.start_archiving(db_session=s, now=early, after_s=DAY) == []
        due = T0 + timedelta(hours=25)
        assert channels.start_archiving(db_session=s, now=due, after_s=DAY) == [(first, "C0INC00001")]
        s.commit()
        assert channels.start_archiving(db_session=s, now=due, after_s=DAY) == []
        channels.archived(db_session=s, incident_id=first, now=due)
        s.commit()
        s.expire_all()
        row = channels.get(db_session=s, incident_id=first)
        assert row is not None and row.state == channels.ARCHIVED and row.archived_at == due
    engine.dispose()


def test_two_replicas_claiming_at_once_archive_each_channel_once(db_url: str) -> None:
    engine = open_store(db_url)
    with Session(engine) as s:
        ids = [_incident(s, f"incident {n}") for n in range(6)]
        for n, incident_id in enumerate(ids):
            channels.begin(db_session=s, incident_id=incident_id, name=f"inc-{n}", now=T0)
            channels.opened(
                db_session=s, incident_id=incident_id, channel_id=f"C0INC0000{n}", name=f"inc-{n}"
            )
            incidents.resolve(db_session=s, incident_id=incident_id, actor="U1", now=T0)
        s.commit()
    won: list[list[tuple[str, str]]] = []
    start = threading.Barrier(2)

    def replica() -> None:
        with Session(engine) as s:
            start.wait()
            chosen = channels.start_archiving(db_session=s, now=T0 + timedelta(days=2), after_s=DAY)
            s.commit()
            won.append(chosen)

    threads = [threading.Thread(target=replica) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    chosen = sorted(i for batch in won for i, _ in batch)
    assert chosen == sorted(ids)  # every channel once, whichever replica chose it
    engine.dispose()
