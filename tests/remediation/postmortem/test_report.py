"""The report's sections, on a hand-built timeline and on incidents from the simulator."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from sqlalchemy.orm import Session

from incidents_db import incidents
from remediation.errors import PostmortemError, PostmortemNotReadyError
from remediation.postmortem import service as postmortems
from sim.history import generate_history
from sim.topology import builtin_topology
from tests.remediation.postmortem.conftest import ALICE, BOB, CAROL, T0, add_bot_part, add_record, hand_built

KEYS = {"incident", "status", "version", "summary", "impact", "timeline", "actions", "root_cause",
        "action_items", "figures", "detection", "decisions", "contributing_factors"}  # fmt: skip


def test_hand_built_timeline_every_section_right(store: Session) -> None:
    hand_built(store)
    add_bot_part(store)
    report = postmortems.report(db_session=store, incident_id="inc-1")
    assert set(report) >= KEYS and report["incident"] == "INC-1" and report["status"] == "draft"
    assert all({"at", "kind"} <= set(item) for item in report["timeline"])
    kinds = [i["kind"] for i in report["timeline"]]
    for kind in ("deploy", "alert", "metric", "suggestion", "request", "approval", "denial", "execution",
                 "action", "note", "alert_resolved", "resolved"):  # fmt: skip
        assert kind in kinds, kind
    denial = next(i for i in report["timeline"] if i["kind"] == "denial")
    assert denial["rule"] == "approve" and "two-person" in denial["reason"]

    restart, rollback, flush = report["actions"]
    assert (restart["action"], restart["suggested_rank"], restart["approved_by"], restart["outcome"]) == (
        "restart_service", 2, [BOB], "no_effect")  # fmt: skip
    assert (rollback["suggested_rank"], rollback["approved_by"], rollback["requested_by"]) == (
        1,
        [CAROL],
        ALICE,
    )
    assert rollback["policy"] == "runbook-baseline@1" and rollback["approval_wait_s"] == 7 * 60
    assert flush["suggested_rank"] is None and flush["approved_by"] == [] and flush["requested_by"] == ALICE
    assert [a["mitigated"] for a in report["actions"]] == [False, False, True]  # the last success

    decisions = report["decisions"]
    assert [d["chosen_rank"] for d in decisions] == [2, 1, None] and decisions[2]["by_hand"]
    assert [s["rank"] for s in decisions[0]["suggestions"]] == [1, 2]

    figures = report["figures"]
    assert figures["time_to_acknowledge_s"] == 4 * 60  # ALICE's note
    assert figures["time_to_mitigate_s"] == 25 * 60 and figures["time_to_resolve_s"] == 30 * 60
    assert figures["actions_tried"] == 3 and figures["approvals_waited_for"] == 2
    assert figures["guardrail_denials"] == 1

    inferred = report["root_cause"]["inferred"]
    assert inferred["service"] == "checkoutservice" and inferred["fault"] == "bad_deploy"
    assert any("frontend -> checkoutservice" in e for e in inferred["evidence"])
    assert report["root_cause"]["recorded"] is None
    assert report["impact"]["duration_s"] == 33 * 60 and report["impact"]["user_facing_scope"] == "frontends"
    assert report["impact"]["user_facing"]["error_rate"] == {
        "service": "frontend",
        "value": 0.2,
        "at": "2026-03-02T10:14:00Z",
    }
    assert report["detection"]["first_alert"]["name"] == "HighErrorRate"
    assert json.dumps(report)  # JSON-ready
    again = postmortems.report(db_session=store, incident_id="INC-1")
    assert again == report  # derived only from the store: the same store gives the same report


def test_an_incident_with_no_actions_and_a_recorded_cause(store: Session) -> None:
    record = {
        "format": "remediate.incident/v1", "id": "INC-8", "title": "t", "severity": "sev3",
        "opened_at": "2026-03-02T10:00:00Z", "resolved_at": "2026-03-02T10:05:00Z",
        "root_cause": {"service": "checkoutservice", "fault": "bad_deploy"},
        "events": [{"at": "2026-03-02T10:05:00Z", "type": "resolved"}],
    }  # fmt: skip
    add_record(store, record)
    report = postmortems.report(db_session=store, incident_id="INC-8")
    assert report["actions"] == [] and report["decisions"] == []
    assert report["figures"]["time_to_mitigate_s"] is None and report["figures"]["actions_tried"] == 0
    assert report["root_cause"]["recorded"] == {"service": "checkoutservice", "fault": "bad_deploy"}


def test_a_still_open_incident_is_refused_and_unknown_versions_too(store: Session) -> None:
    inc = incidents.create(
        db_session=store, title="t", services=["cartservice"], severity="sev2", source="x", now=T0
    )
    store.commit()
    with pytest.raises(PostmortemNotReadyError, match="still open"):
        postmortems.report(db_session=store, incident_id=inc.id)
    with pytest.raises(PostmortemNotReadyError):
        postmortems.ensure_draft(db_session=store, incident_id=inc.id, now=T0)
    resolved = hand_built(store)
    with pytest.raises(PostmortemError, match="no postmortem version 3"):
        postmortems.report(db_session=store, incident_id=resolved, version=3)


@pytest.mark.parametrize("seed", [3, 5])
def test_simulated_incidents_report_what_the_simulator_did(store: Session, seed: int) -> None:
    topology = builtin_topology("online-boutique")
    for record in generate_history(topology, incidents=6, seed=seed):
        add_record(store, record)
        report = postmortems.report(db_session=store, incident_id=record["id"])
        acted = [e for e in record["events"] if e["type"] == "action"]
        assert [a["action"] for a in report["actions"]] == [e["action"] for e in acted]
        assert all(a["suggested_rank"] is None for a in report["actions"])  # the team acted by hand
        ok = [e for e in acted if e["outcome"] == "succeeded"]
        mitigated = [a for a in report["actions"] if a["mitigated"]]
        assert len(mitigated) == (1 if ok else 0)
        resolved = datetime.fromisoformat(record["resolved_at"].replace("Z", "+00:00"))
        first = next(e for e in record["events"] if e["type"] == "alert")
        start = datetime.fromisoformat(first["at"].replace("Z", "+00:00"))
        assert report["figures"]["time_to_resolve_s"] == (resolved - start).total_seconds()
        assert report["root_cause"]["recorded"] == record["root_cause"]
        if len(record["faults"]) == 1 and report["root_cause"]["inferred"]["service"] is not None:
            assert (
                report["root_cause"]["inferred"]["runner_up"] != report["root_cause"]["inferred"]["service"]
            )
