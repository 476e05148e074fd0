"""Housekeeping: interrupted executions become `unknown` at start; a real APScheduler job expires stale requests."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import sqlalchemy as sa

from bot.app.jobs import SEEN_KEPT, expire_requests, forget_old_deliveries, recover_interrupted, start_jobs
from bot.services import Services
from incidents_db import outbox
from incidents_db.models import ApprovalRequest, AuditEntry, Execution
from remediation.approvals import service as approvals
from tests.bot.conftest import BOT, Harness, generic
from tests.bot.sandbox.conftest import wait_for


def _open_request(h: Harness) -> str:
    status, body = h.post_alert("generic", generic("HighErrorRate", "checkoutservice"))
    assert status == 200, body
    incident_id = body["created"][0]
    with h.services.sessions() as session:
        view = approvals.propose(
            db_session=session,
            guard=h.services.guard,
            action="restart_service",
            target="checkoutservice",
            params={},
            requester=BOT,
            incident_id=incident_id,
        )
    return view.id


def _state(services: Services, request_id: str) -> str:
    with services.sessions() as session:
        return approvals.get(db_session=session, request_id=request_id).state


def _later(services: Services, hours: float) -> Services:
    now = services.clock()
    return dataclasses.replace(services, clock=lambda: now + timedelta(hours=hours))


def test_expiry_moves_only_requests_past_their_time_to_live(harness: Harness) -> None:
    request_id = _open_request(harness)
    assert expire_requests(harness.services) == []  # still fresh
    assert _state(harness.services, request_id) == "pending"
    assert expire_requests(_later(harness.services, 2)) == [request_id]
    assert _state(harness.services, request_id) == "expired"
    with harness.services.sessions() as session:
        events = session.execute(
            sa.select(AuditEntry.event).where(AuditEntry.request_id == request_id)
        ).scalars()
        assert "expire" in list(events)


def test_the_scheduler_expires_stale_requests_by_itself(harness: Harness) -> None:
    request_id = _open_request(harness)
    scheduler = start_jobs(_later(harness.services, 2), expire_every_s=0.2)
    try:
        wait_for(lambda: _state(harness.services, request_id) == "expired")
    finally:
        scheduler.shutdown(wait=False)
    assert _state(harness.services, request_id) == "expired"


def test_an_execution_interrupted_by_a_crash_becomes_unknown_and_is_not_rerun(harness: Harness) -> None:
    request_id = _open_request(harness)
    # What a crash after the durable claim leaves behind: the request stuck in `executing`.
    with harness.services.sessions() as session:
        session.execute(
            sa.update(ApprovalRequest).where(ApprovalRequest.id == request_id).values(state="executing")
        )
        session.commit()
    assert recover_interrupted(harness.services) == [request_id]
    assert _state(harness.services, request_id) == "unknown"
    assert harness.world.applied == []  # recovery marks it; it never runs the action again
    assert recover_interrupted(harness.services) == []


def _claimed_by(h: Harness, owner: str, *, lease_s: float) -> str:
    """A request `executing` under a lease of ``owner`` (what another replica's runner leaves)."""
    request_id = _open_request(h)
    now = h.services.clock()
    with h.services.sessions() as session:
        session.execute(
            sa.update(ApprovalRequest).where(ApprovalRequest.id == request_id).values(state="executing")
        )
        session.add(
            Execution(
                request_id=request_id,
                executor="sim",
                state="running",
                started_at=now,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_s),
            )
        )
        session.commit()
    return request_id


def test_recovery_takes_only_expired_leases(db_harness: Harness) -> None:
    live = _claimed_by(db_harness, "replica-b:1:aaaa", lease_s=600)
    assert recover_interrupted(db_harness.services) == []  # another replica is running it
    assert _state(db_harness.services, live) == "executing"
    assert recover_interrupted(_later(db_harness.services, 1)) == [live]  # its lease ran out
    assert _state(db_harness.services, live) == "unknown"


def test_the_scheduler_keeps_recovering_expired_leases(harness: Harness) -> None:
    scheduler = start_jobs(harness.services, expire_every_s=60, recover_every_s=0.2)
    try:
        # claimed after start-up recovery ran, with a lease that runs out almost at once
        request_id = _claimed_by(harness, "replica-b:1:aaaa", lease_s=0.5)
        wait_for(lambda: _state(harness.services, request_id) == "unknown")
    finally:
        scheduler.shutdown(wait=False)
    assert _state(harness.services, request_id) == "unknown"


def test_old_slack_deliveries_are_forgotten_and_new_ones_kept(db_harness: Harness) -> None:
    services = db_harness.services
    now = services.clock()
    with services.sessions() as s:
        assert outbox.first_delivery(
            db_session=s, event_id="Ev-old", now=now - SEEN_KEPT - timedelta(minutes=1)
        )
        assert outbox.first_delivery(db_session=s, event_id="Ev-new", now=now - timedelta(minutes=5))
    assert forget_old_deliveries(services) == 1
    with services.sessions() as s:
        # the recent one still drops its retry; the forgotten one could be recorded again
        assert not outbox.first_delivery(db_session=s, event_id="Ev-new", now=now)
        assert outbox.first_delivery(db_session=s, event_id="Ev-old", now=now)
