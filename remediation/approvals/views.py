"""What callers see of an approval request: a read-only view, and reading one by id."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from incidents_db.models import Approval, ApprovalRequest, AuditEntry
from remediation.approvals import states as st
from remediation.errors import RequestNotFoundError


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


def to_view(db_session: Session, row: ApprovalRequest) -> RequestView:
    """Return the view of a request row with its approvers and, when it failed unrun, why."""
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


def get(*, db_session: Session, request_id: str) -> RequestView:
    """Return one request or raise RequestNotFoundError."""
    row = db_session.get(ApprovalRequest, request_id)
    if row is None:
        raise RequestNotFoundError(f"no approval request {request_id!r}")
    return to_view(db_session, row)
