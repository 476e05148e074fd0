"""The review: reviewers, edits, comments, sign-off, publish, versions, reminders; refusals in one line."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from remediation.audit.service import entries, verify
from remediation.errors import PostmortemError, PostmortemNotAllowedError
from remediation.postmortem import service as postmortems
from remediation.postmortem import workflow
from tests.remediation.postmortem.conftest import ALICE, BOB, CAROL, DAVE, RBAC, at, hand_built


def test_review_to_publish_then_an_edit_makes_version_two(store: Session) -> None:
    inc = hand_built(store)
    workflow.assign_reviewers(
        db_session=store, config=RBAC, incident_id=inc, actor=ALICE, reviewers=[BOB, CAROL], now=at(40)
    )
    workflow.edit(
        db_session=store, config=RBAC, incident_id=inc, actor=ALICE, now=at(41),
        changes={"summary": "Rollback fixed checkout", "root_cause": "v2.4.1 broke the tax call",
                 "contributing_factors": ["no canary"],
                 "action_items": [{"text": "add a canary", "owner": ALICE, "due": "2026-04-01"}, {"text": " "}]},
    )  # fmt: skip
    workflow.comment(db_session=store, incident_id=inc, actor=BOB, text="looks right", now=at(42))
    workflow.sign_off(db_session=store, incident_id=inc, actor=BOB, now=at(43))
    with pytest.raises(PostmortemNotAllowedError, match="waiting for the sign-off of <@U0CAROL003>"):
        workflow.publish(db_session=store, config=RBAC, incident_id=inc, actor=DAVE, now=at(44))
    workflow.sign_off(db_session=store, incident_id=inc, actor=CAROL, now=at(45))
    with pytest.raises(PostmortemNotAllowedError, match="needs the role sre-lead"):
        workflow.publish(db_session=store, config=RBAC, incident_id=inc, actor=ALICE, now=at(46))
    workflow.publish(db_session=store, config=RBAC, incident_id=inc, actor=DAVE, now=at(47))
    store.commit()
    v1 = postmortems.report(db_session=store, incident_id=inc)
    assert (v1["status"], v1["version"], v1["signed_off_by"]) == ("published", 1, [BOB, CAROL])
    assert v1["summary"] == "Rollback fixed checkout" and v1["contributing_factors"] == ["no canary"]
    assert v1["root_cause"]["recorded"] == {"text": "v2.4.1 broke the tax call"}
    assert v1["action_items"] == [{"text": "add a canary", "owner": ALICE, "due": "2026-04-01"}]

    workflow.edit(
        db_session=store, config=RBAC, incident_id=inc, actor=CAROL, changes={"summary": "v2"}, now=at(50)
    )
    store.commit()
    v2 = postmortems.report(db_session=store, incident_id=inc)
    assert (v2["status"], v2["version"], v2["summary"], v2["signed_off_by"]) == ("draft", 2, "v2", [])
    assert postmortems.report(db_session=store, incident_id=inc, version=1) == v1  # kept as published
    steps = [e.event for e in entries(db_session=store, incident_id=inc)]
    assert steps == ["postmortem_draft", "postmortem_review", "postmortem_edit", "postmortem_comment",
                     "postmortem_signoff", "postmortem_signoff", "postmortem_publish", "postmortem_edit"]  # fmt: skip
    assert verify(db_session=store).ok
    assert [c.text for c in workflow.comments(db_session=store, incident_id=inc)] == ["looks right"]


def test_an_edit_in_review_clears_the_sign_offs_and_only_reviewers_sign(store: Session) -> None:
    inc = hand_built(store)
    with pytest.raises(PostmortemError, match="not in review"):
        workflow.sign_off(db_session=store, incident_id=inc, actor=BOB, now=at(40))
    with pytest.raises(PostmortemError, match="assign reviewers"):
        workflow.publish(db_session=store, config=RBAC, incident_id=inc, actor=DAVE, now=at(40))
    workflow.assign_reviewers(
        db_session=store, config=RBAC, incident_id=inc, actor=ALICE, reviewers=[BOB], now=at(40)
    )
    with pytest.raises(PostmortemNotAllowedError, match="only its reviewers"):
        workflow.sign_off(db_session=store, incident_id=inc, actor=CAROL, now=at(41))
    row = workflow.sign_off(db_session=store, incident_id=inc, actor=BOB, now=at(41))
    assert postmortems.signed_off(row) == (BOB,)
    row = workflow.edit(
        db_session=store, config=RBAC, incident_id=inc, actor=ALICE, changes={"summary": "x"}, now=at(42)
    )
    assert postmortems.signed_off(row) == () and row.version == 1
    with pytest.raises(PostmortemNotAllowedError, match="no role"):
        workflow.edit(
            db_session=store,
            config=RBAC,
            incident_id=inc,
            actor="U0NOBODY99",
            changes={"summary": "y"},
            now=at(43),
        )
    with pytest.raises(PostmortemError, match="cannot edit title"):
        workflow.edit(
            db_session=store, config=RBAC, incident_id=inc, actor=ALICE, changes={"title": "y"}, now=at(43)
        )
    with pytest.raises(PostmortemError, match="name 1 to 10 reviewers"):
        workflow.assign_reviewers(
            db_session=store, config=RBAC, incident_id=inc, actor=ALICE, reviewers=[], now=at(43)
        )
    with pytest.raises(PostmortemError, match="write the comment"):
        workflow.comment(db_session=store, incident_id=inc, actor=BOB, text="  ", now=at(43))


def test_reminders_come_once_per_period_for_postmortems_left_in_review(store: Session) -> None:
    inc = hand_built(store)
    workflow.assign_reviewers(
        db_session=store, config=RBAC, incident_id=inc, actor=ALICE, reviewers=[BOB], now=at(40)
    )
    store.commit()
    assert workflow.due_reminders(db_session=store, after_s=3600, now=at(60)) == []
    assert [r.incident_id for r in workflow.due_reminders(db_session=store, after_s=3600, now=at(101))] == [
        inc
    ]
    assert workflow.due_reminders(db_session=store, after_s=3600, now=at(102)) == []  # reminded just now
    assert [r.incident_id for r in workflow.due_reminders(db_session=store, after_s=3600, now=at(162))] == [
        inc
    ]
