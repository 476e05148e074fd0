"""Live incidents in the store: ids, timelines in time order, lookups, resolving, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from incidents_db import incidents
from incidents_db.db import open_store
from incidents_db.errors import IncidentNotFoundError, StoreError
from incidents_db.models import ApprovalRequest
from incidents_db.snapshots import keep_latest, kept_summary

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _open(s: Session, service: str = "cart", at: datetime = T0) -> str:
    return incidents.create(
        db_session=s, title="cart slow", services=[service], severity="sev9", source="alert", now=at
    ).id


def test_ids_count_up_and_timelines_stay_in_time_order(db_url: str) -> None:
    with Session(open_store(db_url)) as s:
        first, second = _open(s), _open(s, "db")
        assert (first, second) == ("INC-1", "INC-2")
        assert incidents.get(db_session=s, incident_id=first).severity == "sev3"  # unknown severity
        assert incidents.append(db_session=s, incident_id=first, type_="note", at=T0, text="a") == 0
        # a sender's clock behind the timeline: stamped at the last event, not before it
        late = incidents.append(
            db_session=s, incident_id=first, type_="alert", at=T0 - timedelta(hours=1), service="web"
        )
        assert late == 1
        incidents.append(
            db_session=s, incident_id=first, type_="metrics", at=T0, service="queue", affects=False, values={}
        )
        s.commit()
        rec = incidents.record(db_session=s, incident_id="inc-1")  # ids match case-insensitively
        assert [e["type"] for e in rec["events"]] == ["note", "alert", "metrics"]
        assert rec["events"][1]["at"] == rec["events"][0]["at"]
        assert rec["services"] == ["cart", "web"]  # metrics are context: "queue" is not affected
        assert [e.seq for e in incidents.events_after(db_session=s, incident_id=first, seq=0)] == [1, 2]


def test_unknown_incident_is_a_store_error_naming_the_id(db_url: str) -> None:
    with Session(open_store(db_url)) as s:
        with pytest.raises(IncidentNotFoundError) as caught:
            incidents.get(db_session=s, incident_id="INC-404")
        assert isinstance(caught.value, StoreError) and caught.value.incident_id == "INC-404"
        assert incidents.find(db_session=s, incident_id="INC-404") is None


def test_lookups_alert_states_and_resolve(db_url: str) -> None:
    with Session(open_store(db_url)) as s:
        cart, db = _open(s), _open(s, "db", T0 + timedelta(minutes=1))
        incidents.append(
            db_session=s, incident_id=cart, type_="alert", at=T0, fingerprint="f1", status="firing"
        )
        incidents.append(
            db_session=s, incident_id=cart, type_="alert", at=T0, fingerprint="f1", status="resolved"
        )
        incidents.append(
            db_session=s, incident_id=cart, type_="note", at=T0, actor="U1", kind="declared", text="x"
        )
        s.commit()
        assert [i.id for i in incidents.open_incidents(db_session=s)] == [db, cart]
        found = incidents.open_for_service(db_session=s, service="cart")
        assert found is not None and found.id == cart
        assert incidents.alert_states(db_session=s) == {"f1": (cart, "resolved")}
        rec = incidents.record(db_session=s, incident_id=cart)
        assert incidents.requester_of(rec) == "U1"
        assert [r["id"] for r in incidents.recent_records(db_session=s, exclude=cart)] == [db]
        assert incidents.resolve(db_session=s, incident_id=cart, actor="U1", now=T0, note="fixed")
        assert not incidents.resolve(db_session=s, incident_id=cart, actor="U1", now=T0)
        s.commit()
        assert incidents.alert_states(db_session=s) == {}  # only open incidents' alerts count
        assert incidents.open_for_service(db_session=s, service="cart") is None
        types = [e["type"] for e in incidents.record(db_session=s, incident_id=cart)["events"]]
        assert types[-2:] == ["note", "resolved"]


def test_recent_snapshots_join_a_new_incident(db_url: str) -> None:
    with Session(open_store(db_url)) as s:
        keep_latest(db_session=s, service="cart", at=T0, values={"cpu": 0.5}, now=T0)
        keep_latest(db_session=s, service="web", at=T0, values={"cpu": 0.2}, now=T0)
        keep_latest(db_session=s, service="old", at=T0 - timedelta(hours=2), values={"cpu": 0.1}, now=T0)
        keep_latest(db_session=s, service="other", at=T0, values={"cpu": 0.9}, now=T0)
        cart = _open(s)
        added = incidents.attach_recent_snapshots(
            db_session=s, incident_id=cart, now=T0, also=["web", "old"], max_age_s=600
        )
        s.commit()
        events = incidents.record(db_session=s, incident_id=cart)["events"]
        assert kept_summary(db_session=s) == (4, T0)
        assert added == 2 and [(e["service"], e["values"]) for e in events] == [
            ("cart", {"cpu": 0.5}),
            ("web", {"cpu": 0.2}),
        ]


def test_requests_name_their_incidents_and_outcomes(db_url: str) -> None:
    with Session(open_store(db_url)) as s:
        cart = _open(s)
        s.add(
            ApprovalRequest(
                id="r1", incident_id=cart, action="restart", target="cart", params={}, risk="low",
                requester="U1", state="pending", required_approvals=1, created_at=T0, updated_at=T0,
            )
        )  # fmt: skip
        s.commit()
        assert incidents.incidents_of_requests(db_session=s, request_ids=["r1", "nope"]) == {cart}
        assert incidents.execution_outcome(db_session=s, request_id="r1") is None


def test_reopen_and_amend_write_a_note_per_change(db_url: str) -> None:
    with Session(open_store(db_url)) as s:
        first = _open(s)
        assert not incidents.reopen(db_session=s, incident_id=first, actor="U1", now=T0)  # open already
        assert incidents.resolve(db_session=s, incident_id=first, actor="U1", now=T0 + timedelta(minutes=5))
        assert incidents.reopen(db_session=s, incident_id="inc-1", actor="U1", now=T0 + timedelta(minutes=6))
        changed = incidents.amend(db_session=s, incident_id=first, actor="U1", now=T0 + timedelta(minutes=7),
                                  title="  cart down ", severity="sev1")  # fmt: skip
        assert changed == {"title": ("cart slow", "cart down"), "severity": ("sev3", "sev1")}
        assert incidents.amend(db_session=s, incident_id=first, actor="U1", now=T0, severity="sev1") == {}
        with pytest.raises(ValueError, match="sev1, sev2, sev3, sev4"):
            incidents.amend(db_session=s, incident_id=first, actor="U1", now=T0, severity="sev9")
        s.commit()
        incident = incidents.get(db_session=s, incident_id=first)
        assert (incident.status, incident.resolved_at, incident.title, incident.severity) == (
            "open", None, "cart down", "sev1"
        )  # fmt: skip
        rec = incidents.record(db_session=s, incident_id=first)
        assert [(e["type"], e.get("reopened"), e.get("changed")) for e in rec["events"]] == [
            ("resolved", None, None), ("note", True, None), ("note", None, "title"), ("note", None, "severity")
        ]  # fmt: skip
