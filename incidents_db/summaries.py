"""Where the main channel's summary line of an incident (one with its own channel) was posted.

The line goes out as an outbox row of kind ``summary`` (coalesce key ``summary:<incident>``); the row's
result keeps Slack's ``channel`` and ``ts``, so a later row (the incident resolved) updates that message
in place instead of posting a second line.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from incidents_db.outbox import SENT, OutboxMessage

KIND = "summary"


def coalesce_key(incident_id: str) -> str:
    """Return the outbox coalesce key of an incident's summary rows."""
    return f"{KIND}:{incident_id}"


def posted(*, db_session: Session, incident_id: str) -> tuple[str, str] | None:
    """Return (channel id, ts) of the incident's summary message once a summary row has posted it."""
    results = db_session.execute(
        sa.select(OutboxMessage.result)
        .where(
            OutboxMessage.incident_id == incident_id,
            OutboxMessage.kind == KIND,
            OutboxMessage.state == SENT,
        )
        .order_by(OutboxMessage.id.desc())
    ).scalars()
    for result in results:  # a superseded row's result has no ts
        if isinstance(result, dict) and result.get("channel") and result.get("ts"):
            return str(result["channel"]), str(result["ts"])
    return None
