"""Canary remediation (migration 0016): an approved request run on a share of replicas first.

One row per canary. The approver's "canary first" arms it (``state`` ``armed``) in the transaction of
the approval; the executor then runs the request on ``share`` of the target's replicas only. The
canary's verdict moves it, in the verdict's own transaction, to ``passed`` (``rest_request_id``: the
rest of the rollout, approved at once or waiting for a second approval) or ``failed``
(``undo_request_id``: the canary's undo, on the canary replicas only). A canary whose run ends
``unknown`` or ``failed`` (or never starts) gets no verdict: it is disarmed (``unknown``, ``run_failed``)
in that transaction, so neither the rest nor an undo follows without a person. A bot restart at any point finds the row as the last committed
transaction left it (docs/verification.md, "Canary first").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from incidents_db.models import ApprovalRequest, Base

STATES: tuple[str, ...] = ("armed", "passed", "failed", "unknown", "run_failed")
DISARMED: tuple[str, ...] = ("unknown", "run_failed")  # no verdict came: its run ended so, or never started


class Canary(Base):
    """A request run on a share of replicas first, and what its verdict led to."""

    __tablename__ = "canaries"

    request_id: Mapped[str] = mapped_column(
        sa.ForeignKey("approval_requests.id", ondelete="CASCADE"), primary_key=True
    )
    incident_id: Mapped[str | None] = mapped_column(sa.String(200), nullable=True, index=True)
    action: Mapped[str] = mapped_column(sa.String(200))
    target: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    share: Mapped[float] = mapped_column(sa.Float)
    state: Mapped[str] = mapped_column(sa.String(16), default="armed")
    second_approval: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    armed_by: Mapped[str] = mapped_column(sa.String(64))
    armed_at: Mapped[datetime] = mapped_column()
    verdict: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(nullable=True)
    rest_request_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True, index=True)
    undo_request_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True, index=True)


@dataclass(frozen=True)
class Run:
    """How the executor runs one request of a canary: the canary itself, or the canary's undo."""

    canary_request_id: str
    share: float
    undo: bool


def get(*, db_session: Session, request_id: str) -> Canary | None:
    """Return the canary whose first run is ``request_id``, or None."""
    return db_session.get(Canary, request_id)


def arm(
    *,
    db_session: Session,
    request_id: str,
    action: str,
    target: str | None,
    incident_id: str | None,
    share: float,
    second_approval: bool,
    by: str,
    now: datetime,
) -> Canary:
    """Record "canary first" for a request before it runs (flushed, not committed); the first choice stands."""
    row = get(db_session=db_session, request_id=request_id)
    if row is None:
        row = Canary(
            request_id=request_id, incident_id=incident_id, action=action, target=target, share=share,
            state="armed", second_approval=second_approval, armed_by=by[:64], armed_at=now,
        )  # fmt: skip
        db_session.add(row)
        db_session.flush()
    return row


def run_of(*, db_session: Session, request_id: str) -> Run | None:
    """Return how a request runs as part of a canary (its first run or its undo), or None."""
    row = get(db_session=db_session, request_id=request_id)
    if row is not None:
        return Run(row.request_id, row.share, undo=False)
    undo = db_session.execute(
        sa.select(Canary).where(Canary.undo_request_id == request_id)
    ).scalar_one_or_none()
    return None if undo is None else Run(undo.request_id, undo.share, undo=True)


def settle(
    *,
    db_session: Session,
    request_id: str,
    state: str,
    verdict: str,
    now: datetime,
    rest_request_id: str | None = None,
    undo_request_id: str | None = None,
) -> bool:
    """Move an armed canary to ``passed`` or ``failed`` (not committed); False when it already moved."""
    if state not in ("passed", "failed"):
        raise ValueError(f"a canary settles as passed or failed, got {state!r}")
    result = db_session.execute(
        sa.update(Canary)
        .where(Canary.request_id == request_id, Canary.state == "armed")
        .values(
            state=state,
            verdict=verdict,
            decided_at=now,
            rest_request_id=rest_request_id,
            undo_request_id=undo_request_id,
        )
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


def disarm(*, db_session: Session, request_id: str, now: datetime, state: str = "unknown") -> bool:
    """Move an armed canary whose run gave no verdict to ``state`` (not committed); False if not armed."""
    if state not in DISARMED:
        raise ValueError(f"a canary is disarmed as one of {', '.join(DISARMED)}, got {state!r}")
    result = db_session.execute(
        sa.update(Canary)
        .where(Canary.request_id == request_id, Canary.state == "armed")
        .values(state=state, decided_at=now)
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


def followups(*, db_session: Session, state: str, before: datetime) -> list[str]:
    """Return the rests and undos canaries created that are in ``state`` since before ``before``."""
    made = sa.or_(Canary.rest_request_id == ApprovalRequest.id, Canary.undo_request_id == ApprovalRequest.id)
    return list(
        db_session.execute(
            sa.select(ApprovalRequest.id)
            .join(Canary, made)
            .where(ApprovalRequest.state == state, ApprovalRequest.updated_at <= before)
            .order_by(ApprovalRequest.updated_at)
        ).scalars()
    )


def of_incident(*, db_session: Session, incident_id: str) -> list[Canary]:
    """Return the incident's canaries, oldest first."""
    return list(
        db_session.execute(
            sa.select(Canary).where(Canary.incident_id == incident_id).order_by(Canary.armed_at)
        ).scalars()
    )
