"""Every command of the grammar over HTTP, signed by the sandbox driver, answered in the sandbox."""

from __future__ import annotations

from tests.bot.conftest import ALICE, BOB, CAROL, Harness, generic
from tests.bot.sandbox.conftest import wait_for


def test_help_and_unknown_input_get_short_ephemeral_help(harness: Harness) -> None:
    harness.command(ALICE, "help")
    assert "declare <service> <title>" in harness.wait_ephemeral(ALICE, "Usage")
    harness.command(BOB, "frobnicate the widgets")
    assert "did not understand" in harness.wait_ephemeral(BOB, "did not understand")
    harness.command(BOB, "why")
    text = harness.wait_ephemeral(BOB, "Usage: `why")
    assert "Traceback" not in text


def test_declare_posts_a_card_and_status_incidents_resolve(harness: Harness) -> None:
    harness.command(ALICE, "declare checkoutservice Checkout is throwing 500s")
    card = harness.card_for("INC-1")
    blocks = str(card["blocks"])
    assert "Checkout is throwing 500s" in blocks and "checkoutservice" in blocks
    harness.command(BOB, "incidents")
    assert "INC-1" in harness.wait_ephemeral(BOB, "Open incidents")
    harness.command(BOB, "status INC-1")
    assert "Latest timeline" in harness.wait_ephemeral(BOB, "declared: Checkout")
    harness.command(BOB, "resolve INC-1")
    harness.wait_card("INC-1", lambda blocks: "Resolved" in blocks)
    harness.command(BOB, "incidents")
    harness.wait_ephemeral(BOB, "No open incidents")
    replies = wait_for(lambda: [r for r in harness.replies(card["ts"]) if "resolved" in r.get("text", "")])
    assert replies


def test_suggest_why_similar_policy_whoami(harness: Harness) -> None:
    status, body = harness.post_alert("generic", generic("HighErrorRate", "checkoutservice", value=0.2))
    assert status == 200 and body["created"] == ["INC-1"]
    harness.command(ALICE, "suggest INC-1")
    assert "restart_service on checkoutservice" in harness.wait_ephemeral(ALICE, "Suggestions for INC-1")
    harness.command(ALICE, "why INC-1 1")
    why = harness.wait_ephemeral(ALICE, "Why #1")
    assert "error_spike" in why and "guardrails" in why
    harness.command(ALICE, "why INC-1 9")
    harness.wait_ephemeral(ALICE, "there is no #9")
    harness.command(ALICE, "similar INC-1")
    harness.wait_ephemeral(ALICE, "No past incident")
    harness.command(ALICE, "policy")
    harness.wait_ephemeral(ALICE, "runbook-baseline")
    harness.command(CAROL, "whoami")
    who = harness.wait_ephemeral(CAROL, "You are")
    assert "sre-lead" in who and "critical" in who


def test_free_text_naming_a_service_gets_its_incident(harness: Harness) -> None:
    harness.post_alert("generic", generic("HighLatency", "checkoutservice"))
    delivery = harness.driver.user_message(
        user=BOB, channel="incidents", text="@remediate what's wrong with checkout?"
    )
    assert delivery is None or getattr(delivery, "ok", True)
    text = harness.wait_ephemeral(BOB, "Latest timeline")
    assert "*INC-1*" in text and "HighLatency" in text


def test_unknown_incident_is_a_clean_refusal(harness: Harness) -> None:
    harness.command(ALICE, "status INC-404")
    text = harness.wait_ephemeral(ALICE, "no incident 'INC-404'")
    assert "INC-404" in text and "Traceback" not in text


def test_freeze_needs_an_override_role_and_hides_buttons(harness: Harness) -> None:
    harness.command(ALICE, "freeze on")
    harness.wait_ephemeral(ALICE, "may not turn the freeze on")
    harness.command(CAROL, "freeze on checkoutservice")
    harness.wait_message("turned the freeze on for checkoutservice")
    harness.post_alert("generic", generic("HighErrorRate", "checkoutservice"))
    card = harness.wait_card("INC-1", lambda blocks: "cannot be approved now" in blocks)
    ids = [e["action_id"] for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert not any(i.startswith("approve:1") for i in ids)
    harness.command(CAROL, "freeze off checkoutservice")
    harness.wait_message("turned the freeze off for checkoutservice")


def test_postmortem_is_drafted_on_resolve_and_shown_in_the_thread(harness: Harness) -> None:
    harness.command(ALICE, "declare cartservice Cart is slow")
    card = harness.card_for("INC-1")
    harness.command(ALICE, "postmortem INC-1")
    harness.wait_ephemeral(ALICE, "INC-1 is still open")
    harness.command(ALICE, "resolve INC-1")
    wait_for(lambda: [r for r in harness.replies(card["ts"]) if "Postmortem drafted" in r.get("text", "")])
    harness.command(ALICE, "postmortem INC-1")
    harness.wait_ephemeral(ALICE, "Postmortem of INC-1 (draft, v1) posted")
    wait_for(
        lambda: [r for r in harness.replies(card["ts"]) if r.get("text", "").startswith("Postmortem: INC-1")]
    )
