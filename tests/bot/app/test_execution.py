"""The action runner through the real app: nothing waits for a running action; leases, late results,
per-action timeouts and run-time refusals (findings 6, 7 and 9a of issue 10)."""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from bot.app.commands import run
from bot.app.execution import run_approved
from bot.app.jobs import recover_interrupted
from bot.services import Services, build_services
from bot.settings import load_settings
from incidents_db.models import ApprovalRequest, AuditEntry, Execution, IncidentEvent
from playbooks.catalog import Catalog
from remediation.approvals import service as approvals
from tests.bot.conftest import ALICE, BOB, BOT, Harness, generic
from tests.bot.sandbox.conftest import wait_for

SLOW_S = 30.0  # the slow action would take this long; every test releases it once its checks are done


def _incident(h: Harness, service: str = "checkoutservice") -> str:
    status, body = h.post_alert("generic", generic("HighErrorRate", service))
    assert status == 200, body
    return str((body["created"] or body["incidents"])[0])


def _propose(h: Harness, incident_id: str, action: str = "restart_service") -> str:
    with h.services.sessions() as s:
        view = approvals.propose(
            db_session=s,
            guard=h.services.guard,
            action=action,
            target="checkoutservice",
            params={},
            requester=BOT,
            incident_id=incident_id,
        )
    return view.id


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


def _actions(h: Harness, incident_id: str) -> list[dict[str, Any]]:
    with h.services.sessions() as s:
        payloads = s.execute(
            sa.select(IncidentEvent.payload)
            .where(IncidentEvent.incident_id == incident_id, IncidentEvent.type == "action")
            .order_by(IncidentEvent.seq)
        ).scalars()
        return [dict(p) for p in payloads]


def _later(services: Services, hours: float) -> Services:
    """The same store seen by a replica whose clock is ``hours`` ahead (every lease looks expired)."""
    now = services.clock()
    return dataclasses.replace(services, clock=lambda: now + timedelta(hours=hours), replica="replica-2")


def _start_slow_run(h: Harness) -> tuple[str, str]:
    """Approve a slow restart through the app; return (incident id, request id) once it is running."""
    h.world.slow["restart_service"] = SLOW_S
    incident_id = _incident(h)
    request_id = _propose(h, incident_id)
    h.command(ALICE, f"approve {request_id}")
    h.wait_ephemeral(ALICE, "Approved restart_service on checkoutservice; running")
    assert h.world.started.wait(30), "the runner never started the action"
    return incident_id, request_id


def test_intake_and_commands_answer_while_an_action_runs(harness: Harness) -> None:
    incident_id, request_id = _start_slow_run(harness)
    # An alert for another service: accepted and grouped while the restart still runs.
    status, body = harness.post_alert("generic", generic("HighLatency", "frontend"))
    assert status == 200 and body["created"], body
    assert not harness.world.finished.is_set()
    harness.command(BOB, "incidents")
    harness.wait_ephemeral(BOB, body["created"][0])
    assert not harness.world.finished.is_set()  # the command answered while the action ran
    assert _state(harness, request_id) == "executing"
    harness.world.release.set()
    harness.wait_card(incident_id, lambda b: "executed" in b)
    assert [a["outcome"] for a in _actions(harness, incident_id)] == ["succeeded"]


def test_a_live_lease_is_not_recovered_and_a_late_result_is_kept(db_harness: Harness) -> None:
    h = db_harness
    # the runner reads the lease when it starts a run
    h.services.settings = h.services.settings.model_copy(update={"execution_heartbeat_s": 0.1})
    incident_id, request_id = _start_slow_run(h)

    def lease_until() -> Any:
        with h.services.sessions() as s:
            return s.execute(
                sa.select(Execution.lease_expires_at).where(Execution.request_id == request_id)
            ).scalar_one()

    first = lease_until()
    wait_for(lambda: lease_until() > first)  # the heartbeat renews it while the action runs
    # A second replica starting up now leaves the live run alone ...
    assert recover_interrupted(dataclasses.replace(h.services, replica="replica-2")) == []
    assert _state(h, request_id) == "executing"
    # ... but once the lease looks expired (a replica whose clock is an hour on), it is recovered.
    assert recover_interrupted(_later(h.services, 1)) == [request_id]
    assert _state(h, request_id) == "unknown"
    h.world.release.set()  # the run finishes after all: its result must not be lost
    wait_for(lambda: _state(h, request_id) == "succeeded")
    late = [a for a in _audit(h, request_id) if a[0] == "late_outcome"]
    assert len(late) == 1 and late[0][2].startswith("succeeded (arrived late")
    actions = wait_for(lambda: [a for a in _actions(h, incident_id) if a.get("late")])
    assert actions[0]["outcome"] == "succeeded" and "arrived late" in actions[0]["detail"]
    assert h.world.applied == [("restart_service", "checkoutservice", {})]  # never run twice


def test_an_action_past_its_timeout_is_unknown_and_its_late_result_recorded(harness: Harness) -> None:
    catalog = harness.services.catalog
    quick = catalog.actions["restart_service"].model_copy(update={"timeout_s": 0.5})
    harness.services.catalog = Catalog(actions={**catalog.actions, "restart_service": quick})
    incident_id, request_id = _start_slow_run(harness)
    wait_for(lambda: _state(harness, request_id) == "unknown")
    outcome = [a for a in _audit(harness, request_id) if a[0] == "outcome"]
    assert "did not finish within its timeout of 0.5 s" in outcome[-1][2]
    wait_for(lambda: _actions(harness, incident_id))  # the timeline says unknown first
    assert not harness.world.finished.is_set()
    harness.world.release.set()
    wait_for(lambda: _state(harness, request_id) == "succeeded")
    assert [a[0] for a in _audit(harness, request_id)][-1] == "late_outcome"
    assert wait_for(lambda: len(_actions(harness, incident_id)) == 2)
    outcomes = [(a["outcome"], bool(a.get("late"))) for a in _actions(harness, incident_id)]
    assert outcomes == [("unknown", False), ("succeeded", True)]


def test_a_rate_limited_approved_request_fails_with_the_reason(db_harness: Harness) -> None:
    h = db_harness
    incident_id = _incident(h)
    card = h.card_for(incident_id)  # rendered while restart_service may still run: Approve offered
    assert "approve:1" in str(card["blocks"]) and "restart_service on checkoutservice" in str(card["blocks"])
    for _ in range(3):  # meanwhile it runs three times (the catalog allows three an hour per target)
        request_id = _propose(h, incident_id)
        with h.services.sessions() as s:
            view = approvals.approve(
                db_session=s,
                guard=h.services.guard,
                request_id=request_id,
                approver=BOB,
                executor=h.services.executor,
            )
        assert view.state == "succeeded"
    h.click(ALICE, card, "approve:1")  # approving is allowed: limits apply when it runs
    h.wait_ephemeral(ALICE, "running")
    card = h.wait_card(incident_id, lambda b: "already ran 3 time(s)" in b)
    blocks = json.dumps(card["blocks"], ensure_ascii=False)
    assert "❌ failed" in blocks and "did not run" in blocks and "; running" not in blocks
    with h.services.sessions() as s:
        request_id = s.execute(
            sa.select(ApprovalRequest.id).order_by(ApprovalRequest.created_at.desc()).limit(1)
        ).scalar_one()
    assert _state(h, request_id) == "failed"
    blocked = [a for a in _audit(h, request_id) if a[0] == "blocked"]
    assert blocked and "already ran 3 time(s)" in blocked[0][2] and blocked[0][1] == "denied"
    actions = wait_for(lambda: [a for a in _actions(h, incident_id) if a.get("request_id") == request_id])
    assert actions[0]["outcome"] == "failed" and "did not run" in actions[0]["detail"]
    assert len(h.world.applied) == 3


def test_concurrent_deliveries_for_one_service_open_one_incident(db_harness: Harness) -> None:
    h = db_harness
    results: list[tuple[int, dict[str, Any]]] = []
    start = threading.Barrier(6)

    def deliver(n: int) -> None:
        start.wait()
        results.append(h.post_alert("generic", generic(f"Alert{n}", "cartservice", fingerprint=f"fp-{n}")))

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [status for status, _ in results] == [200] * 6, results
    created = [i for _, body in results for i in body["created"]]
    assert len(created) == 1, results  # one incident for the service, every alert joined it
    with h.services.sessions() as s:
        alerts = s.execute(
            sa.select(sa.func.count()).where(
                IncidentEvent.type == "alert", IncidentEvent.incident_id == created[0]
            )
        ).scalar_one()
    assert alerts == 6


def test_without_a_runner_an_approval_runs_inline_under_a_lease(harness: Harness) -> None:
    incident_id = _incident(harness)
    request_id = _propose(harness, incident_id)
    inline = dataclasses.replace(
        harness.services, runner=None
    )  # services used outside the app (CLI, scripts)
    out = run(inline, user=ALICE, text=f"approve {request_id}")
    assert "restart_service on checkoutservice: succeeded" in out.reply.text
    with harness.services.sessions() as s:
        owner = s.execute(
            sa.select(Execution.lease_owner).where(Execution.request_id == request_id)
        ).scalar_one()
    assert owner == harness.services.replica
    assert [a["outcome"] for a in _actions(harness, incident_id)] == ["succeeded"]


def test_lease_and_runner_size_come_from_settings(sqlite_url: str) -> None:
    settings = load_settings(database_url=sqlite_url, execution_lease_s=30, action_threads=2, topology="")
    services = build_services(settings)
    assert services.lease.seconds == 30 and services.lease.every_s == 10
    assert services.settings.action_threads == 2 and services.topology is None
    shorter = load_settings(database_url=sqlite_url, execution_lease_s=5.0, execution_heartbeat_s=0.5)
    assert build_services(shorter).lease.seconds == 5.0  # tests may go shorter
    assert build_services(shorter).lease.every_s == 0.5


def test_a_request_that_waited_past_its_time_to_live_expires_instead_of_running(harness: Harness) -> None:
    incident_id = _incident(harness)
    request_id = _propose(harness, incident_id)
    with harness.services.sessions() as s:  # approved, not yet run (still in the runner's queue)
        view = approvals.approve(
            db_session=s, guard=harness.services.guard, request_id=request_id, approver=ALICE
        )
    assert view.state == "approved"
    late = _later(harness.services, 2)
    done = run_approved(late, request_id, ALICE, on_late=lambda v, a: None)
    assert done is not None and done.state == "expired"
    assert harness.world.applied == []
