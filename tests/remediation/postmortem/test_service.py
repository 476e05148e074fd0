"""Postmortem rows: drafted once per resolved incident (audited), listed with status and reviewers."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from incidents_db.errors import IncidentNotFoundError
from remediation.audit.service import entries
from remediation.errors import PostmortemError
from remediation.postmortem import service as postmortems
from tests.remediation.postmortem.conftest import T0, at, hand_built


def test_a_draft_gathers_the_actions_and_keeps_one_row(store: Session) -> None:
    incident_id = hand_built(store)
    draft = postmortems.gather(db_session=store, incident_id="inc-1")
    assert draft.incident_id == incident_id and [a["action"] for a in draft.actions] == [
        "restart_service", "rollback_deploy", "flush_cache"]  # fmt: skip
    first = postmortems.ensure_draft(db_session=store, incident_id=incident_id, now=at(31))
    store.commit()
    again = postmortems.ensure_draft(db_session=store, incident_id=incident_id, now=at(40))
    store.commit()
    assert first.id == again.id and (again.status, again.version, again.reviewers) == ("draft", 1, [])
    assert [e.event for e in entries(db_session=store, incident_id=incident_id)] == ["postmortem_draft"]
    listed = postmortems.list_postmortems(db_session=store)
    assert [(p.incident_id, p.status, p.version) for p in listed] == [(incident_id, "draft", 1)]
    assert postmortems.list_postmortems(db_session=store, status="published") == []
    with pytest.raises(PostmortemError, match="expected one of"):
        postmortems.list_postmortems(db_session=store, status="approved")


def test_an_unknown_incident_has_no_draft(store: Session) -> None:
    with pytest.raises(IncidentNotFoundError):
        postmortems.gather(db_session=store, incident_id="INC-9")
    with pytest.raises(IncidentNotFoundError):
        postmortems.ensure_draft(db_session=store, incident_id="INC-9", now=T0)
