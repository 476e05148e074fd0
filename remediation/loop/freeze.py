"""The learning freeze: while it holds, ``promote`` and automatic retraining stop; a person lifts it.

Every change is written to the audit log (event ``learning_freeze`` / ``learning_unfreeze``) in the
same transaction as the state row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from incidents_db import jobruns
from remediation.audit.service import append


@dataclass(frozen=True)
class FreezeState:
    """Whether learning is frozen, by whom, since when and why."""

    frozen: bool
    actor: str
    reason: str
    at: datetime | None

    def as_json(self) -> dict[str, Any]:
        """Return the state as `remediate learning status --json` prints it."""
        return {
            "frozen": self.frozen,
            "actor": self.actor,
            "reason": self.reason,
            "at": self.at.isoformat() if self.at else None,
        }


def state(*, db_session: Session) -> FreezeState:
    """Return the learning freeze as it stands."""
    row = jobruns.learning_state(db_session=db_session)
    if row is None:
        return FreezeState(False, "", "", None)
    return FreezeState(bool(row.frozen), row.actor, row.reason, row.at)


def freeze(*, db_session: Session, actor: str, reason: str, now: datetime) -> FreezeState:
    """Freeze learning and audit it (not committed); freezing again keeps the first reason."""
    current = state(db_session=db_session)
    if current.frozen:
        return current
    jobruns.set_frozen(db_session=db_session, frozen=True, actor=actor, reason=reason, now=now)
    append(
        db_session=db_session, actor=actor, event="learning_freeze", decision="allowed", reason=reason, at=now
    )
    return state(db_session=db_session)


def unfreeze(*, db_session: Session, actor: str, reason: str, now: datetime) -> FreezeState:
    """Lift the learning freeze and audit it (not committed)."""
    jobruns.set_frozen(db_session=db_session, frozen=False, actor=actor, reason=reason, now=now)
    append(
        db_session=db_session,
        actor=actor,
        event="learning_unfreeze",
        decision="allowed",
        reason=reason,
        at=now,
    )
    return state(db_session=db_session)
