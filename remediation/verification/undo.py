"""Undo of a harmful remediation: the catalog's inverse (``rollback``) of the action, approved once.

When the approver chose "undo automatically if harmful", a ``harmful`` verdict creates the inverse
request already ``approved`` (the original's approvers' choice is its approval, recorded with a comment
saying so; the run-time guardrails still check those approvers may approve the inverse), in the same
transaction as the verdict: one verdict, one undo. It runs like any approved request (claimed once, the
run-time guardrails decide again: freeze, kill switch, rate limits). Without the choice, the card offers
the inverse as its first suggestion (docs/verification.md).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from incidents_db.models import Approval
from remediation.approvals import states as st
from remediation.approvals._store import audit, load, move
from remediation.approvals.context import Guard
from remediation.approvals.requests import propose
from remediation.approvals.views import to_view


def inverse_of(guard: Guard, action: str) -> str | None:
    """Return the catalog's inverse of ``action`` (its ``rollback``), or None."""
    spec = guard.catalog.actions.get(action)
    return None if spec is None else spec.rollback


def inverse_params(guard: Guard, inverse: str, params: dict[str, Any]) -> dict[str, Any]:
    """Return the parameters of the original that the inverse also takes (e.g. ``count``)."""
    spec = guard.catalog.get(inverse)
    return {k: v for k, v in params.items() if k in spec.params}


def create_undo(*, db_session: Session, guard: Guard, request_id: str, why: str) -> str | None:
    """Create the approved inverse of a harmful request (flushed, not committed); return its id or None."""
    row = load(db_session, request_id)
    inverse = inverse_of(guard, row.action)
    if inverse is None:
        return None
    view = propose(
        db_session=db_session,
        guard=guard,
        action=inverse,
        target=row.target,
        params=inverse_params(guard, inverse, dict(row.params)),
        requester=row.requester,
        incident_id=row.incident_id,
        reason=f"undo of {row.action} (request {row.id}): {why}"[:2000],
        commit=False,
    )
    undo = load(db_session, view.id)
    now = guard.clock()
    comment = f"undo automatically if harmful, chosen when request {row.id} was approved"
    for approver in to_view(db_session, row).approvers:  # their approval of the original covers its undo
        db_session.add(
            Approval(request_id=undo.id, approver=approver, decision="approve", at=now, comment=comment)
        )
    move(db_session, undo, st.APPROVED, now)
    audit(
        db_session,
        undo,
        actor="remediate",
        event="auto_undo",
        decision="allowed",
        reason=f"{comment}; {why}"[:2000],
    )
    db_session.flush()
    return undo.id
