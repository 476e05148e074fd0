"""The request side of the workflow: propose, submit, approve, reject, cancel and expire requests."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from opentelemetry import trace
from sqlalchemy.orm import Session

from incidents_db.models import Approval, ApprovalRequest
from remediation.approvals import states as st
from remediation.approvals._store import audit, check_open, deny_if, load, move, refuse
from remediation.approvals.context import Guard, build_context
from remediation.approvals.execution import execute
from remediation.approvals.views import RequestView, to_view
from remediation.audit.service import lock_chain
from remediation.errors import GuardrailDeniedError, IllegalTransitionError
from remediation.executors.base import Executor
from remediation.guardrails.decide import Decision, decide

_TRACER = trace.get_tracer("remediate")  # a proxy: follows the provider the bot installs


def _new_row(
    guard: Guard,
    decision: Decision,
    action: str,
    target: str | None,
    params: Mapping[str, Any],
    requester: str,
    incident_id: str | None,
    reason: str,
    now: datetime,
) -> ApprovalRequest:
    """Build the ``proposed`` row of a request the guardrails allowed (its params validated)."""
    spec = guard.catalog.actions.get(action)
    assert spec is not None  # decide refused unknown actions before
    return ApprovalRequest(
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
    safe_params = dict(params) if isinstance(params, Mapping) else {}
    deny_if(
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
    now = guard.clock()
    row = _new_row(guard, decision, action, target, params, requester, incident_id, reason, now)
    db_session.add(row)
    db_session.flush()
    audit(db_session, row, actor=requester, event="request", decision="allowed", reason=decision.reason)
    if submit:
        move(db_session, row, st.PENDING, now)
        audit(
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
    return to_view(db_session, row)


def submit(*, db_session: Session, guard: Guard, request_id: str, actor: str) -> RequestView:
    """Send a proposed request to the approvers (only its requester may, and only if still allowed)."""
    row = load(db_session, request_id)
    now = guard.clock()
    check_open(db_session, row, actor=actor, event="submit", expected=frozenset({st.PROPOSED}), now=now)
    if actor != row.requester:
        raise refuse(
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
    deny_if(db_session, row, decision, actor=actor, event="submit")
    move(db_session, row, st.PENDING, now)
    audit(db_session, row, actor=actor, event="submit", decision="allowed", reason=decision.reason)
    db_session.commit()
    return to_view(db_session, row)


def approve(
    *,
    db_session: Session,
    guard: Guard,
    request_id: str,
    approver: str,
    comment: str = "",
    executor: Executor | None = None,
    also: Callable[[Session], None] | None = None,
) -> RequestView:
    """Record one approval; at quorum the request becomes ``approved`` and, with an executor, runs once.

    ``also`` writes what the approval chose (e.g. "canary first") in the approval's own transaction,
    only once the approval is allowed: a refused approval commits its denial and nothing of ``also``.
    """
    with _step("approval.approve", request_id, approver) as span:
        view = _approve(db_session, guard, request_id, approver, comment, also)
        span.set_attribute("remediate.state", view.state)
    if executor is not None and view.state == st.APPROVED:
        return execute(
            db_session=db_session, guard=guard, request_id=request_id, executor=executor, actor=approver
        )
    return view


def _step(name: str, request_id: str, actor: str) -> AbstractContextManager[trace.Span]:
    """Start the span of one approval step (request id, who); its state change is a span event."""
    attributes = {"remediate.request_id": request_id, "remediate.actor": actor}
    return _TRACER.start_as_current_span(name, attributes=attributes)


def _approve(
    db_session: Session,
    guard: Guard,
    request_id: str,
    approver: str,
    comment: str,
    also: Callable[[Session], None] | None = None,
) -> RequestView:
    row = load(db_session, request_id)
    now = guard.clock()
    check_open(db_session, row, actor=approver, event="approve", expected=frozenset({st.PENDING}), now=now)
    context = build_context(db_session=db_session, guard=guard, stage="approve", row=row)
    decision = decide(row.action, row.target, row.params, approver, context)
    deny_if(db_session, row, decision, actor=approver, event="approve")
    if also is not None:
        also(db_session)
    db_session.add(
        Approval(request_id=row.id, approver=approver, decision="approve", at=now, comment=comment)
    )
    audit(db_session, row, actor=approver, event="approve", decision="allowed", reason=decision.reason)
    # One decision answers both questions. An allowed approval means the approver is eligible and had not
    # approved yet, so the quorum count after it is the count before plus one, and the number required
    # depends on the risk alone. Freezes, switches and limits at run time are checked by `execute`.
    given, required = decision.approvals_counted + 1, decision.approvals_required
    if given >= required:
        move(db_session, row, st.APPROVED, now)
        audit(
            db_session,
            row,
            actor="remediate",
            event="approved",
            decision="info",
            reason=f"{given} of {required} approval(s) given",
        )
    db_session.commit()
    return to_view(db_session, row)


def reject(
    *, db_session: Session, guard: Guard, request_id: str, approver: str, comment: str = ""
) -> RequestView:
    """Reject a pending request; one rejection by someone who may approve it ends it."""
    with _step("approval.reject", request_id, approver) as span:
        view = _reject(db_session, guard, request_id, approver, comment)
        span.set_attribute("remediate.state", view.state)
    return view


def _reject(db_session: Session, guard: Guard, request_id: str, approver: str, comment: str) -> RequestView:
    row = load(db_session, request_id)
    now = guard.clock()
    check_open(db_session, row, actor=approver, event="reject", expected=frozenset({st.PENDING}), now=now)
    context = build_context(db_session=db_session, guard=guard, stage="approve", row=row)
    decision = decide(row.action, row.target, row.params, approver, replace(context, approvals=()))
    if not decision.allowed and decision.code not in (
        "freeze",
        "kill_switch",
    ):  # a freeze never stops saying no
        raise refuse(
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
    move(db_session, row, st.REJECTED, now)
    audit(db_session, row, actor=approver, event="reject", decision="allowed", reason=comment or "rejected")
    db_session.commit()
    return to_view(db_session, row)


def cancel(
    *, db_session: Session, guard: Guard, request_id: str, actor: str, reason: str = ""
) -> RequestView:
    """Withdraw a request before it runs (its requester, or anyone who may approve it)."""
    row = load(db_session, request_id)
    now = guard.clock()
    check_open(db_session, row, actor=actor, event="cancel", expected=st.OPEN, now=now)
    context = build_context(db_session=db_session, guard=guard, stage="approve", row=row)
    may_approve = actor in decide(row.action, row.target, row.params, actor, context).approvers
    if actor != row.requester and not may_approve:
        raise refuse(
            db_session,
            row,
            GuardrailDeniedError(f"{actor} is neither the requester nor an approver of request {row.id}"),
            actor=actor,
            event="cancel",
        )
    move(db_session, row, st.CANCELLED, now)
    audit(db_session, row, actor=actor, event="cancel", decision="allowed", reason=reason or "cancelled")
    db_session.commit()
    return to_view(db_session, row)


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
        move(db_session, row, st.EXPIRED, now)
        audit(
            db_session, row, actor="remediate", event="expire", decision="info", reason="time to live passed"
        )
        done.append(row.id)
    db_session.commit()
    return done
