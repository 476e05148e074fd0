"""Everything a postmortem says, read from the store in one place: the record, requests, votes, suggestions.

Reads only (keyword-only, taking the session); the report is built from these plain values, so the
same store gives the same report. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from incidents_db import incidents
from incidents_db.models import Approval, ApprovalRequest, AuditEntry, Suggestion


@dataclass(frozen=True)
class Shown:
    """A suggestion the bot rendered on the card: its rank when first shown and how it was ranked."""

    at: datetime
    rank: int
    action: str
    target: str | None
    params: dict[str, Any]
    confidence: float
    risk: str
    policy: str | None
    reason: str
    request_id: str | None


@dataclass(frozen=True)
class Vote:
    """One person's approve or reject on a request."""

    at: datetime
    who: str
    decision: str
    comment: str


@dataclass(frozen=True)
class Request:
    """An approval request with its votes and the suggestion it came from (if any)."""

    id: str
    at: datetime
    action: str
    target: str | None
    params: dict[str, Any]
    risk: str
    requester: str
    state: str
    policy: str | None
    updated_at: datetime
    votes: tuple[Vote, ...]


@dataclass(frozen=True)
class Denial:
    """A guardrail refusal from the audit log: which step, who, the rule's words."""

    at: datetime
    actor: str
    step: str
    reason: str
    action: str | None
    target: str | None
    request_id: str | None


@dataclass(frozen=True)
class Facts:
    """The incident's record and what the bot and people did on it."""

    record: dict[str, Any]
    shown: tuple[Shown, ...]
    requests: tuple[Request, ...]
    denials: tuple[Denial, ...]


def parse_time(raw: Any) -> datetime:
    """Return an aware UTC datetime from a stored value (datetime or RFC 3339 text)."""
    if isinstance(raw, datetime):
        return raw.astimezone(UTC) if raw.tzinfo else raw.replace(tzinfo=UTC)
    text = str(raw).replace("Z", "+00:00")
    value = datetime.fromisoformat(text)
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _shown(db_session: Session, incident_id: str) -> tuple[Shown, ...]:
    rows = db_session.execute(
        sa.select(Suggestion)
        .where(Suggestion.incident_id == incident_id)
        .order_by(Suggestion.created_at, Suggestion.id)
    ).scalars()
    return tuple(
        Shown(
            parse_time(r.created_at),
            r.rank,
            r.action,
            r.target,
            dict(r.params or {}),
            float(r.confidence),
            r.risk,
            r.policy_version,
            r.reason or "",
            r.request_id,
        )
        for r in rows
    )


def _requests(db_session: Session, incident_id: str) -> tuple[Request, ...]:
    rows = list(
        db_session.execute(
            sa.select(ApprovalRequest)
            .where(ApprovalRequest.incident_id == incident_id)
            .order_by(ApprovalRequest.created_at, ApprovalRequest.id)
        ).scalars()
    )
    votes: dict[str, list[Vote]] = {r.id: [] for r in rows}
    for v in db_session.execute(
        sa.select(Approval).where(Approval.request_id.in_(list(votes))).order_by(Approval.at, Approval.id)
    ).scalars():
        votes[v.request_id].append(Vote(parse_time(v.at), v.approver, v.decision, v.comment or ""))
    return tuple(
        Request(
            r.id,
            parse_time(r.created_at),
            r.action,
            r.target,
            dict(r.params or {}),
            r.risk,
            r.requester,
            r.state,
            r.policy_version,
            parse_time(r.updated_at),
            tuple(votes[r.id]),
        )
        for r in rows
    )


def _denials(db_session: Session, incident_id: str) -> tuple[Denial, ...]:
    rows = db_session.execute(
        sa.select(AuditEntry)
        .where(AuditEntry.incident_id == incident_id, AuditEntry.decision == "denied")
        .order_by(AuditEntry.seq)
    ).scalars()
    return tuple(
        Denial(parse_time(e.at), e.actor, e.event, e.reason, e.action, e.target, e.request_id) for e in rows
    )


def gather_facts(*, db_session: Session, incident_id: str) -> Facts:
    """Return the incident's record and its suggestions, requests and guardrail denials (raises if unknown)."""
    record = incidents.record(db_session=db_session, incident_id=incident_id)
    real = str(record["id"])
    return Facts(record, _shown(db_session, real), _requests(db_session, real), _denials(db_session, real))
