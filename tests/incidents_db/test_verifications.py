"""Verifications on both backends: a due row is claimed by one replica at a time, judged once, and an
expired claim passes to another replica; the judged row is never judged again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from incidents_db import verifications as store
from incidents_db.db import open_store
from incidents_db.models import ApprovalRequest

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _request(s: Session, request_id: str) -> None:
    s.add(ApprovalRequest(id=request_id, action="restart_service", target="cart", params={}, risk="medium",
                          requester="U1", state="succeeded", required_approvals=1, created_at=T0, updated_at=T0,
                          reason="", version=1))  # fmt: skip
    s.flush()


def test_claimed_once_judged_once_and_an_expired_claim_passes_on(db_url: str) -> None:
    engine = open_store(db_url)
    with Session(engine) as s:
        _request(s, "r1")
        assert store.schedule(db_session=s, request_id="r1", action="restart_service", target="cart", incident_id=None,
                              executed_at=T0, verify_at=T0 + timedelta(minutes=3), before={})  # fmt: skip
        assert not store.schedule(db_session=s, request_id="r1", action="restart_service", target="cart",
                                  incident_id=None, executed_at=T0, verify_at=T0, before={})  # fmt: skip
        s.commit()
    with Session(engine) as s:
        assert (
            store.claim_due(db_session=s, now=T0 + timedelta(minutes=2), owner="a", lease_s=60) == []
        )  # not due
        due = T0 + timedelta(minutes=3)
        assert store.claim_due(db_session=s, now=due, owner="a", lease_s=60) == ["r1"]
        assert store.claim_due(db_session=s, now=due + timedelta(seconds=30), owner="b", lease_s=60) == []
        later = due + timedelta(seconds=61)  # a stopped: its claim expired
        assert store.claim_due(db_session=s, now=later, owner="b", lease_s=60) == ["r1"]
        assert not store.decide(db_session=s, request_id="r1", owner="a", verdict="effective", summary="",
                                evidence=(), now=later)  # fmt: skip
        assert store.decide(db_session=s, request_id="r1", owner="b", verdict="harmful", summary="worse",
                            evidence=["new alert"], now=later)  # fmt: skip
        s.commit()
    with Session(engine) as s:
        assert store.claim_due(db_session=s, now=later + timedelta(hours=1), owner="c", lease_s=60) == []
        row = store.get(db_session=s, request_id="r1")
        assert row is not None and (row.state, row.verdict, row.evidence) == (
            "done",
            "harmful",
            ["new alert"],
        )
