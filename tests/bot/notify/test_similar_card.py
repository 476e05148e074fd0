"""Every card names the two most similar past incidents and what fixed them, whichever policy ranks;
the team's own incidents join that memory as they resolve, with no retraining and no restart."""

from __future__ import annotations

import json
from typing import Any

from incidents_db.importer import import_lines
from tests.bot.conftest import Harness, generic


def _past(incident_id: str, title: str, alert: str, service: str, fix: str) -> bytes:
    at = "2026-03-02T10:{:02d}:00Z".format
    return json.dumps({
        "format": "remediate.incident/v1", "id": incident_id, "title": title, "severity": "sev2",
        "services": [service], "opened_at": at(0), "resolved_at": at(30),
        "events": [
            {"at": at(0), "type": "alert", "status": "firing", "name": alert, "service": service},
            {"at": at(5), "type": "action", "action": "restart_service", "target": service, "actor": "U1",
             "outcome": "no_effect"},
            {"at": at(10), "type": "action", "action": fix, "target": service, "actor": "U1", "outcome": "succeeded"},
            {"at": at(30), "type": "resolved"},
        ],
    }).encode()  # fmt: skip


def _similar_text(card: dict[str, Any]) -> str:
    return next(
        e["text"]
        for b in card["blocks"]
        if b.get("type") == "context"
        for e in b["elements"]
        if "🧭" in e.get("text", "")
    )


def test_the_card_names_similar_past_incidents_that_joined_after_start(db_harness: Harness) -> None:
    h = db_harness
    status, answer = h.post_alert("generic", generic("HighErrorRate", "checkoutservice", fingerprint="a-1"))
    assert status == 200, answer
    (first,) = answer["incidents"]
    card = h.wait_card(first, lambda blocks: "No similar past incident yet" in blocks)
    assert "No similar past incident yet" in _similar_text(card)
    assert h.services.policy.name == "runbook-baseline"  # not only a learned policy's cards show them

    # the team's history arrives while the bot runs (an import, as incidents resolving would)
    engine = h.services.sessions.kw["bind"]
    report = import_lines(engine=engine, lines=[
        _past("INC-OLD-1", "Checkout failing", "HighErrorRate", "checkoutservice", "rollback_deploy"),
        _past("INC-OLD-2", "Cart memory", "HighMemory", "cartservice", "scale_out"),
        _past("INC-OLD-3", "Nothing fixed", "HighErrorRate", "checkoutservice", "restart_service")
        .replace(b'"succeeded"', b'"failed"'),
    ])  # fmt: skip
    assert report.imported == 3, report
    status, answer = h.post_alert("generic", generic("HighErrorRate", "paymentservice", fingerprint="b-1"))
    assert status == 200, answer
    (second,) = answer["incidents"]
    text = _similar_text(h.wait_card(second, lambda blocks: "Similar past incidents" in blocks))
    # the most alike first: the same alert; an incident nothing fixed is never offered as a fix
    assert text.index("INC-OLD-1") < text.index("INC-OLD-2"), text
    assert "fixed by rollback_deploy on checkoutservice" in text and "INC-OLD-3" not in text
    assert "alike" in text
