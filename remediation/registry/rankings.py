"""Shadow and canary in the store: set or end the canary, and record each policy's ranking of an incident state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from incidents_db.rankings import PolicyCanary, PolicyRanking
from remediation.errors import RegistryError
from remediation.registry import service


def set_canary(*, db_session: Session, version: str, share: float, now: datetime) -> PolicyCanary:
    """Show ``version``'s ranking on ``share`` of incidents (a hash of the incident id decides which)."""
    if not 0.0 < share <= 0.5:
        raise RegistryError(f"--share must be above 0 and at most 0.5 (a canary is a minority), got {share}")
    row = service.get_version(db_session=db_session, version=version)
    if row.status == "promoted":
        raise RegistryError(f"{version} is promoted already; a canary is a candidate beside production")
    canary = db_session.get(PolicyCanary, 1)
    if canary is None:
        canary = PolicyCanary(id=1, version=version, share=share, started_at=now)
        db_session.add(canary)
    else:
        canary.version, canary.share, canary.started_at = version, share, now
    db_session.flush()
    return canary


def end_canary(*, db_session: Session) -> str | None:
    """End the canary (every incident sees production again); return the version it was."""
    canary = db_session.get(PolicyCanary, 1)
    if canary is None:
        return None
    version = canary.version
    db_session.delete(canary)
    return version


def current_canary(*, db_session: Session) -> tuple[str, float] | None:
    """Return (version, share) of the canary, if one runs."""
    canary = db_session.get(PolicyCanary, 1)
    return (canary.version, canary.share) if canary is not None else None


def record(*, db_session: Session, incident_id: str, step: int, role: str, arm: str, version: str,
           ranked: list[dict[str, Any]], at: datetime) -> bool:  # fmt: skip
    """Keep one policy's ranking of one incident state (the first one only); return whether it was new."""
    seen = db_session.scalar(
        sa.select(PolicyRanking.id).where(
            PolicyRanking.incident_id == incident_id,
            PolicyRanking.role == role,
            PolicyRanking.policy_version == version,
            PolicyRanking.step == step,
        )
    )
    if seen is not None:
        return False
    row = PolicyRanking(incident_id=incident_id, step=step, role=role, arm=arm, shown=role != "shadow" and role == arm,
                        policy_version=version, ranked=ranked, at=at)  # fmt: skip
    try:
        with db_session.begin_nested():  # another replica may record the same state at the same moment
            db_session.add(row)
    except IntegrityError:
        return False
    return True


def rankings_of(*, db_session: Session, versions: list[str] | None = None) -> list[PolicyRanking]:
    """Return the recorded rankings (of ``versions`` and production's), oldest first."""
    query = sa.select(PolicyRanking).order_by(PolicyRanking.at, PolicyRanking.id)
    return list(db_session.scalars(query))
