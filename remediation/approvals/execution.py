"""The run side of the workflow: preview, execute once under a lease, record the outcome, close blocked runs."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from opentelemetry import trace
from sqlalchemy.orm import Session, sessionmaker

from incidents_db import canaries
from incidents_db.models import ApprovalRequest, Execution
from remediation.approvals import states as st
from remediation.approvals._store import audit, check_open, deny_if, disarm_canary, load, move, refuse
from remediation.approvals.context import Guard, build_context
from remediation.approvals.lease import Heartbeat, Lease, replica_id
from remediation.approvals.views import RequestView, to_view
from remediation.errors import IllegalTransitionError
from remediation.executors.base import Canary, ExecRequest, Executor, Outcome, supports_canary
from remediation.guardrails.decide import decide

_TRACER = trace.get_tracer("remediate")  # a proxy: follows the provider the bot installs


def _exec_request(db_session: Session, guard: Guard, row: ApprovalRequest) -> ExecRequest:
    run = canaries.run_of(db_session=db_session, request_id=row.id)  # docs/verification.md, canary first
    canary = None if run is None else Canary(run.share, run.undo, run.canary_request_id)
    return ExecRequest(
        row.id, guard.catalog.get(row.action), row.target, dict(row.params), row.incident_id, canary
    )


def preview(*, db_session: Session, guard: Guard, request_id: str, executor: Executor, actor: str) -> Outcome:
    """Dry-run a request (any state): show exactly what would run, change nothing, record that it was shown."""
    row = load(db_session, request_id)
    outcome = executor.execute(_exec_request(db_session, guard, row), dry_run=True)
    audit(
        db_session,
        row,
        actor=actor,
        event="dry_run",
        decision="info",
        reason=f"{executor.kind}: {outcome.detail}"[:2000],
    )
    db_session.commit()
    return outcome


def execute(
    *,
    db_session: Session,
    guard: Guard,
    request_id: str,
    executor: Executor,
    actor: str = "remediate",
    lease: Lease | None = None,
) -> RequestView:
    """Run an approved request exactly once: claim it, record and commit the claim, then act, then record the outcome.

    The claim carries a lease (owner and expiry) that a heartbeat renews while the executor runs. A
    crash after the claim leaves the request ``executing`` until the lease expires; `recover_interrupted`
    then turns it into ``unknown``, and nothing runs it again. An executor that raises also leaves
    ``unknown``. A result that arrives after recovery is recorded as late (`record_outcome`).
    """
    lease = lease or Lease(owner=replica_id())
    row = load(db_session, request_id)
    now = guard.clock()
    check_open(db_session, row, actor=actor, event="execute", expected=frozenset({st.APPROVED}), now=now)
    decision = decide(
        row.action,
        row.target,
        row.params,
        None,
        build_context(db_session=db_session, guard=guard, stage="execute", row=row),
    )
    deny_if(db_session, row, decision, actor=actor, event="execute")
    move(db_session, row, st.EXECUTING, now)
    db_session.add(
        Execution(
            request_id=row.id,
            executor=executor.kind,
            dry_run=False,
            state="running",
            started_at=now,
            outcome={},
            output="",
            lease_owner=lease.owner[:100],
            lease_expires_at=now + timedelta(seconds=lease.seconds),
        )
    )
    reason = decision.reason + ("; " + "; ".join(decision.notes) if decision.notes else "")
    audit(
        db_session,
        row,
        actor=actor,
        event="execute",
        decision="allowed",
        reason=f"{reason} (executor {executor.kind})",
    )
    db_session.commit()  # the claim and its audit entry are durable before anything runs
    beats = sessionmaker(bind=db_session.get_bind(), expire_on_commit=False)

    def renew() -> bool:
        with beats() as s:
            return renew_lease(db_session=s, guard=guard, request_id=request_id, lease=lease)

    attributes = {"remediate.request_id": row.id, "remediate.executor": executor.kind,
                  "remediate.action": row.action, "remediate.target": row.target or "", "remediate.actor": actor}  # fmt: skip
    with (
        _TRACER.start_as_current_span("execution", attributes=attributes) as span,
        Heartbeat(renew, lease.every_s, name=request_id[:12]),
    ):
        try:
            request = _exec_request(db_session, guard, row)
            if request.canary is not None and not supports_canary(executor, row.action):
                detail = f"the {executor.kind} executor cannot run a canary; nothing ran"
                outcome = Outcome("failed", detail, data={"ran": False})
            else:
                outcome = executor.execute(request, dry_run=False)
        except Exception as exc:  # we cannot know how far it got
            outcome = Outcome("unknown", f"the {executor.kind} executor raised {type(exc).__name__}: {exc}")
        span.set_attribute("remediate.outcome", outcome.status)
    return record_outcome(db_session=db_session, guard=guard, request_id=request_id, outcome=outcome)


def renew_lease(*, db_session: Session, guard: Guard, request_id: str, lease: Lease) -> bool:
    """Extend a running execution's lease held by ``lease.owner``; False when it is no longer ours (committed)."""
    result = db_session.execute(
        sa.update(Execution)
        .where(
            Execution.request_id == request_id,
            Execution.lease_owner == lease.owner[:100],
            Execution.state == "running",
        )
        .values(lease_expires_at=guard.clock() + timedelta(seconds=lease.seconds))
        .execution_options(synchronize_session=False)
    )
    db_session.commit()
    return getattr(result, "rowcount", 0) == 1


def record_outcome(*, db_session: Session, guard: Guard, request_id: str, outcome: Outcome) -> RequestView:
    """Record what an execution did; a result for a request already marked ``unknown`` is recorded as late.

    A late result (the run outlived its lease or its timeout) is never dropped: the execution row
    keeps it (``outcome.late``), the audit log gets a ``late_outcome`` entry, and the request moves
    from ``unknown`` to the real outcome when that is ``succeeded`` or ``failed``. The returned view
    says ``late=True`` so the caller can tell the incident's timeline.
    """
    final = outcome.status if outcome.status in (st.SUCCEEDED, st.FAILED) else st.UNKNOWN
    row = load(db_session, request_id)
    now = guard.clock()
    late = row.state == st.UNKNOWN
    if not late and row.state != st.EXECUTING:
        raise refuse(
            db_session,
            row,
            IllegalTransitionError(
                f"request {row.id} is {row.state}; its outcome ({final}) was already recorded"
            ),
            actor="remediate",
            event="outcome",
        )
    values: dict[str, Any] = {
        "outcome": outcome.as_dict(),
        "output": outcome.output[:20000],
        "finished_at": now,
    }
    if late:
        values["outcome"] = {**outcome.as_dict(), "late": True}
        if final != st.UNKNOWN:
            values["state"] = final
    else:
        values["state"] = final
    db_session.execute(sa.update(Execution).where(Execution.request_id == row.id).values(**values))
    if not late or final != st.UNKNOWN:
        move(db_session, row, final, now)
    if not late and final != st.SUCCEEDED:  # no verdict will come: a canary must not wait for one
        disarm_canary(db_session, row, now, outcome.detail, ran=outcome.data.get("ran") is not False)
    if late:
        audit(
            db_session,
            row,
            actor="remediate",
            event="late_outcome",
            decision="info",
            reason=f"{final} (arrived late, after the request was marked unknown): {outcome.detail}"[:2000],
        )
    else:
        audit(
            db_session,
            row,
            actor="remediate",
            event="outcome",
            decision="info",
            reason=f"{final}: {outcome.detail}"[:2000],
        )
    db_session.commit()
    return replace(to_view(db_session, row), late=late)


def fail_blocked(
    *, db_session: Session, guard: Guard, request_id: str, reason: str, actor: str = "remediate"
) -> RequestView:
    """Close an approved request a guardrail refused at run time as ``failed`` (it never ran); audited.

    The bot does not keep such a request waiting: an action should run close to when it was approved,
    not hours later when a freeze lifts or a rate limit window slides. Propose it again to retry.
    """
    row = load(db_session, request_id)
    now = guard.clock()
    check_open(db_session, row, actor=actor, event="execute", expected=frozenset({st.APPROVED}), now=now)
    move(db_session, row, st.FAILED, now)
    note = f"did not run: {reason}"
    audit(db_session, row, actor=actor, event="blocked", decision="denied", reason=note[:2000])
    disarm_canary(db_session, row, now, f"refused at run time: {reason}", ran=False)
    db_session.commit()
    return to_view(db_session, row)
