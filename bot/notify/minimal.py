"""The minimal card: what an incident shows when Slack refuses its full card's blocks."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from bot.notify.mrkdwn import clip, escape
from incidents_db import incidents


def minimal_card(session: Session, incident_id: str) -> tuple[str, list[dict[str, Any]]]:
    """Return a card that always fits Block Kit: header, status, and where the full picture is."""
    incident = incidents.find(db_session=session, incident_id=incident_id)
    title = incident.title if incident is not None else ""
    severity = incident.severity if incident is not None else "?"
    resolved = incident is not None and incident.resolved_at is not None
    state = "✅ Resolved" if resolved else "🔴 Open"
    text = clip(escape(f"{incident_id} [{severity}] {title} ({'resolved' if resolved else 'open'})"), 3000)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(f"{incident_id}: {title}", 150)}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": clip(
                    f"*Severity* {escape(severity)} · *Status* {state}\n"
                    f"The full card could not be rendered; see `/remediate status {escape(incident_id)}`.",
                    3000,
                ),
            },
        },
    ]
    return text, blocks
