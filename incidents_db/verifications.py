"""Verification of executed actions (migration 0011): when to judge each one, and the verdict it got.

One row per executed request. ``verify_at`` is when the bot judges it (the action's settle time after it
completed); ``lease_owner`` / ``lease_expires_at`` claim a due row for one replica at a time, and the
verdict is written only by the holder of a live claim while the row is still ``pending``, in the same
transaction as its timeline entry and audit record: each action is judged exactly once, across restarts
and replicas. ``auto_undo`` is the approver's "undo automatically if harmful"; ``undo_request_id`` the
inverse request a harmful verdict created (it runs once: an approved request is claimed once).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from incidents_db.models import ApprovalRequest, Base, Execution, IncidentEvent

VERDICTS: tuple[str, ...] = ("effective", "partial", "ineffective", "harmful")


class Verification(Base):
    """When an executed request is judged, who holds the claim, and what was found."""

    __tablename__ = "verifications"

    request_id: Mapped[str] = mapped_column(
        sa.ForeignKey("approval_requests.id", ondelete="CASCADE"), primary_key=True
    )
    incident_id: Mapped[str | None] = mapped_column(sa.String(200), nullable=True, index=True)
    action: Mapped[str] = mapped_column(sa.String(200))
    target: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    state: Mapped[str] = mapped_column(sa.String(16), default="pending")
    auto_undo: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    executed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    verify_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)
    rechecks: Mapped[int] = mapped_column(sa.Integer, default=0)
    before: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    verdict: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
    summary: Mapped[str] = mapped_column(sa.Text, default="")
    evidence: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    decided_at: Mapped[datetime | None] = mapped_column(nullable=True)
    undo_request_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(sa.String(100), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)


def get(*, db_session: Session, request_id: str) -> Verification | None:
    """Return the verification of a request, or None."""
    return db_session.get(Verification, request_id)


def arm(
    *, db_session: Session, request_id: str, action: str, target: str | None, incident_id: str | None
) -> None:
    """Record "undo automatically if harmful" for a request before it runs (flushed, not committed)."""
    row = get(db_session=db_session, request_id=request_id)
    if row is None:
        row = Verification(request_id=request_id, action=action, target=target, incident_id=incident_id)
        db_session.add(row)
    row.auto_undo = True
    db_session.flush()


def schedule(
    *,
    db_session: Session,
    request_id: str,
    action: str,
    target: str | None,
    incident_id: str | None,
    executed_at: datetime,
    verify_at: datetime,
    before: dict[str, Any],
) -> bool:
    """Set when an executed request is judged (flushed, not committed); False when it already was."""
    row = get(db_session=db_session, request_id=request_id)
    if row is None:
        row = Verification(request_id=request_id, action=action, target=target, incident_id=incident_id)
        db_session.add(row)
    elif row.verify_at is not None:
        return False
    row.state, row.rechecks = "pending", 0
    row.executed_at, row.verify_at, row.before = executed_at, verify_at, dict(before)
    db_session.flush()
    return True


def claim_due(
    *, db_session: Session, now: datetime, owner: str, lease_s: float, limit: int = 20
) -> list[str]:
    """Claim pending verifications due at ``now`` whose claim is free or expired; return their ids (committed)."""
    free = sa.or_(Verification.lease_expires_at.is_(None), Verification.lease_expires_at <= now)
    due = db_session.execute(
        sa.select(Verification.request_id)
        .where(Verification.state == "pending", Verification.verify_at <= now, free)
        .order_by(Verification.verify_at)
        .limit(limit)
    ).scalars()
    claimed = []
    for request_id in list(due):
        result = db_session.execute(
            sa.update(Verification)
            .where(Verification.request_id == request_id, Verification.state == "pending", free)
            .values(lease_owner=owner[:100], lease_expires_at=now + timedelta(seconds=lease_s))
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) == 1:
            claimed.append(request_id)
    db_session.commit()
    return claimed


def _held(request_id: str, owner: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        Verification.request_id == request_id,
        Verification.state == "pending",
        Verification.lease_owner == owner[:100],
    )


def decide(
    *,
    db_session: Session,
    request_id: str,
    owner: str,
    verdict: str,
    summary: str,
    evidence: Iterable[str],
    now: datetime,
) -> bool:
    """Write the verdict if ``owner`` still holds the claim (not committed); False when someone else did."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
    result = db_session.execute(
        sa.update(Verification)
        .where(_held(request_id, owner))
        .values(
            state="done",
            verdict=verdict,
            summary=summary[:2000],
            evidence=list(evidence),
            decided_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


def postpone(*, db_session: Session, request_id: str, owner: str, verify_at: datetime) -> bool:
    """Look again at ``verify_at`` (one more settle period) and free the claim (committed)."""
    result = db_session.execute(
        sa.update(Verification)
        .where(_held(request_id, owner))
        .values(
            verify_at=verify_at, rechecks=Verification.rechecks + 1, lease_owner=None, lease_expires_at=None
        )
        .execution_options(synchronize_session=False)
    )
    db_session.commit()
    return getattr(result, "rowcount", 0) == 1


def set_undo(*, db_session: Session, request_id: str, undo_request_id: str) -> None:
    """Remember the inverse request a harmful verdict created (not committed)."""
    db_session.execute(
        sa.update(Verification)
        .where(Verification.request_id == request_id)
        .values(undo_request_id=undo_request_id)
    )


def undo_requests(*, db_session: Session, state: str, before: datetime) -> list[str]:
    """Return the undo requests (created by harmful verdicts) in ``state`` since before ``before``."""
    return list(
        db_session.execute(
            sa.select(ApprovalRequest.id)
            .join(Verification, Verification.undo_request_id == ApprovalRequest.id)
            .where(ApprovalRequest.state == state, ApprovalRequest.updated_at <= before)
        ).scalars()
    )


def verdicts_of(*, db_session: Session, incident_id: str) -> list[Verification]:
    """Return the incident's decided verifications, oldest first."""
    return list(
        db_session.execute(
            sa.select(Verification)
            .where(Verification.incident_id == incident_id, Verification.state == "done")
            .order_by(Verification.decided_at)
        ).scalars()
    )


def alerts_since(
    *, db_session: Session, since: datetime, services: Iterable[str]
) -> list[tuple[str, str, str]]:
    """Return (service, alert name, status) of alert events on ``services`` at or after ``since``, in order."""
    names = sorted(set(services))
    if not names:
        return []
    rows = db_session.execute(
        sa.select(IncidentEvent.service, IncidentEvent.payload)
        .where(IncidentEvent.type == "alert", IncidentEvent.at >= since, IncidentEvent.service.in_(names))
        .order_by(IncidentEvent.at, IncidentEvent.id)
    )
    return [(str(svc), str((p or {}).get("name")), str((p or {}).get("status"))) for svc, p in rows]


def mark_action_event(*, db_session: Session, incident_id: str, request_id: str, **fields: Any) -> bool:
    """Add ``fields`` (verdict, outcome) to the request's action event on the timeline (not committed).

    The miner reads an action's ``outcome`` from this event, so the verdict becomes what it learns from.
    """
    rows = db_session.execute(
        sa.select(IncidentEvent).where(
            IncidentEvent.incident_id == incident_id, IncidentEvent.type == "action"
        )
    ).scalars()
    hit = False
    for event in rows:
        payload = dict(event.payload or {})
        if payload.get("request_id") == request_id:
            if "outcome" in fields:  # what the executor reported stays beside what the verdict made of it
                payload.setdefault("executor_outcome", payload.get("outcome"))
            event.payload = {**payload, **fields}
            hit = True
    db_session.flush()
    return hit


def mark_execution(*, db_session: Session, request_id: str, **fields: Any) -> None:
    """Add ``fields`` (the verdict and its summary) to the execution's recorded outcome (not committed)."""
    row = db_session.execute(
        sa.select(Execution).where(Execution.request_id == request_id)
    ).scalar_one_or_none()
    if row is not None:
        row.outcome = {**(row.outcome or {}), **fields}
        db_session.flush()


def runs_of(*, db_session: Session, action: str, target: str | None, since: datetime) -> int:
    """Return how many times ``action`` ran (not dry) on ``target`` since ``since``."""
    query = (
        sa.select(sa.func.count())
        .select_from(Execution)
        .join(ApprovalRequest, ApprovalRequest.id == Execution.request_id)
        .where(ApprovalRequest.action == action, Execution.dry_run.is_(False), Execution.started_at >= since)
    )
    query = query.where(
        ApprovalRequest.target.is_(None) if target is None else ApprovalRequest.target == target
    )
    return int(db_session.execute(query).scalar_one())


def execution_data(*, db_session: Session, request_id: str) -> dict[str, Any]:
    """Return what the executor reported with the request's outcome (``data``: spec drift, health), or {}."""
    outcome = db_session.execute(
        sa.select(Execution.outcome).where(Execution.request_id == request_id)
    ).scalar_one_or_none()
    data = (outcome or {}).get("data")
    return dict(data) if isinstance(data, dict) else {}
