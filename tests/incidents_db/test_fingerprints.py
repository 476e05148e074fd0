"""The alerts of open incidents by fingerprint: always what a scan of their alert events says, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from incidents_db import db, fingerprints, incidents
from incidents_db.db import make_engine, open_store
from incidents_db.models import Incident, IncidentEvent

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _open(s: Session, service: str) -> str:
    return incidents.create(
        db_session=s, title=f"{service} slow", services=[service], severity="sev2", source="alert", now=T0
    ).id


def _alert(s: Session, incident_id: str, fp: str, status: str, minutes: int = 0) -> None:
    incidents.append(
        db_session=s,
        incident_id=incident_id,
        type_="alert",
        at=T0 + timedelta(minutes=minutes),
        service="svc",
        fingerprint=fp,
        status=status,
    )


def _table(s: Session) -> dict[str, tuple[str, str]]:
    rows = s.execute(sa.select(fingerprints.AlertFingerprint)).scalars()
    return {r.fingerprint: (r.incident_id, r.status) for r in rows}


def test_appends_and_resolving_keep_the_table_equal_to_the_scan(db_url: str) -> None:
    with Session(open_store(db_url)) as s:
        cart, web = _open(s, "cart"), _open(s, "web")
        _alert(s, cart, "f1", "firing")
        _alert(s, cart, "f2", "firing", 1)
        _alert(s, web, "f3", "firing", 2)
        _alert(s, cart, "f1", "resolved", 3)
        incidents.append(db_session=s, incident_id=cart, type_="note", at=T0, text="no fingerprint")
        incidents.append(db_session=s, incident_id=web, type_="alert", at=T0, service="web", status="firing")
        s.commit()
        assert _table(s) == incidents.alert_states(db_session=s)
        assert _table(s) == {"f1": (cart, "resolved"), "f2": (cart, "firing"), "f3": (web, "firing")}
        assert fingerprints.states_of(db_session=s, fingerprints=["f1", "f3", "nope", ""]) == {
            "f1": (cart, "resolved"),
            "f3": (web, "firing"),
        }
        assert sorted(fingerprints.statuses_of(db_session=s, incident_id=cart)) == ["firing", "resolved"]
        last = s.execute(sa.select(fingerprints.AlertFingerprint.last_seen).where(
            fingerprints.AlertFingerprint.fingerprint == "f1"
        )).scalar_one()  # fmt: skip
        assert last == T0 + timedelta(minutes=3)
        assert incidents.resolve(db_session=s, incident_id=cart, actor="U1", now=T0 + timedelta(minutes=4))
        s.commit()
        assert _table(s) == incidents.alert_states(db_session=s) == {"f3": (web, "firing")}
        assert fingerprints.statuses_of(db_session=s, incident_id=cart) == []
        # once its incident is resolved, a fingerprint may start again in another incident
        _alert(s, web, "f1", "firing", 5)
        s.commit()
        assert _table(s) == incidents.alert_states(db_session=s)
        assert fingerprints.states_of(db_session=s, fingerprints=["f1"]) == {"f1": (web, "firing")}


def test_a_thousand_fingerprints_are_read_in_chunks(db_url: str) -> None:
    with Session(open_store(db_url)) as s:
        cart = _open(s, "cart")
        rows = [fingerprints.row(f"f{i}", incident_id=cart, status="firing", at=T0) for i in range(1100)]
        fingerprints.write(db_session=s, rows=rows)
        fingerprints.write(db_session=s, rows=rows[-1:])  # a second write of a fingerprint updates its row
        found = fingerprints.states_of(db_session=s, fingerprints=[f"f{i}" for i in range(0, 2200, 2)])
        assert len(found) == 550 and found["f1098"] == (cart, "firing")


def test_the_migration_fills_the_table_from_the_open_incidents(db_url: str) -> None:
    assert db.upgrade(db_url, "0013") == "0013"
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            for iid, status in (("INC-1", "open"), ("INC-2", "resolved"), ("INC-3", "open")):
                conn.execute(
                    sa.insert(Incident).values(
                        id=iid, title="t", severity="sev3", status=status, services=["svc"], source="alert",
                        opened_at=T0, created_at=T0, updated_at=T0,
                    )
                )  # fmt: skip
            events = [
                ("INC-1", "alert", {"fingerprint": "a", "status": "firing"}),
                ("INC-1", "note", {"text": "x"}),
                ("INC-1", "alert", {"fingerprint": "a", "status": "resolved"}),
                ("INC-1", "alert", {"fingerprint": "b", "status": "firing"}),
                ("INC-2", "alert", {"fingerprint": "c", "status": "firing"}),  # resolved: not held
                ("INC-3", "alert", {"status": "firing"}),  # no fingerprint: not held
                ("INC-3", "alert", {"fingerprint": "d", "status": "firing"}),
            ]
            conn.execute(
                sa.insert(IncidentEvent),
                [
                    {
                        "incident_id": iid,
                        "seq": seq,
                        "at": T0 + timedelta(minutes=seq),
                        "type": t,
                        "payload": p,
                    }
                    for seq, (iid, t, p) in enumerate(events)
                ],
            )
        assert db.upgrade(db_url) == db.head_revision()
        with Session(engine) as s:
            assert _table(s) == incidents.alert_states(db_session=s)
            assert _table(s) == {
                "a": ("INC-1", "resolved"),
                "b": ("INC-1", "firing"),
                "d": ("INC-3", "firing"),
            }
            seen = s.execute(sa.select(fingerprints.AlertFingerprint.last_seen).where(
                fingerprints.AlertFingerprint.fingerprint == "b"
            )).scalar_one()  # fmt: skip
            assert seen == T0 + timedelta(minutes=3)
    finally:
        engine.dispose()
