"""Housekeeping: interrupted executions become `unknown` at start; a real APScheduler job expires stale requests."""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta

import sqlalchemy as sa

from bot.app.jobs import expire_requests, recover_interrupted, start_jobs
from bot.app.services import Services
from incidents_db.models import ApprovalRequest, AuditEntry
from remediation.approvals import service as approvals
from tests.bot.app.conftest import BOT, Harness, generic


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
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _state(harness.services, request_id) != "expired":
            time.sleep(0.1)
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
