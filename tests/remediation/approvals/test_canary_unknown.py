"""A canary whose run ends ``unknown`` is disarmed: no verdict will come, so no rest and no undo follow."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from incidents_db import canaries, incidents
from incidents_db import verifications as checks
from incidents_db.models import ApprovalRequest, AuditEntry
from remediation.approvals import service as svc
from remediation.executors.base import ExecRequest, Outcome
from tests.remediation.approvals.canary_setup import armed_canary
from tests.remediation.conftest import BOB, CountingExecutor, Store


class Unknown(CountingExecutor):
    """Gets no answer from the target: the run's outcome is unknown."""

    supports_canary = True

    def execute(self, request: ExecRequest, dry_run: bool) -> Outcome:
        super().execute(request, dry_run)
        return Outcome("unknown", "no answer within the timeout")


class Dies(CountingExecutor):
    supports_canary = True

    def execute(self, request: ExecRequest, dry_run: bool) -> Outcome:
        raise KeyboardInterrupt  # stands in for the process dying: nothing after this line runs


def _disarmed(store: Store, incident_id: str, request_id: str) -> None:
    with store.factory() as s:
        row = canaries.get(db_session=s, request_id=request_id)
        assert row is not None and row.state == "unknown" and row.verdict is None
        assert (row.rest_request_id, row.undo_request_id) == (None, None)
        assert checks.get(db_session=s, request_id=request_id) is None  # nothing waits for a verdict
        audited = s.execute(
            sa.select(AuditEntry.reason).where(
                AuditEntry.event == "canary", AuditEntry.request_id == request_id
            )
        ).scalars()
        assert [r for r in audited if r.startswith("unknown: ") and "check checkoutservice by hand" in r]
        notes = [e for e in incidents.record(db_session=s, incident_id=incident_id)["events"]
                 if e.get("type") == "note" and e.get("canary") == "unknown"]  # fmt: skip
        assert len(notes) == 1 and notes[0]["request_id"] == request_id
        assert "the rest is not run and nothing is undone" in notes[0]["text"]
        assert list(s.execute(sa.select(ApprovalRequest.state)).scalars()) == ["unknown"]  # no rest, no undo


def test_an_unknown_canary_run_disarms_it(store: Store) -> None:
    incident_id, request_id = armed_canary(store)
    ex = Unknown()
    with store.factory() as s:
        done = svc.approve(db_session=s, guard=store.guard, request_id=request_id, approver=BOB, executor=ex)
    assert done.state == "unknown" and ex.calls == [request_id]
    _disarmed(store, incident_id, request_id)


def test_a_canary_whose_runner_died_is_disarmed_by_recovery(store: Store) -> None:
    incident_id, request_id = armed_canary(store)
    with store.factory() as s:
        svc.approve(db_session=s, guard=store.guard, request_id=request_id, approver=BOB)
        with pytest.raises(KeyboardInterrupt):
            svc.execute(db_session=s, guard=store.guard, request_id=request_id, executor=Dies())
    store.clock.advance(61)  # the lease (60 s) expires
    with store.factory() as s:
        assert svc.recover_interrupted(db_session=s, guard=store.guard) == [request_id]
    _disarmed(store, incident_id, request_id)


def test_a_late_result_leaves_the_canary_disarmed(store: Store) -> None:
    _, request_id = armed_canary(store)
    with store.factory() as s:
        svc.approve(db_session=s, guard=store.guard, request_id=request_id, approver=BOB, executor=Unknown())
        late = svc.record_outcome(db_session=s, guard=store.guard, request_id=request_id,
                                  outcome=Outcome("succeeded", "done after all"))  # fmt: skip
    assert late.state == "succeeded" and late.late
    with store.factory() as s:
        assert canaries.get(db_session=s, request_id=request_id).state == "unknown"  # type: ignore[union-attr]
