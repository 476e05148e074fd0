"""Alert -> card -> approve -> execute -> resolve, the two-person rule, refusals, and the audit trail."""

from __future__ import annotations

import json

import sqlalchemy as sa

from incidents_db.models import AuditEntry
from tests.bot.conftest import ALICE, BOB, CAROL, DAVE, Harness, generic
from tests.bot.sandbox.conftest import wait_for


def _buttons(card: dict) -> dict[str, dict]:
    return {e["action_id"]: e for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]}


def _audit(harness: Harness, event: str, decision: str) -> list[AuditEntry]:
    with harness.services.sessions() as s:
        return list(
            s.execute(
                sa.select(AuditEntry).where(AuditEntry.event == event, AuditEntry.decision == decision)
            ).scalars()
        )


def test_alert_card_approve_execute_resolve(harness: Harness) -> None:
    status, body = harness.post_alert(
        "generic", generic("HighErrorRate", "checkoutservice", value=0.3, fingerprint="fp-1")
    )
    assert status == 200 and body["created"] == ["INC-1"]
    card = harness.card_for("INC-1")
    blocks = json.dumps(card["blocks"])
    for expected in (
        "HighErrorRate",
        "restart_service on checkoutservice",
        "confidence",
        "medium risk",
        "time to mitigate",
    ):
        assert expected in blocks
    buttons = _buttons(card)
    assert {"approve:1", "reject:1", "why:1"} <= set(buttons)
    assert "confirm" not in buttons["approve:1"]  # medium risk: no confirm dialog
    harness.click(ALICE, card, "approve:1")
    harness.wait_ephemeral(ALICE, "Approved restart_service on checkoutservice; running")  # at once
    harness.wait_card("INC-1", lambda b: "executed" in b)  # the runner ran it and refreshed the card
    assert harness.world.applied == [("restart_service", "checkoutservice", {})]
    wait_for(lambda: [r for r in harness.replies(card["ts"]) if "succeeded" in r.get("text", "")])
    # The alert resolves: the timeline gets it, and the alert-born incident resolves itself.
    status, body = harness.post_alert(
        "generic", generic("HighErrorRate", "checkoutservice", status="resolved", fingerprint="fp-1")
    )
    assert status == 200 and body["incidents"] == ["INC-1"]
    final = harness.wait_card("INC-1", lambda b: "Resolved" in b)
    assert not [k for k in _buttons(final) if k.startswith("approve")]
    wait_for(
        lambda: [
            r
            for r in harness.replies(card["ts"])
            if "resolved" in r.get("text", "") and "alert" in r.get("text", "")
        ]
    )
    assert len(harness.cards()) == 1  # updated in place, never re-posted


def test_two_person_rule_with_confirm_and_unauthorised_click(harness: Harness) -> None:
    harness.post_alert("generic", generic("ServiceDown", "redis-cart"))
    card = harness.wait_card("INC-1", lambda b: "failover_datastore" in b)
    n = next(
        int(b["block_id"].split("-")[1])
        for b in card["blocks"]
        if b.get("block_id", "").startswith("text-") and "failover_datastore" in b["text"]["text"]
    )
    approve = _buttons(card)[f"approve:{n}"]
    assert approve["confirm"]["title"]["text"] == "High-risk action"
    harness.click(BOB, card, f"approve:{n}")  # on call may not approve high risk
    refusal = harness.wait_ephemeral(BOB, "may not approve high-risk")
    assert "Traceback" not in refusal
    assert _audit(harness, "approve", "denied")
    card = harness.card_for("INC-1")
    harness.click(CAROL, card, f"approve:{n}")
    harness.wait_ephemeral(CAROL, "1 of 2 approvals")
    card = harness.wait_card("INC-1", lambda b: "1 of 2 approvals" in b)
    assert harness.world.applied == []
    harness.click(CAROL, card, f"approve:{n}")  # the same person twice does not count
    harness.wait_ephemeral(CAROL, "already approved")
    harness.click(DAVE, card, f"approve:{n}")
    harness.wait_ephemeral(DAVE, "Approved failover_datastore on redis-cart; running")
    harness.wait_card("INC-1", lambda b: "executed" in b)
    assert harness.world.applied == [("failover_datastore", "redis-cart", {})]


def test_self_approval_is_refused_and_audited(harness: Harness) -> None:
    harness.command(ALICE, "declare checkoutservice errors after lunch")
    card = harness.card_for("INC-1")
    assert "approve:1" in _buttons(card)
    harness.click(ALICE, card, "approve:1")
    text = harness.wait_ephemeral(ALICE, "may not approve it")
    assert "requested this action" in text
    assert any(e.actor == ALICE for e in _audit(harness, "approve", "denied"))
    assert harness.world.applied == []
    card = harness.wait_card("INC-1", lambda b: "0 of 1 approvals" in b)
    harness.click(BOB, card, "approve:1")
    harness.wait_ephemeral(BOB, "running")
    harness.wait_card("INC-1", lambda b: "executed" in b)


def test_reject_and_why_buttons(harness: Harness) -> None:
    harness.post_alert("generic", generic("HighErrorRate", "checkoutservice"))
    card = harness.card_for("INC-1")
    harness.click(BOB, card, "why:1")
    assert "guardrails" in harness.wait_ephemeral(BOB, "Why #1")
    harness.click(BOB, card, "reject:1")
    harness.wait_ephemeral(BOB, "Rejected restart_service")
    card = harness.wait_card("INC-1", lambda b: "rejected" in b)
    assert "approve:1" not in _buttons(card)
    assert harness.world.applied == []


def test_approve_command_by_request_id(harness: Harness) -> None:
    harness.command(ALICE, "declare checkoutservice checkout down")
    card = harness.card_for("INC-1")
    harness.click(ALICE, card, "approve:1")  # proposes (as alice) and refuses her own approval
    harness.wait_ephemeral(ALICE, "may not approve it")
    with harness.services.sessions() as s:
        from incidents_db.models import ApprovalRequest

        request_id = s.execute(sa.select(ApprovalRequest.id)).scalar_one()
    harness.command(BOB, f"approve {request_id}")
    harness.wait_ephemeral(BOB, "running")
    harness.wait_card("INC-1", lambda b: "executed" in b)  # the runner finished it
    harness.command(BOB, f"reject {request_id}")
    harness.wait_ephemeral(BOB, "not pending")
