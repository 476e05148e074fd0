"""Approving or rejecting a request, and what that means for its incident (timeline, card)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bot.app import incidents
from bot.app.cards import target_label
from bot.app.delivery import announce
from bot.app.services import Services
from incidents_db.models import Execution
from remediation.approvals import service as approvals
from remediation.approvals import states as st


def decide_request(
    services: Services, s: Session, *, user: str, verb: str, request_id: str
) -> approvals.RequestView:
    """Approve (running it at quorum) or reject a request as ``user``; refusals raise and are audited."""
    if verb == "approve":
        return approvals.approve(
            db_session=s,
            guard=services.guard,
            request_id=request_id,
            approver=user,
            executor=services.executor,
        )
    return approvals.reject(db_session=s, guard=services.guard, request_id=request_id, approver=user)


def after_request_change(services: Services, s: Session, view: approvals.RequestView, user: str) -> str:
    """Record what a request's change means for its incident (timeline, card) and describe it."""
    label = target_label(view.action, view.target)
    now = services.clock()
    if view.incident_id is not None:
        if view.state in (st.SUCCEEDED, st.FAILED, st.UNKNOWN):
            execution = s.query(Execution).filter_by(request_id=view.id).one_or_none()
            detail = str((execution.outcome or {}).get("detail", "")) if execution else ""
            incidents.append(
                db_session=s,
                incident_id=view.incident_id,
                type_="action",
                at=now,
                action=view.action,
                target=view.target,
                params=dict(view.params),
                actor=",".join(view.approvers) or user,
                outcome=view.state,
                request_id=view.id,
                detail=detail[:500] or None,
            )
        elif view.state in (st.REJECTED, st.PENDING):
            text = (
                f"rejected {label}"
                if view.state == st.REJECTED
                else f"approved {label} ({len(view.approvers)} of {view.required_approvals})"
            )
            incidents.append(
                db_session=s, incident_id=view.incident_id, type_="note", at=now, actor=user, text=text
            )
        announce(db_session=s, incident_id=view.incident_id, now=now)
    if view.state == st.PENDING:
        return f"Approved {label}: {len(view.approvers)} of {view.required_approvals} approvals."
    if view.state == st.APPROVED:
        return f"Approved {label}; no executor is configured, so nothing ran."
    if view.state == st.REJECTED:
        return f"Rejected {label}."
    return f"{label}: {view.state}."
