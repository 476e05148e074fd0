"""Service functions of the approval workflow; the only code that changes a request's state.

Every function runs one or two short transactions of its own and commits them: a denial is written to
the audit log and committed even though the step is refused. Each transaction first takes the audit
chain lock (`lock_chain`), which serialises state changes across threads and processes on SQLite and
PostgreSQL alike; state moves are additionally conditional (``UPDATE ... WHERE state = :expected``) and
`executions.request_id` is unique, so one approved request yields one execution however many callers race.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from incidents_db.models import Approval, ApprovalRequest, AuditEntry, Execution, GuardrailSwitch
from playbooks.catalog import Catalog
from remediation.approvals import states as st
from remediation.approvals.lease import Heartbeat, Lease, replica_id
from remediation.audit.service import append, lock_chain
from remediation.errors import (
    GuardrailDeniedError,
    IllegalTransitionError,
    RequestExpiredError,
    RequestNotFoundError,
)
from remediation.executors.base import ExecRequest, Executor, Outcome
from remediation.guardrails.decide import Context, Decision, Run, Stage, Switches, decide
from remediation.guardrails.models import RbacConfig


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Guard:
    """What the workflow checks against: config, catalog, clock, and what is known of the services."""

    config: RbacConfig
    catalog: Catalog
    clock: Callable[[], datetime] = _utcnow
    service_kinds: Mapping[str, str] = field(default_factory=dict)
    replicas: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestView:
    """A read-only snapshot of an approval request and its approvals."""

    id: str
    state: str
    action: str
    target: str | None
    params: Mapping[str, Any]
    risk: str
    requester: str
    required_approvals: int
    approvers: tuple[str, ...]
    expires_at: datetime | None
    incident_id: str | None
    version: int
    late: bool = False  # the outcome arrived after the request had been marked unknown
    note: str = ""  # why it ended without running (a guardrail at run time), when it did


def _view(db_session: Session, row: ApprovalRequest) -> RequestView:
    approvers = tuple(
        db_session.execute(
            sa.select(Approval.approver)
            .where(Approval.request_id == row.id, Approval.decision == "approve")
            .order_by(Approval.id)
        ).scalars()
    )
    note = ""
    if row.state == st.FAILED:  # failed without running: say why (the run-time refusal, audited)
        note = (
            db_session.execute(
                sa.select(AuditEntry.reason)
                .where(AuditEntry.request_id == row.id, AuditEntry.event == "blocked")
                .order_by(AuditEntry.seq.desc())
                .limit(1)
            ).scalar_one_or_none()
            or ""
        )
    return RequestView(
        row.id, row.state, row.action, row.target, dict(row.params), row.risk, row.requester,
        row.required_approvals, approvers, row.expires_at, row.incident_id, row.version, note=note,
    )  # fmt: skip


def read_switches(*, db_session: Session) -> Switches:
    """Return the freezes and kill switches engaged at run time."""
    rows = db_session.execute(sa.select(GuardrailSwitch).where(GuardrailSwitch.engaged.is_(True))).scalars()
    frozen: set[str] = set()
    killed: set[str] = set()
    for row in rows:
        (frozen if row.kind == "freeze" else killed).add(row.scope)
    return Switches(frozen=frozenset(frozen), killed=frozenset(killed))


def build_context(
    *, db_session: Session, guard: Guard, stage: Stage, row: ApprovalRequest | None = None
) -> Context:
    """Assemble the guardrail context from the store: switches, runs of the last day, running executions."""
    now = guard.clock()
    joined = sa.select(
        ApprovalRequest.action, ApprovalRequest.target, Execution.started_at, Execution.state
    ).join(Execution, Execution.request_id == ApprovalRequest.id)
    window = max([86400, *[r.per_s for r in guard.config.rate_limits]])
    recent, running = [], []
    for action, target, started, _state in db_session.execute(
        joined.where(Execution.dry_run.is_(False), Execution.started_at > now - timedelta(seconds=window))
    ):
        recent.append(Run(action, target, started))
    for action, target, started, _state in db_session.execute(joined.where(Execution.state == "running")):
        running.append(Run(action, target, started))
    approvals = _view(db_session, row).approvers if row is not None else ()
    return Context(
        config=guard.config,
        catalog=guard.catalog,
        now=now,
        stage=stage,
        requester=row.requester if row is not None else None,
        approvals=approvals,
        service_kinds=guard.service_kinds,
        replicas=guard.replicas,
        switches=read_switches(db_session=db_session),
        recent_runs=tuple(recent),
        running=tuple(running),
    )


def _audit(
    db_session: Session,
    row: ApprovalRequest | None,
    *,
    actor: str,
    event: str,
    decision: str,
    reason: str,
    **kw: Any,
) -> None:
    if row is not None:
        kw.setdefault("action", row.action)
        kw.setdefault("target", row.target)
        kw.setdefault("params", row.params)
        kw.setdefault("incident_id", row.incident_id)
        kw.setdefault("request_id", row.id)
        kw.setdefault("policy_version", row.policy_version)
    append(db_session=db_session, actor=actor, event=event, decision=decision, reason=reason, **kw)


def _refuse(
    db_session: Session, row: ApprovalRequest | None, error: Exception, *, actor: str, event: str, **kw: Any
) -> Exception:
    """Record a denial, commit it, and return the error for the caller to raise."""
    _audit(db_session, row, actor=actor, event=event, decision="denied", reason=str(error), **kw)
    db_session.commit()
    return error


def _load(db_session: Session, request_id: str) -> ApprovalRequest:
    lock_chain(db_session=db_session)
    query = (
        sa.select(ApprovalRequest)
        .where(ApprovalRequest.id == request_id)
        .execution_options(populate_existing=True)
    )
    if db_session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    row = db_session.execute(query).scalar_one_or_none()
    if row is None:
        db_session.rollback()
        raise RequestNotFoundError(
            f"no approval request {request_id!r}; list them with `remediate audit show`"
        )
    return row


def _move(db_session: Session, row: ApprovalRequest, dst: str, now: datetime) -> None:
    """Move the request to ``dst`` only if it is still in the state we read (conditional UPDATE)."""
    if not st.can_move(row.state, dst):
        raise IllegalTransitionError(f"request {row.id} is {row.state}; it cannot become {dst}")
    result = db_session.execute(
        sa.update(ApprovalRequest)
        .where(
            ApprovalRequest.id == row.id,
            ApprovalRequest.state == row.state,
            ApprovalRequest.version == row.version,
        )
        .values(state=dst, version=row.version + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise IllegalTransitionError(f"request {row.id} changed while we looked at it; read it again")
    row.state, row.version = dst, row.version + 1


def _check_open(
    db_session: Session,
    row: ApprovalRequest,
    *,
    actor: str,
    event: str,
    expected: frozenset[str],
    now: datetime,
) -> None:
    if row.state in st.OPEN and row.expires_at is not None and now >= row.expires_at:
        _move(db_session, row, st.EXPIRED, now)
        _audit(
            db_session,
            row,
            actor="remediate",
            event="expire",
            decision="info",
            reason=f"request expired at {row.expires_at.isoformat()}",
        )
        raise _refuse(
            db_session,
            row,
            RequestExpiredError(
                f"request {row.id} expired at {row.expires_at:%Y-%m-%d %H:%M} UTC; propose the action again"
            ),
            actor=actor,
            event=event,
        )
    if row.state not in expected:
        wanted = " or ".join(sorted(expected))
        raise _refuse(
            db_session,
            row,
            IllegalTransitionError(f"request {row.id} is {row.state}, not {wanted}; nothing was done"),
            actor=actor,
            event=event,
        )


def _deny_if(
    db_session: Session, row: ApprovalRequest | None, decision: Decision, *, actor: str, event: str, **kw: Any
) -> None:
    if not decision.allowed:
        raise _refuse(db_session, row, GuardrailDeniedError(decision.reason), actor=actor, event=event, **kw)


def propose(
    *,
    db_session: Session,
    guard: Guard,
    action: str,
    target: str | None,
    params: Mapping[str, Any],
    requester: str,
    incident_id: str | None = None,
    reason: str = "",
    submit: bool = True,
    known_targets: Collection[str] | None = None,
    commit: bool = True,
) -> RequestView:
    """Create a request (``proposed``, then ``pending`` when ``submit``) if the requester may ask for it.

    With ``known_targets`` (the incident's topology services), any other target is refused and audited.
    With ``commit=False`` the request is flushed in the caller's transaction (which holds the chain lock)
    so the caller can link it to something atomically; a refusal is still audited and committed.
    """
    lock_chain(db_session=db_session)
    decision = decide(
        action, target, params, requester, build_context(db_session=db_session, guard=guard, stage="request")
    )
    if known_targets is not None and target is not None and target not in known_targets:
        decision = replace(
            decision,
            allowed=False,
            code="unknown_target",
            reason=f"{target!r} is not a service of this incident's topology; nothing is proposed",
        )
    spec = guard.catalog.actions.get(action)
    safe_params = dict(params) if isinstance(params, Mapping) else {}
    _deny_if(
        db_session,
        None,
        decision,
        actor=requester,
        event="request",
        action=action,
        target=target,
        params=safe_params,
        incident_id=incident_id,
        policy_version=decision.policy_version,
    )
    assert spec is not None  # decide refused unknown actions above
    now = guard.clock()
    row = ApprovalRequest(
        id=uuid.uuid4().hex,
        incident_id=incident_id,
        action=action,
        target=target,
        params=spec.validate_params(dict(params)),
        risk=spec.risk.value,
        requester=requester,
        state=st.PROPOSED,
        required_approvals=decision.approvals_required,
        created_at=now,
        updated_at=now,
        expires_at=now + timedelta(seconds=guard.config.approval_ttl_s),
        reason=reason,
        policy_version=decision.policy_version,
        version=1,
    )
    db_session.add(row)
    db_session.flush()
    _audit(db_session, row, actor=requester, event="request", decision="allowed", reason=decision.reason)
    if submit:
        _move(db_session, row, st.PENDING, now)
        _audit(
            db_session,
            row,
            actor=requester,
            event="submit",
            decision="info",
            reason=f"waiting for {decision.approvals_required} approval(s)",
        )
    if commit:
        db_session.commit()
    else:
        db_session.flush()
    return _view(db_session, row)


def submit(*, db_session: Session, guard: Guard, request_id: str, actor: str) -> RequestView:
    """Send a proposed request to the approvers (only its requester may, and only if still allowed)."""
    row = _load(db_session, request_id)
    now = guard.clock()
    _check_open(db_session, row, actor=actor, event="submit", expected=frozenset({st.PROPOSED}), now=now)
    if actor != row.requester:
        raise _refuse(
            db_session,
            row,
            IllegalTransitionError(f"only the requester {row.requester} may submit request {row.id}"),
            actor=actor,
            event="submit",
        )
    decision = decide(
        row.action,
        row.target,
        row.params,
        actor,
        build_context(db_session=db_session, guard=guard, stage="request"),
    )
    _deny_if(db_session, row, decision, actor=actor, event="submit")
    _move(db_session, row, st.PENDING, now)
    _audit(db_session, row, actor=actor, event="submit", decision="allowed", reason=decision.reason)
    db_session.commit()
    return _view(db_session, row)


def approve(
    *,
    db_session: Session,
    guard: Guard,
    request_id: str,
    approver: str,
    comment: str = "",
    executor: Executor | None = None,
) -> RequestView:
    """Record one approval; at quorum the request becomes ``approved`` and, with an executor, runs once."""
    row = _load(db_session, request_id)
    now = guard.clock()
    _check_open(db_session, row, actor=approver, event="approve", expected=frozenset({st.PENDING}), now=now)
    context = build_context(db_session=db_session, guard=guard, stage="approve", row=row)
    decision = decide(row.action, row.target, row.params, approver, context)
    _deny_if(db_session, row, decision, actor=approver, event="approve")
    db_session.add(
        Approval(request_id=row.id, approver=approver, decision="approve", at=now, comment=comment)
    )
    _audit(db_session, row, actor=approver, event="approve", decision="allowed", reason=decision.reason)
    after = decide(
        row.action,
        row.target,
        row.params,
        None,
        replace(context, stage="execute", approvals=(*context.approvals, approver)),
    )
    if after.approvals_counted >= after.approvals_required:
        _move(db_session, row, st.APPROVED, now)
        _audit(
            db_session,
            row,
            actor="remediate",
            event="approved",
            decision="info",
            reason=f"{after.approvals_counted} of {after.approvals_required} approval(s) given",
        )
    db_session.commit()
    view = _view(db_session, row)
    if executor is not None and view.state == st.APPROVED:
        return execute(
            db_session=db_session, guard=guard, request_id=request_id, executor=executor, actor=approver
        )
    return view


def reject(
    *, db_session: Session, guard: Guard, request_id: str, approver: str, comment: str = ""
) -> RequestView:
    """Reject a pending request; one rejection by someone who may approve it ends it."""
    row = _load(db_session, request_id)
    now = guard.clock()
    _check_open(db_session, row, actor=approver, event="reject", expected=frozenset({st.PENDING}), now=now)
    context = build_context(db_session=db_session, guard=guard, stage="approve", row=row)
    decision = decide(row.action, row.target, row.params, approver, replace(context, approvals=()))
    if not decision.allowed and decision.code not in (
        "freeze",
        "kill_switch",
    ):  # a freeze never stops saying no
        raise _refuse(
            db_session,
            row,
            GuardrailDeniedError(decision.reason.replace("approve", "reject")),
            actor=approver,
            event="reject",
        )
    earlier = db_session.execute(
        sa.select(Approval).where(Approval.request_id == row.id, Approval.approver == approver)
    ).scalar_one_or_none()
    if earlier is not None:  # a person may change their mind before anything ran
        earlier.decision, earlier.at, earlier.comment = "reject", now, comment
    else:
        db_session.add(
            Approval(request_id=row.id, approver=approver, decision="reject", at=now, comment=comment)
        )
    _move(db_session, row, st.REJECTED, now)
    _audit(db_session, row, actor=approver, event="reject", decision="allowed", reason=comment or "rejected")
    db_session.commit()
    return _view(db_session, row)


def cancel(
    *, db_session: Session, guard: Guard, request_id: str, actor: str, reason: str = ""
) -> RequestView:
    """Withdraw a request before it runs (its requester, or anyone who may approve it)."""
    row = _load(db_session, request_id)
    now = guard.clock()
    _check_open(db_session, row, actor=actor, event="cancel", expected=st.OPEN, now=now)
    context = build_context(db_session=db_session, guard=guard, stage="approve", row=row)
    may_approve = actor in decide(row.action, row.target, row.params, actor, context).approvers
    if actor != row.requester and not may_approve:
        raise _refuse(
            db_session,
            row,
            GuardrailDeniedError(f"{actor} is neither the requester nor an approver of request {row.id}"),
            actor=actor,
            event="cancel",
        )
    _move(db_session, row, st.CANCELLED, now)
    _audit(db_session, row, actor=actor, event="cancel", decision="allowed", reason=reason or "cancelled")
    db_session.commit()
    return _view(db_session, row)


def expire_due(*, db_session: Session, guard: Guard) -> list[str]:
    """Move every open request past its time to live to ``expired``; return their ids."""
    lock_chain(db_session=db_session)
    now = guard.clock()
    rows = db_session.execute(
        sa.select(ApprovalRequest).where(
            ApprovalRequest.state.in_(sorted(st.OPEN)), ApprovalRequest.expires_at <= now
        )
    ).scalars()
    done = []
    for row in list(rows):
        _move(db_session, row, st.EXPIRED, now)
        _audit(
            db_session, row, actor="remediate", event="expire", decision="info", reason="time to live passed"
        )
        done.append(row.id)
    db_session.commit()
    return done


def _exec_request(guard: Guard, row: ApprovalRequest) -> ExecRequest:
    return ExecRequest(row.id, guard.catalog.get(row.action), row.target, dict(row.params))


def preview(*, db_session: Session, guard: Guard, request_id: str, executor: Executor, actor: str) -> Outcome:
    """Dry-run a request (any state): show exactly what would run, change nothing, record that it was shown."""
    row = _load(db_session, request_id)
    outcome = executor.execute(_exec_request(guard, row), dry_run=True)
    _audit(
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
    row = _load(db_session, request_id)
    now = guard.clock()
    _check_open(db_session, row, actor=actor, event="execute", expected=frozenset({st.APPROVED}), now=now)
    decision = decide(
        row.action,
        row.target,
        row.params,
        None,
        build_context(db_session=db_session, guard=guard, stage="execute", row=row),
    )
    _deny_if(db_session, row, decision, actor=actor, event="execute")
    _move(db_session, row, st.EXECUTING, now)
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
    _audit(
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

    with Heartbeat(renew, lease.every_s, name=request_id[:12]):
        try:
            outcome = executor.execute(_exec_request(guard, row), dry_run=False)
        except Exception as exc:  # we cannot know how far it got
            outcome = Outcome("unknown", f"the {executor.kind} executor raised {type(exc).__name__}: {exc}")
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
    row = _load(db_session, request_id)
    now = guard.clock()
    late = row.state == st.UNKNOWN
    if not late and row.state != st.EXECUTING:
        raise _refuse(
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
        _move(db_session, row, final, now)
    if late:
        _audit(
            db_session,
            row,
            actor="remediate",
            event="late_outcome",
            decision="info",
            reason=f"{final} (arrived late, after the request was marked unknown): {outcome.detail}"[:2000],
        )
    else:
        _audit(
            db_session,
            row,
            actor="remediate",
            event="outcome",
            decision="info",
            reason=f"{final}: {outcome.detail}"[:2000],
        )
    db_session.commit()
    return replace(_view(db_session, row), late=late)


def fail_blocked(
    *, db_session: Session, guard: Guard, request_id: str, reason: str, actor: str = "remediate"
) -> RequestView:
    """Close an approved request a guardrail refused at run time as ``failed`` (it never ran); audited.

    The bot does not keep such a request waiting: an action should run close to when it was approved,
    not hours later when a freeze lifts or a rate limit window slides. Propose it again to retry.
    """
    row = _load(db_session, request_id)
    now = guard.clock()
    _check_open(db_session, row, actor=actor, event="execute", expected=frozenset({st.APPROVED}), now=now)
    _move(db_session, row, st.FAILED, now)
    note = f"did not run: {reason}"
    _audit(db_session, row, actor=actor, event="blocked", decision="denied", reason=note[:2000])
    db_session.commit()
    return _view(db_session, row)


def recover_interrupted(*, db_session: Session, guard: Guard) -> list[str]:
    """Mark ``executing`` requests whose lease expired (the runner died) as ``unknown``; return their ids.

    An execution whose lease is still live belongs to a running replica and is left alone; one without
    an execution row or a lease (older versions) counts as expired. Nothing is ever re-run.
    """
    lock_chain(db_session=db_session)
    now = guard.clock()
    live = sa.exists().where(
        Execution.request_id == ApprovalRequest.id,
        Execution.lease_expires_at.is_not(None),
        Execution.lease_expires_at > now,
    )
    rows = list(
        db_session.execute(
            sa.select(ApprovalRequest).where(ApprovalRequest.state == st.EXECUTING, ~live)
        ).scalars()
    )
    done = []
    for row in rows:
        taken = db_session.execute(
            sa.update(Execution)
            .where(
                Execution.request_id == row.id,
                sa.or_(Execution.lease_expires_at.is_(None), Execution.lease_expires_at <= now),
            )
            .values(state="unknown", finished_at=now)
            .execution_options(synchronize_session=False)
        )
        has_execution = db_session.execute(
            sa.select(sa.func.count()).select_from(Execution).where(Execution.request_id == row.id)
        ).scalar_one()
        if getattr(taken, "rowcount", 0) == 0 and has_execution:
            continue  # its owner renewed the lease since we looked: still alive
        _move(db_session, row, st.UNKNOWN, now)
        done.append(row.id)
        _audit(
            db_session,
            row,
            actor="remediate",
            event="outcome",
            decision="info",
            reason="unknown: the run's lease expired while executing (its runner stopped); check the target by hand",
        )
    db_session.commit()
    return done


def get(*, db_session: Session, request_id: str) -> RequestView:
    """Return one request or raise RequestNotFoundError."""
    row = db_session.get(ApprovalRequest, request_id)
    if row is None:
        raise RequestNotFoundError(f"no approval request {request_id!r}")
    return _view(db_session, row)
