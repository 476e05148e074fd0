"""Incident roles (commander, scribe): kept as ``role`` events on the timeline, the latest one wins.

A role change is part of the incident's story (who ran it, from when), so it is a timeline event like
any other, and the record carries it; no separate table. Keyword-only, taking the session.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from incidents_db.incidents import append

ROLES = ("commander", "scribe")


def set_role(
    *, db_session: Session, incident_id: str, role: str, user: str, actor: str, now: datetime
) -> int:
    """Record that ``user`` now holds ``role`` on the incident (flushed, not committed); return the seq."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    return append(
        db_session=db_session,
        incident_id=incident_id,
        type_="note",
        at=now,
        actor=actor,
        kind="role",
        role=role,
        user=user,
        text=f"{role}: {user}",
    )


def roles_of_record(record: Mapping[str, Any]) -> dict[str, str]:
    """Return role -> user id of an incident record (the latest ``role`` event of each role)."""
    found: dict[str, str] = {}
    for event in record.get("events") or ():
        if event.get("kind") == "role" and event.get("role") in ROLES and event.get("user"):
            found[str(event["role"])] = str(event["user"])
    return found
