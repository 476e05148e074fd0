"""Postmortem drafts: gather what happened from the store, keep the written draft; keyword-only."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from incidents_db import incidents
from incidents_db.models import Postmortem
from remediation.postmortem.models import Draft


def gather(*, db_session: Session, incident_id: str) -> Draft:
    """Return the draft's material: the incident's record and its actions (raises if the incident is unknown)."""
    record = incidents.record(db_session=db_session, incident_id=incident_id)
    actions = tuple(e for e in record["events"] if e.get("type") == "action")
    return Draft(record, actions)


def save_draft(*, db_session: Session, incident_id: str, body: str, user: str, now: datetime) -> Postmortem:
    """Store ``body`` as the incident's postmortem draft (flushed, not committed) and return the row.

    The first draft names ``user`` as its reviewer; a later draft replaces the body while the postmortem
    is still a draft, and leaves one in review or approved as it is.
    """
    row = db_session.query(Postmortem).filter_by(incident_id=incident_id).one_or_none()
    if row is None:
        row = Postmortem(
            incident_id=incident_id,
            status="draft",
            body=body,
            reviewers=[user],
            created_at=now,
            updated_at=now,
        )
        db_session.add(row)
    elif row.status == "draft":
        row.body, row.updated_at = body, now
    db_session.flush()
    return row
