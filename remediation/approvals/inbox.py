"""What waits for a person: the open requests they may approve right now (for Slack's App Home)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from incidents_db.models import ApprovalRequest
from remediation.approvals import states as st
from remediation.approvals.context import Guard, build_context
from remediation.approvals.views import RequestView, to_view
from remediation.guardrails.decide import decide


def approvable_by(*, db_session: Session, guard: Guard, user: str, limit: int = 50) -> list[RequestView]:
    """Return the pending requests ``user`` may approve now: the same decision `approve` makes, no audit."""
    found = []
    for row in db_session.execute(
        sa.select(ApprovalRequest)
        .where(ApprovalRequest.state == st.PENDING)
        .order_by(ApprovalRequest.created_at, ApprovalRequest.id)
        .limit(limit)
    ).scalars():
        context = build_context(db_session=db_session, guard=guard, stage="approve", row=row)
        if decide(row.action, row.target, row.params, user, context).allowed:
            found.append(to_view(db_session, row))
    return found
