"""Verified remediation through the running app and the Slack sandbox: the verdict and its evidence on
the card and in the thread, the card re-ranked after a fix that did not help, and a harmful fix with
"undo automatically" undone once and only once, also when the bot stops mid-verification."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.app.verify import verify_due
from bot.services import Services
from incidents_db import verifications
from incidents_db.models import AuditEntry, IncidentEvent
from remediation.approvals import service as approvals
from remediation.verification import service as verification
from tests.bot.alerts.test_snapshots import post
from tests.bot.conftest import ALICE, BOT, Harness, _running, generic
from tests.bot.sandbox.conftest import wait_for


@pytest.fixture
def harness(tmp_path: Path, migrated_sqlite_url: str) -> Iterator[Harness]:
    """The running app and sandbox; restarts are judged at once (a settle time of 0 s for them)."""
    yield from _running(
        tmp_path, migrated_sqlite_url, verify_settle_s={"restart_service": 0.0}, recurring_fix_n=2
    )


def _later(services: Services, minutes: float, replica: str) -> Services:
    """The same store seen ``minutes`` later by replica ``replica`` (settle times and leases have passed)."""
    now = services.clock()
    return dataclasses.replace(services, clock=lambda: now + timedelta(minutes=minutes), replica=replica)


def _incident(h: Harness, service: str) -> str:
    status, body = h.post_alert("generic", generic("HighErrorRate", service))
    assert status == 200, body
    return str((body["created"] or body["incidents"])[0])


def _run(h: Harness, incident_id: str, action: str, target: str, *, undo: bool = False) -> str:
    """Propose and approve ``action`` on ``target`` (armed to undo itself when ``undo``); wait for its run."""
    with h.services.sessions() as s:
        view = approvals.propose(db_session=s, guard=h.services.guard, action=action, target=target,
                                 params={}, requester=BOT, incident_id=incident_id)  # fmt: skip
        if undo:
            verifications.arm(
                db_session=s, request_id=view.id, action=action, target=target, incident_id=incident_id
            )
            s.commit()
    h.command(ALICE, f"approve {view.id}")
    wait_for(lambda: _scheduled(h, view.id))
    return view.id


def _scheduled(h: Harness, request_id: str) -> bool:
    with h.services.sessions() as s:
        row = verifications.get(db_session=s, request_id=request_id)
        return row is not None and row.verify_at is not None


def _events(h: Harness, incident_id: str, kind: str) -> list[dict[str, Any]]:
    with h.services.sessions() as s:
        rows = s.execute(
            sa.select(IncidentEvent.payload)
            .where(IncidentEvent.incident_id == incident_id, IncidentEvent.type == kind)
            .order_by(IncidentEvent.seq)
        ).scalars()
        return [dict(p) for p in rows]


def test_an_ineffective_fix_is_judged_shown_and_the_card_offers_the_next_fix(harness: Harness) -> None:
    h = harness
    incident_id = _incident(h, "checkoutservice")
    request_id = _run(h, incident_id, "restart_service", "checkoutservice")
    done = verify_due(h.services)
    assert [(d.request_id, d.judgement.verdict) for d in done] == [(request_id, "ineffective")]
    notes = [n for n in _events(h, incident_id, "note") if n.get("verdict")]
    assert notes[0]["request_id"] == request_id and notes[0]["evidence"]
    action = next(a for a in _events(h, incident_id, "action") if a.get("request_id") == request_id)
    assert (action["verdict"], action["outcome"], action["executor_outcome"]) == (
        "ineffective",
        "no_effect",
        "succeeded",
    )
    card = h.wait_card(incident_id, lambda blocks: "did not help" in blocks)
    text = json.dumps(card["blocks"])
    assert "restart_service on checkoutservice did not help" in text and "; next: " in text
    first = next(b for b in card["blocks"] if b.get("block_id") == "text-1")
    assert "restart_service on checkoutservice" not in first["text"]["text"]  # the failed fix is not first
    thread = wait_for(lambda: [m for m in h.replies(card["ts"]) if "Verified" in m.get("text", "")])
    assert (
        "ineffective" in thread[0]["text"]
        and "HighErrorRate on checkoutservice still firing" in thread[0]["text"]
    )
    with h.services.sessions() as s:
        audit = (
            s.execute(
                sa.select(AuditEntry.reason).where(
                    AuditEntry.request_id == request_id, AuditEntry.event == "verification"
                )
            )
            .scalars()
            .all()
        )
    assert len(audit) == 1 and audit[0].startswith("ineffective")
    assert verify_due(_later(h.services, 20, "replica-3")) == []  # judged once


def test_a_fix_whose_alert_resolved_is_effective(harness: Harness) -> None:
    h = harness
    incident_id = _incident(h, "checkoutservice")
    request_id = _run(h, incident_id, "restart_service", "checkoutservice")
    status, _ = h.post_alert("generic", generic("HighErrorRate", "checkoutservice", status="resolved"))
    assert status == 200
    done = verify_due(h.services)
    assert [(d.request_id, d.judgement.verdict) for d in done] == [(request_id, "effective")]
    h.wait_card(incident_id, lambda blocks: "worked" in blocks)


def test_a_harmful_fix_is_undone_once_and_only_once_across_a_restart(harness: Harness) -> None:
    h = harness
    incident_id = _incident(h, "cartservice")
    request_id = _run(h, incident_id, "enable_rate_limiting", "cartservice", undo=True)
    assert verify_due(h.services) == []  # not due before its settle time (the catalog's: 30 s)
    status, _ = h.post_alert("generic", generic("ServiceDown", "redis-cart"))  # its datastore falls over
    assert status == 200
    # replica 1 claims the due verification and stops before judging it (the bot restarts)
    one = _later(h.services, 10, "replica-1")
    with one.sessions() as s:
        assert verifications.claim_due(db_session=s, now=one.clock(), owner="replica-1", lease_s=60) == [
            request_id
        ]
    assert verify_due(_later(h.services, 10.5, "replica-2")) == []  # its claim still holds
    # after the claim expired, replica 2 judges it, records the undo and stops before running it
    two = _later(h.services, 12, "replica-2")
    with two.sessions() as s:
        claimed = verifications.claim_due(db_session=s, now=two.clock(), owner="replica-2", lease_s=60)
        assert claimed == [request_id]
        done = verification.verify_one(
            db_session=s, guard=two.guard, request_id=request_id, owner="replica-2", topology=two.topology
        )
    assert done is not None and done.judgement.verdict == "harmful" and done.undo_request_id
    with one.sessions() as s:  # the first replica, back, cannot judge it again
        assert (
            verification.verify_one(
                db_session=s, guard=one.guard, request_id=request_id, owner="replica-1", topology=one.topology
            )
            is None
        )
    # the restarted bot's job finds the approved undo left behind and runs it; later ticks run nothing more
    verify_due(_later(h.services, 14, "replica-3"))
    wait_for(lambda: _state(h, done.undo_request_id or "") == "succeeded")
    later = [
        v
        for m, r in ((15, "replica-4"), (16, "replica-3"), (17, "replica-1"))
        for v in verify_due(_later(h.services, m, r))
    ]
    # only the undo itself may still be judged (once it is scheduled); nothing is undone twice
    assert all(v.request_id == done.undo_request_id and v.undo_request_id is None for v in later)
    assert [a for a in h.world.applied if a[0] == "disable_rate_limiting"] == [
        ("disable_rate_limiting", "cartservice", {})
    ]
    notes = [n for n in _events(h, incident_id, "note") if n.get("verdict")]
    assert [n["request_id"] for n in notes].count(request_id) == 1
    assert notes[0]["undo_request_id"] == done.undo_request_id
    assert [e for e, d, _ in _audit(h, done.undo_request_id or "") if d == "denied"] == []


def _state(h: Harness, request_id: str) -> str:
    with h.services.sessions() as s:
        return approvals.get(db_session=s, request_id=request_id).state


def _audit(h: Harness, request_id: str) -> list[tuple[str, str, str]]:
    with h.services.sessions() as s:
        rows = s.execute(
            sa.select(AuditEntry.event, AuditEntry.decision, AuditEntry.reason)
            .where(AuditEntry.request_id == request_id)
            .order_by(AuditEntry.seq)
        )
        return [(e, d, r) for e, d, r in rows]


def test_a_fix_repeated_in_the_window_is_called_recurring_on_the_card(harness: Harness) -> None:
    h = harness
    incident_id = _incident(h, "checkoutservice")
    _run(h, incident_id, "restart_service", "checkoutservice")
    _run(h, incident_id, "restart_service", "checkoutservice")
    card = h.wait_card(incident_id, lambda blocks: "second restart_service on checkoutservice" in blocks)
    assert "postmortem item" in json.dumps(card["blocks"])


def test_an_alert_slower_than_the_settle_time_gets_one_more_look_then_effective(harness: Harness) -> None:
    h = harness
    status, _ = post(h, {"snapshots": [{"service": "checkoutservice", "values": {"error_rate": 0.3}}]})
    assert status == 200
    incident_id = _incident(h, "checkoutservice")
    request_id = _run(h, incident_id, "restart_service", "checkoutservice")
    status, _ = post(h, {"snapshots": [{"service": "checkoutservice", "values": {"error_rate": 0.0}}]})
    assert status == 200
    assert (
        verify_due(h.services) == []
    )  # metrics healthy, the alert still fires: look again after a settle time
    with h.services.sessions() as s:
        row = verifications.get(db_session=s, request_id=request_id)
        assert row is not None and (row.state, row.rechecks) == ("pending", 1)
    done = verify_due(_later(h.services, 1, "replica-2"))
    assert [(d.request_id, d.judgement.verdict) for d in done] == [(request_id, "effective")]
    assert "lags" in done[0].judgement.summary
