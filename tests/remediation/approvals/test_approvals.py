"""The approval workflow on real SQLite and PostgreSQL: states, forged requests, exactly-once, crashes."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
import sqlalchemy as sa

from incidents_db.models import AuditEntry, Execution, GuardrailSwitch
from remediation.approvals import service as svc
from remediation.audit.service import verify
from remediation.errors import (
    ApprovalError,
    GuardrailDeniedError,
    IllegalTransitionError,
    RequestExpiredError,
)
from remediation.executors.base import Outcome
from tests.remediation.conftest import ALICE, BOB, CAROL, DAVE, ERIN, FRANK, CountingExecutor, Store


def request(
    store: Store,
    action: str = "restart_service",
    target: str | None = "checkoutservice",
    requester: str = ALICE,
    **params: object,
) -> svc.RequestView:
    with store.factory() as s:
        return svc.propose(
            db_session=s, guard=store.guard, action=action, target=target, params=params, requester=requester
        )


def audit_events(store: Store) -> list[tuple[str, str, str]]:
    with store.factory() as s:
        return [
            (e.event, e.decision, e.actor)
            for e in s.execute(sa.select(AuditEntry).order_by(AuditEntry.seq)).scalars()
        ]


def test_happy_path_medium_risk(store: Store) -> None:
    ex = CountingExecutor()
    req = request(store)
    assert req.state == "pending" and req.required_approvals == 1
    with store.factory() as s:
        done = svc.approve(db_session=s, guard=store.guard, request_id=req.id, approver=BOB, executor=ex)
    assert done.state == "succeeded" and ex.calls == [req.id]
    events = [e[:2] for e in audit_events(store)]
    assert events == [
        ("request", "allowed"), ("submit", "info"), ("approve", "allowed"), ("approved", "info"),
        ("execute", "allowed"), ("outcome", "info"),
    ]  # fmt: skip
    with store.factory() as s:
        assert verify(db_session=s).ok


def test_high_risk_needs_two_distinct_eligible_approvers(store: Store) -> None:
    ex = CountingExecutor()
    req = request(store, "drain_node")
    with store.factory() as s:
        with pytest.raises(GuardrailDeniedError, match="may not approve high-risk"):
            svc.approve(db_session=s, guard=store.guard, request_id=req.id, approver=BOB, executor=ex)
        one = svc.approve(db_session=s, guard=store.guard, request_id=req.id, approver=CAROL, executor=ex)
        assert one.state == "pending" and ex.calls == []
        with pytest.raises(GuardrailDeniedError, match="already approved"):
            svc.approve(db_session=s, guard=store.guard, request_id=req.id, approver=CAROL, executor=ex)
        two = svc.approve(db_session=s, guard=store.guard, request_id=req.id, approver=DAVE, executor=ex)
    assert two.state == "succeeded" and ex.calls == [req.id]


def test_forged_requests_are_refused_and_audited(store: Store) -> None:
    req = request(store)
    with store.factory() as s:
        with pytest.raises(GuardrailDeniedError, match="may not approve it"):
            svc.approve(db_session=s, guard=store.guard, request_id=req.id, approver=ALICE)  # self approval
        with pytest.raises(GuardrailDeniedError, match="viewer"):
            svc.approve(
                db_session=s, guard=store.guard, request_id=req.id, approver=FRANK
            )  # not in any approve policy
        with pytest.raises(GuardrailDeniedError, match="no role"):
            svc.approve(db_session=s, guard=store.guard, request_id=req.id, approver="UFORGED01")
        with pytest.raises(GuardrailDeniedError):
            svc.propose(
                db_session=s,
                guard=store.guard,
                action="restart_service",
                target="redis-cart",
                params={},
                requester=ALICE,
            )
    denied = [e for e in audit_events(store) if e[1] == "denied"]
    assert [(e[0], e[2]) for e in denied] == [
        ("approve", ALICE),
        ("approve", FRANK),
        ("approve", "UFORGED01"),
        ("request", ALICE),
    ]
    assert svc.get(db_session=store.factory(), request_id=req.id).state == "pending"


def test_approving_an_expired_request(store: Store) -> None:
    req = request(store)
    store.clock.advance(store.guard.config.approval_ttl_s + 1)
    with store.factory() as s, pytest.raises(RequestExpiredError, match="expired"):
        svc.approve(
            db_session=s, guard=store.guard, request_id=req.id, approver=BOB, executor=CountingExecutor()
        )
    with store.factory() as s:
        assert svc.get(db_session=s, request_id=req.id).state == "expired"
        assert s.execute(sa.select(sa.func.count()).select_from(Execution)).scalar_one() == 0


def test_expire_due_sweeps_open_requests(store: Store) -> None:
    a, b = request(store), request(store, "clear_disk")
    store.clock.advance(store.guard.config.approval_ttl_s)
    with store.factory() as s:
        assert sorted(svc.expire_due(db_session=s, guard=store.guard)) == sorted([a.id, b.id])


def test_freeze_that_begins_after_approval_still_blocks(store: Store) -> None:
    ex = CountingExecutor()
    req = request(store)
    with store.factory() as s:
        assert (
            svc.approve(db_session=s, guard=store.guard, request_id=req.id, approver=BOB).state == "approved"
        )
        s.add(
            GuardrailSwitch(
                kind="freeze", scope="*", engaged=True, actor=ERIN, reason="test", at=store.clock()
            )
        )
        s.commit()
        with pytest.raises(GuardrailDeniedError, match="freeze"):
            svc.execute(db_session=s, guard=store.guard, request_id=req.id, executor=ex)
    assert ex.calls == []
    with store.factory() as s:
        assert svc.get(db_session=s, request_id=req.id).state == "approved"  # runnable once the freeze ends


def test_kill_switch_blocks_execution(store: Store) -> None:
    ex = CountingExecutor()
    req = request(store)
    with store.factory() as s:
        svc.approve(db_session=s, guard=store.guard, request_id=req.id, approver=BOB)
        s.add(
            GuardrailSwitch(
                kind="kill", scope="checkoutservice", engaged=True, actor=ERIN, reason="", at=store.clock()
            )
        )
        s.commit()
        with pytest.raises(GuardrailDeniedError, match="kill switch"):
            svc.execute(db_session=s, guard=store.guard, request_id=req.id, executor=ex)
    assert ex.calls == []


def test_illegal_transitions_raise_typed_errors(store: Store) -> None:
    ex = CountingExecutor()
    req = request(store)
    with store.factory() as s:
        with pytest.raises(IllegalTransitionError, match="pending, not approved"):
            svc.execute(db_session=s, guard=store.guard, request_id=req.id, executor=ex)
        svc.reject(db_session=s, guard=store.guard, request_id=req.id, approver=BOB, comment="not now")
        with pytest.raises(IllegalTransitionError, match="rejected"):
            svc.approve(db_session=s, guard=store.guard, request_id=req.id, approver=CAROL)
        with pytest.raises(IllegalTransitionError):
            svc.cancel(db_session=s, guard=store.guard, request_id=req.id, actor=ALICE)
    other = request(store)
    with store.factory() as s:
        with pytest.raises(GuardrailDeniedError, match="neither the requester"):
            svc.cancel(db_session=s, guard=store.guard, request_id=other.id, actor=FRANK)
        assert (
            svc.cancel(db_session=s, guard=store.guard, request_id=other.id, actor=ALICE).state == "cancelled"
        )
    assert ex.calls == []


def test_executor_crash_leaves_unknown_and_never_reruns(store: Store) -> None:
    ex = CountingExecutor(raise_error=True)
    req = request(store)
    with store.factory() as s:
        done = svc.approve(db_session=s, guard=store.guard, request_id=req.id, approver=BOB, executor=ex)
        assert done.state == "unknown"
        with pytest.raises(IllegalTransitionError, match="unknown"):
            svc.execute(db_session=s, guard=store.guard, request_id=req.id, executor=CountingExecutor())
    assert ex.calls == [req.id]


def test_process_crash_mid_execution_is_recovered_as_unknown(store: Store) -> None:
    class Dies(CountingExecutor):
        def execute(self, request, dry_run):  # type: ignore[no-untyped-def]
            raise KeyboardInterrupt  # stands in for the process dying: nothing after this line runs

    req = request(store)
    with store.factory() as s:
        svc.approve(db_session=s, guard=store.guard, request_id=req.id, approver=BOB)
        with pytest.raises(KeyboardInterrupt):
            svc.execute(db_session=s, guard=store.guard, request_id=req.id, executor=Dies())
    with store.factory() as s:
        assert svc.get(db_session=s, request_id=req.id).state == "executing"  # the claim was committed
        assert svc.recover_interrupted(db_session=s, guard=store.guard) == []  # its lease is still live
        store.clock.advance(61)  # nobody renews it: the lease (60 s) expires
        assert svc.recover_interrupted(db_session=s, guard=store.guard) == [req.id]
        assert svc.get(db_session=s, request_id=req.id).state == "unknown"
        again = CountingExecutor()
        with pytest.raises(IllegalTransitionError):
            svc.execute(db_session=s, guard=store.guard, request_id=req.id, executor=again)
        assert again.calls == []


def test_rate_limit_counts_earlier_executions(store: Store) -> None:
    ex = CountingExecutor()
    for _ in range(3):  # the catalog allows restart_service 3 times an hour per target
        req = request(store)
        with store.factory() as s:
            assert (
                svc.approve(
                    db_session=s, guard=store.guard, request_id=req.id, approver=BOB, executor=ex
                ).state
                == "succeeded"
            )
        store.clock.advance(60)
    req = request(store)
    with store.factory() as s, pytest.raises(GuardrailDeniedError, match="already ran 3 time"):
        svc.approve(db_session=s, guard=store.guard, request_id=req.id, approver=BOB, executor=ex)
    assert len(ex.calls) == 3


def test_preview_is_a_dry_run_that_changes_nothing(store: Store) -> None:
    ex = CountingExecutor()
    req = request(store)
    with store.factory() as s:
        outcome = svc.preview(db_session=s, guard=store.guard, request_id=req.id, executor=ex, actor=BOB)
    assert outcome.status == "dry_run" and ex.calls == []
    assert svc.get(db_session=store.factory(), request_id=req.id).state == "pending"


def race(n: int, fn) -> list[BaseException | object]:  # type: ignore[no-untyped-def]
    barrier = threading.Barrier(n)
    results: list[BaseException | object] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except BaseException as exc:  # collected, asserted below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_fifty_concurrent_approvals_execute_once(store: Store) -> None:
    """50 threads, each its own session and connection, approve the same request at once."""
    approvers = [f"U9APPR{i:03d}" for i in range(50)]
    config = store.guard.config
    users = dict(config.users)
    from remediation.guardrails.models import User

    for uid in approvers:
        users[uid] = User(name=uid, roles=("sre-lead",))
    guard = replace(store.guard, config=config.model_copy(update={"users": users}))
    store = replace(store, guard=guard)
    ex = CountingExecutor()
    req = request(store, "drain_node")  # high: two approvals

    def one(i: int) -> object:
        with store.factory() as s:
            return svc.approve(
                db_session=s, guard=guard, request_id=req.id, approver=approvers[i], executor=ex
            )

    results = race(50, one)
    unexpected = [r for r in results if isinstance(r, BaseException) and not isinstance(r, ApprovalError)]
    assert unexpected == []
    assert ex.calls == [req.id]
    with store.factory() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(Execution)).scalar_one() == 1
        assert svc.get(db_session=s, request_id=req.id).state == "succeeded"
        verdict = verify(db_session=s)
        assert verdict.ok, verdict.problem
        executes = s.execute(
            sa.select(sa.func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.event == "execute", AuditEntry.decision == "allowed")
        ).scalar_one()
        assert executes == 1


def test_fifty_concurrent_executes_run_once(store: Store) -> None:
    ex = CountingExecutor()
    req = request(store)
    with store.factory() as s:
        svc.approve(db_session=s, guard=store.guard, request_id=req.id, approver=BOB)

    def one(i: int) -> object:
        with store.factory() as s:
            return svc.execute(db_session=s, guard=store.guard, request_id=req.id, executor=ex)

    results = race(50, one)
    assert sum(1 for r in results if isinstance(r, svc.RequestView)) == 1
    assert all(isinstance(r, IllegalTransitionError) for r in results if not isinstance(r, svc.RequestView))
    assert ex.calls == [req.id]


def test_unique_execution_row_backs_the_state_check(store: Store) -> None:
    req = request(store)
    with store.factory() as s:
        s.add(
            Execution(
                request_id=req.id,
                executor="sim",
                dry_run=False,
                state="running",
                started_at=store.clock(),
                outcome={},
                output="",
            )
        )
        s.commit()
        s.add(
            Execution(
                request_id=req.id,
                executor="sim",
                dry_run=False,
                state="running",
                started_at=store.clock(),
                outcome={},
                output="",
            )
        )
        with pytest.raises(sa.exc.IntegrityError):
            s.commit()


def test_a_lease_is_renewed_only_by_its_owner_and_a_late_result_is_kept(store: Store) -> None:
    class Stuck(CountingExecutor):
        def execute(self, request, dry_run):  # type: ignore[no-untyped-def]
            raise KeyboardInterrupt  # the runner is cut off after the claim

    req = request(store)
    mine = svc.Lease(owner="replica-a", seconds=60)
    with store.factory() as s:
        svc.approve(db_session=s, guard=store.guard, request_id=req.id, approver=BOB)
        with pytest.raises(KeyboardInterrupt):
            svc.execute(db_session=s, guard=store.guard, request_id=req.id, executor=Stuck(), lease=mine)
    with store.factory() as s:
        other = svc.Lease(owner="replica-b", seconds=60)
        assert not svc.renew_lease(db_session=s, guard=store.guard, request_id=req.id, lease=other)
        store.clock.advance(50)
        assert svc.renew_lease(db_session=s, guard=store.guard, request_id=req.id, lease=mine)
        store.clock.advance(50)  # 100 s after the claim, 50 s after the renewal: still live
        assert svc.recover_interrupted(db_session=s, guard=store.guard) == []
        store.clock.advance(11)
        assert svc.recover_interrupted(db_session=s, guard=store.guard) == [req.id]
        assert not svc.renew_lease(db_session=s, guard=store.guard, request_id=req.id, lease=mine)
        late = svc.record_outcome(
            db_session=s, guard=store.guard, request_id=req.id, outcome=Outcome("succeeded", "restarted")
        )
        assert late.late and late.state == "succeeded"
        row = s.execute(sa.select(Execution).where(Execution.request_id == req.id)).scalar_one()
        assert row.state == "succeeded" and row.outcome["late"] is True
        with pytest.raises(IllegalTransitionError, match="already recorded"):
            svc.record_outcome(
                db_session=s, guard=store.guard, request_id=req.id, outcome=Outcome("failed", "again")
            )
    events = [(e, d) for e, d, _ in audit_events(store)]
    assert ("late_outcome", "info") in events and ("outcome", "denied") in events
    with store.factory() as s:
        assert verify(db_session=s).ok


def test_a_run_time_refusal_fails_the_request_with_its_reason(store: Store) -> None:
    req = request(store)
    with store.factory() as s:
        svc.approve(db_session=s, guard=store.guard, request_id=req.id, approver=BOB)
        view = svc.fail_blocked(
            db_session=s, guard=store.guard, request_id=req.id, reason="a freeze is in effect"
        )
    assert view.state == "failed" and view.note == "did not run: a freeze is in effect"
    with store.factory() as s:
        assert svc.get(db_session=s, request_id=req.id).note == "did not run: a freeze is in effect"
        assert s.execute(sa.select(sa.func.count()).select_from(Execution)).scalar_one() == 0
    assert ("blocked", "denied", "remediate") in audit_events(store)
