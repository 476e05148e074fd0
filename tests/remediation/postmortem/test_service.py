"""Postmortem drafts: what is gathered from the store, and the one row kept per incident."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from incidents_db import incidents
from incidents_db.db import open_store
from incidents_db.errors import IncidentNotFoundError
from incidents_db.models import Postmortem
from remediation.postmortem import service as postmortems

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_a_draft_gathers_the_actions_and_keeps_one_row(db_url: str) -> None:
    with Session(open_store(db_url)) as s:
        inc = incidents.create(
            db_session=s, title="t", services=["cart"], severity="sev2", source="x", now=T0
        )
        incidents.append(db_session=s, incident_id=inc.id, type_="note", at=T0, text="hello")
        incidents.append(
            db_session=s, incident_id=inc.id, type_="action", at=T0, action="restart", outcome="succeeded"
        )
        draft = postmortems.gather(db_session=s, incident_id="inc-1")
        assert draft.incident_id == inc.id and [a["action"] for a in draft.actions] == ["restart"]
        assert len(draft.record["events"]) == 2

        postmortems.save_draft(db_session=s, incident_id=inc.id, body="one", user="U1", now=T0)
        later = T0 + timedelta(minutes=1)
        row = postmortems.save_draft(db_session=s, incident_id=inc.id, body="two", user="U2", now=later)
        s.commit()
        assert (row.body, row.reviewers, row.status) == ("two", ["U1"], "draft")
        row.status = "in_review"  # a postmortem under review is no longer overwritten by a new draft
        s.commit()
        postmortems.save_draft(db_session=s, incident_id=inc.id, body="three", user="U1", now=later)
        s.commit()
        assert [p.body for p in s.query(Postmortem).all()] == ["two"]


def test_an_unknown_incident_has_no_draft(db_url: str) -> None:
    with Session(open_store(db_url)) as s, pytest.raises(IncidentNotFoundError):
        postmortems.gather(db_session=s, incident_id="INC-9")
