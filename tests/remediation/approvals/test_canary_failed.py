"""A canary whose run fails, or never starts, is disarmed: no verdict will come, so no rest and no undo follow."""

from __future__ import annotations

import sqlalchemy as sa

from incidents_db import canaries, incidents
from incidents_db import verifications as checks
from incidents_db.models import ApprovalRequest, AuditEntry
from remediation.approvals import service as svc
from remediation.executors.base import ExecRequest, Outcome
from tests.remediation.approvals.canary_setup import armed_canary
from tests.remediation.conftest import BOB, CountingExecutor, Store


class Fails(CountingExecutor):
    """Runs the canary and reports a failed rollout."""

    supports_canary = True

    def execute(self, request: ExecRequest, dry_run: bool) -> Outcome:
        super().execute(request, dry_run)
        return Outcome("failed", "rollout of 1 pod did not finish")


def _disarmed(store: Store, incident_id: str, request_id: str, run: str, todo: str) -> None:
    """Assert the canary is ``run_failed`` with no follow-up, audited and on the timeline with ``run``/``todo``."""
    with store.factory() as s:
        row = canaries.get(db_session=s, request_id=request_id)
        assert row is not None and row.state == "run_failed" and row.verdict is None
        assert (row.rest_request_id, row.undo_request_id) == (None, None)
        check = checks.get(db_session=s, request_id=request_id)
        assert check is None or check.verify_at is None  # nothing is judged, so nothing waits for a verdict
        audited = list(s.execute(
            sa.select(AuditEntry.reason).where(AuditEntry.event == "canary", AuditEntry.request_id == request_id)
        ).scalars())  # fmt: skip
        assert [r for r in audited if r.startswith(f"run_failed: the canary's {run}") and todo in r]
        notes = [e for e in incidents.record(db_session=s, incident_id=incident_id)["events"]
                 if e.get("type") == "note" and e.get("canary") == "run_failed"]  # fmt: skip
        assert len(notes) == 1 and notes[0]["request_id"] == request_id
        assert notes[0]["canary_run"].startswith(run) and todo in notes[0]["canary_note"]
        assert list(s.execute(sa.select(ApprovalRequest.state)).scalars()) == ["failed"]  # no rest, no undo


def test_a_failed_canary_run_disarms_it_without_an_undo(store: Store) -> None:
    incident_id, request_id = armed_canary(store, auto_undo=True)
    ex = Fails()
    with store.factory() as s:
        done = svc.approve(db_session=s, guard=store.guard, request_id=request_id, approver=BOB, executor=ex)
    assert done.state == "failed" and ex.calls == [request_id]
    _disarmed(store, incident_id, request_id, "run failed (rollout of 1 pod did not finish)",
              "nothing is undone automatically; check checkoutservice by hand")  # fmt: skip


def test_a_canary_the_executor_cannot_run_is_disarmed(store: Store) -> None:
    incident_id, request_id = armed_canary(store)
    ex = CountingExecutor()  # no supports_canary: it never runs the canary
    with store.factory() as s:
        done = svc.approve(db_session=s, guard=store.guard, request_id=request_id, approver=BOB, executor=ex)
    assert done.state == "failed" and ex.calls == []
    _disarmed(store, incident_id, request_id, "run never started (the sim executor cannot run a canary",
              "nothing changed and the rest is not run")  # fmt: skip


def test_a_canary_refused_at_run_time_is_disarmed(store: Store) -> None:
    incident_id, request_id = armed_canary(store)
    with store.factory() as s:
        svc.approve(db_session=s, guard=store.guard, request_id=request_id, approver=BOB)
        svc.fail_blocked(db_session=s, guard=store.guard, request_id=request_id, reason="change freeze")
    _disarmed(store, incident_id, request_id, "run never started (refused at run time: change freeze)",
              "nothing changed and the rest is not run")  # fmt: skip
