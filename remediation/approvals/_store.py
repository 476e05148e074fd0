"""Internal steps every workflow function shares: load under the chain lock, move, audit, refuse."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from opentelemetry import trace
from sqlalchemy.orm import Session

from incidents_db import canaries, incidents
from incidents_db.models import ApprovalRequest
from remediation.approvals import states as st
from remediation.audit.service import append, lock_chain
from remediation.errors import (
    GuardrailDeniedError,
    IllegalTransitionError,
    RequestExpiredError,
    RequestNotFoundError,
)
from remediation.guardrails.decide import Decision


def audit(
    db_session: Session,
    row: ApprovalRequest | None,
    *,
    actor: str,
    event: str,
    decision: str,
    reason: str,
    **kw: Any,
) -> None:
    """Append an audit entry; with a request row, its action, target, params and ids fill the blanks."""
    if row is not None:
        kw.setdefault("action", row.action)
        kw.setdefault("target", row.target)
        kw.setdefault("params", row.params)
        kw.setdefault("incident_id", row.incident_id)
        kw.setdefault("request_id", row.id)
        kw.setdefault("policy_version", row.policy_version)
    append(db_session=db_session, actor=actor, event=event, decision=decision, reason=reason, **kw)


def refuse(
    db_session: Session, row: ApprovalRequest | None, error: Exception, *, actor: str, event: str, **kw: Any
) -> Exception:
    """Record a denial, commit it, and return the error for the caller to raise."""
    audit(db_session, row, actor=actor, event=event, decision="denied", reason=str(error), **kw)
    db_session.commit()
    return error


def load(db_session: Session, request_id: str) -> ApprovalRequest:
    """Take the chain lock and read the request fresh (row-locked on PostgreSQL); raise when unknown."""
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


def move(db_session: Session, row: ApprovalRequest, dst: str, now: datetime) -> None:
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
    trace.get_current_span().add_event(
        "approval.state", {"remediate.request_id": row.id, "remediate.from": row.state, "remediate.to": dst}
    )
    row.state, row.version = dst, row.version + 1


def check_open(
    db_session: Session,
    row: ApprovalRequest,
    *,
    actor: str,
    event: str,
    expected: frozenset[str],
    now: datetime,
) -> None:
    """Refuse (audited) a step on a request past its time to live (expiring it) or not in ``expected``."""
    if row.state in st.OPEN and row.expires_at is not None and now >= row.expires_at:
        move(db_session, row, st.EXPIRED, now)
        audit(
            db_session,
            row,
            actor="remediate",
            event="expire",
            decision="info",
            reason=f"request expired at {row.expires_at.isoformat()}",
        )
        raise refuse(
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
        raise refuse(
            db_session,
            row,
            IllegalTransitionError(f"request {row.id} is {row.state}, not {wanted}; nothing was done"),
            actor=actor,
            event=event,
        )


def deny_if(
    db_session: Session, row: ApprovalRequest | None, decision: Decision, *, actor: str, event: str, **kw: Any
) -> None:
    """Refuse (audited) when the guardrail decision does not allow the step."""
    if not decision.allowed:
        raise refuse(db_session, row, GuardrailDeniedError(decision.reason), actor=actor, event=event, **kw)


def _no_verdict(row: ApprovalRequest, why: str, ran: bool) -> tuple[str, str, str]:
    """Return (canary state, what its run did, what a person does next) for a canary that gets no verdict."""
    target = row.target or "the target"
    again = f"approve {row.action} again (with or without Canary first)"
    if row.state == st.UNKNOWN:
        todo = f"the rest is not run and nothing is undone; check {target} by hand, then {again} or undo the canary"
        return "unknown", "run ended unknown", todo
    if not ran:  # refused at run time, or an executor that cannot run a canary: nothing changed
        todo = f"nothing changed and the rest is not run; {again} once that is fixed, or choose another fix"
        return "run_failed", f"run never started ({why[:300]})", todo
    todo = (
        f"the rest is not run and nothing is undone automatically; check {target} by hand (the run may "
        f"have changed some of its canary replicas), then undo the canary if it did, {again} or choose another fix"
    )
    return "run_failed", f"run failed ({why[:300]})", todo


def disarm_canary(
    db_session: Session, row: ApprovalRequest, now: datetime, why: str = "", ran: bool = True
) -> None:
    """Disarm the canary of a request whose run ended ``unknown`` or ``failed`` (flushed): a person decides.

    Nothing is judged after a run that did not succeed, so an armed canary would wait for a verdict that
    never comes; neither the rest nor an undo follows (an undo follows a verdict only: docs/verification.md).
    Audited (``canary``) and noted on the incident's timeline, so the card says why and what to do.
    """
    state, what, todo = _no_verdict(row, why, ran)
    if not canaries.disarm(db_session=db_session, request_id=row.id, now=now, state=state):
        return
    where = f" on {row.target}" if row.target else ""
    audit(db_session, row, actor="remediate", event="canary", decision="info",
          reason=f"{state}: the canary's {what}; {todo}"[:2000])  # fmt: skip
    if row.incident_id is not None:
        incidents.append(
            db_session=db_session, incident_id=row.incident_id, type_="note", at=now, actor="remediate",
            text=f"canary of {row.action}{where}: its {what}; {todo}"[:2000], canary=state, canary_run=what,
            canary_note=todo, request_id=row.id, action=row.action, target=row.target,
        )  # fmt: skip
