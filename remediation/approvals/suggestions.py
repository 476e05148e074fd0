"""Suggestions a card shows, and the one request every copy of a card button acts on.

A card button carries only a suggestion's ``token``; the row (`incidents_db.models.Suggestion`) says
what the button does. ``fix_key`` hashes (incident, action, target, params), so every render of the
same fix reuses one row per ``generation``, and ``request_id``, set once by the first click in the
same transaction that proposes the request, is the only request those buttons ever act on. When that
request is final (rejected, expired, executed, failed, ...), the buttons are done: only an explicit new
step (`show` with ``fresh``, i.e. ``/remediate suggest``) opens the next generation, with a new token.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from incidents_db.models import Approval, ApprovalRequest, AuditEntry, Suggestion
from incidents_db.outbox import SlackCard
from remediation.approvals import service as approvals
from remediation.approvals import states as st
from remediation.audit.service import lock_chain
from remediation.errors import UnknownSuggestionError

TOKEN_CHARS = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Fix:
    """What a ranked suggestion proposes, plus how the ranking saw it (stored with the row)."""

    action: str
    target: str | None
    params: Mapping[str, Any]
    rank: int = 0
    score: float = 0.0
    confidence: float = 0.0
    risk: str = "low"
    expected_ttm_s: float | None = None
    reason: str = ""
    policy_version: str | None = None


@dataclass(frozen=True)
class Shown:
    """One suggestion as rendered: the token its buttons carry and the request they act on (if any)."""

    token: str
    incident_id: str
    generation: int
    action: str
    target: str | None
    params: Mapping[str, Any]
    request_id: str | None


@dataclass(frozen=True)
class Decided:
    """Who ended a request and when, for "this suggestion was already decided by ..." replies."""

    state: str
    by: tuple[str, ...]
    at: datetime | None


def fix_key(incident_id: str, action: str, target: str | None, params: Mapping[str, Any]) -> str:
    """Return the sha256 hex of (incident, action, target, canonical JSON params)."""
    canonical = json.dumps(
        [incident_id, action, target, dict(params)], sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _shown(row: Suggestion) -> Shown:
    return Shown(
        str(row.token),
        row.incident_id,
        row.generation,
        row.action,
        row.target,
        dict(row.params),
        row.request_id,
    )


def _current(db_session: Session, key: str) -> Suggestion | None:
    query = (
        sa.select(Suggestion)
        .where(Suggestion.fix_key == key)
        .order_by(Suggestion.generation.desc())
        .limit(1)
        .execution_options(populate_existing=True)
    )
    return db_session.execute(query).scalar_one_or_none()


def _adopt(db_session: Session, incident_id: str, fix: Fix) -> str | None:
    """Return the newest request for this fix that no suggestion owns yet.

    Requests made another way than a card button (before suggestions were stored, by a script, by a
    replica rendering the card a moment earlier) belong to the card showing that fix, so its status
    line tells the truth; a request another generation owns is never taken.
    """
    # NOT EXISTS on the indexed request id, not NOT IN over every owned request (which grows forever)
    owned = sa.exists().where(Suggestion.request_id == ApprovalRequest.id)
    rows = db_session.execute(
        sa.select(ApprovalRequest.id, ApprovalRequest.params)
        .where(
            ApprovalRequest.incident_id == incident_id,
            ApprovalRequest.action == fix.action,
            ApprovalRequest.target.is_(None) if fix.target is None else ApprovalRequest.target == fix.target,
            ~owned,
        )
        .order_by(ApprovalRequest.created_at.desc(), ApprovalRequest.id)
    )
    return next((str(rid) for rid, params in rows if dict(params or {}) == dict(fix.params)), None)


def _insert(
    db_session: Session, incident_id: str, key: str, generation: int, fix: Fix, now: datetime
) -> None:
    """Insert the row for (key, generation) unless a concurrent render already did (flushed)."""
    dialect = db_session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values = {
        "incident_id": incident_id,
        "created_at": now,
        "policy_version": fix.policy_version,
        "rank": fix.rank,
        "action": fix.action,
        "target": fix.target,
        "params": dict(fix.params),
        "score": float(fix.score),
        "confidence": float(fix.confidence),
        "risk": fix.risk,
        "expected_ttm_s": fix.expected_ttm_s,
        "reason": fix.reason,
        "token": uuid.uuid4().hex,
        "fix_key": key,
        "generation": generation,
        "request_id": _adopt(db_session, incident_id, fix) if generation == 0 else None,
    }
    db_session.execute(
        insert(Suggestion).values(**values).on_conflict_do_nothing(index_elements=["fix_key", "generation"])
    )


def show(*, db_session: Session, incident_id: str, fix: Fix, now: datetime, fresh: bool = False) -> Shown:
    """Return the current generation's row for a fix, creating it when missing (flushed, not committed).

    With ``fresh`` (an explicit new suggestion), a fix whose request is final gets the next generation:
    a new token with no request, so the card offers the fix again. Old copies of the card keep the old
    token, which stays bound to its final request. Commit soon: on SQLite the insert holds the write lock.
    """
    key = fix_key(incident_id, fix.action, fix.target, fix.params)
    row = _current(db_session, key)
    if row is None:
        _insert(db_session, incident_id, key, 0, fix, now)
    elif fresh and row.request_id is not None:
        request = db_session.get(ApprovalRequest, row.request_id)
        if request is None or request.state in st.FINAL:
            _insert(db_session, incident_id, key, row.generation + 1, fix, now)
        else:
            return _shown(row)
    elif row.request_id is None and (adopted := _adopt(db_session, incident_id, fix)) is not None:
        db_session.execute(
            sa.update(Suggestion)
            .where(Suggestion.id == row.id, Suggestion.request_id.is_(None))
            .values(request_id=adopted)
            .execution_options(synchronize_session=False)
        )
    else:
        return _shown(row)
    found = _current(db_session, key)
    assert found is not None  # inserted above, or by a concurrent render
    return _shown(found)


def find(*, db_session: Session, token: str) -> Shown | None:
    """Return the suggestion a button token names, or None when the bot never rendered it."""
    if not 1 <= len(token) <= 32 or not set(token) <= TOKEN_CHARS:
        return None
    row = db_session.execute(
        sa.select(Suggestion).where(Suggestion.token == token).execution_options(populate_existing=True)
    ).scalar_one_or_none()
    return _shown(row) if row is not None else None


def request_for(
    *,
    db_session: Session,
    guard: approvals.Guard,
    token: str,
    requester: str,
    reason: str,
    known_targets: Collection[str] | None = None,
) -> approvals.RequestView:
    """Return the one request behind a suggestion, proposing it and linking it atomically on first use.

    One transaction: take the audit chain lock (serialising writers on SQLite and PostgreSQL), read the
    suggestion, and either return its request or propose one and set ``request_id`` with a conditional
    UPDATE (``WHERE request_id IS NULL``) before committing; so however many clicks race, one request
    exists per suggestion, and a final one stays final. Guardrail refusals are audited and raised.
    """
    lock_chain(db_session=db_session)
    row = db_session.execute(
        sa.select(Suggestion).where(Suggestion.token == token).execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if row is None:
        db_session.rollback()
        raise UnknownSuggestionError("this button is not one remediate rendered; the card is refreshed")
    if row.request_id is not None:
        request_id = row.request_id
        db_session.commit()
        return approvals.get(db_session=db_session, request_id=request_id)
    view = approvals.propose(
        db_session=db_session,
        guard=guard,
        action=row.action,
        target=row.target,
        params=dict(row.params),
        requester=requester,
        incident_id=row.incident_id,
        reason=reason,
        known_targets=known_targets,
        commit=False,
    )
    linked = db_session.execute(
        sa.update(Suggestion)
        .where(Suggestion.id == row.id, Suggestion.request_id.is_(None))
        .values(request_id=view.id)
        .execution_options(synchronize_session=False)
    )
    if getattr(linked, "rowcount", 0) != 1:  # cannot happen under the chain lock; never two requests
        db_session.rollback()
        found = find(db_session=db_session, token=token)
        if found is None or found.request_id is None:
            raise UnknownSuggestionError("this suggestion changed while we looked at it; click again")
        return approvals.get(db_session=db_session, request_id=found.request_id)
    db_session.commit()
    return view


def decided(*, db_session: Session, request_id: str) -> Decided:
    """Return who ended a request and when (rejecters, else approvers, else the audit entry's actor)."""
    request = db_session.get(ApprovalRequest, request_id)
    if request is None:
        return Decided("unknown", (), None)
    rows = list(
        db_session.execute(
            sa.select(Approval.approver, Approval.decision, Approval.at)
            .where(Approval.request_id == request_id)
            .order_by(Approval.at, Approval.id)
        )
    )
    wanted = "reject" if request.state == st.REJECTED else "approve"
    chosen = [(who, at) for who, decision, at in rows if decision == wanted]
    if chosen and request.state not in (st.EXPIRED, st.CANCELLED):
        return Decided(request.state, tuple(w for w, _ in chosen), chosen[-1][1])
    entry = db_session.execute(
        sa.select(AuditEntry.actor, AuditEntry.at)
        .where(AuditEntry.request_id == request_id, AuditEntry.event.in_(("expire", "cancel")))
        .order_by(AuditEntry.seq.desc())
        .limit(1)
    ).first()
    if entry is None:
        return Decided(request.state, (), request.updated_at)
    return Decided(request.state, (str(entry.actor),), entry.at)


def card_incident(*, db_session: Session, channel: str, ts: str) -> str | None:
    """Return the incident whose card is the message (channel, ts), if the bot posted one there."""
    return db_session.execute(
        sa.select(SlackCard.incident_id).where(SlackCard.ts == ts, SlackCard.channel == channel).limit(1)
    ).scalar_one_or_none()
