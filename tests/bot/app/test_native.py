"""Slack-native surfaces through the real app and the sandbox: modals, roles, App Home, safety controls."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from bot.sandbox import surfaces
from incidents_db.models import AuditEntry
from remediation.guardrails.models import KillSwitch
from tests.bot.conftest import ALICE, BOB, CAROL, DAVE, Harness, generic
from tests.bot.sandbox.conftest import wait_for


def _modal(harness: Harness, user: str, callback_id: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        views = [
            v
            for v in harness.sandbox.workspace.views.values()
            if v["user"] == user and v["callback_id"] == callback_id
        ]
        return views[-1] if views else None

    return dict(wait_for(found))


def _home(harness: Harness, user: str, contains: str) -> str:
    """Wait until ``user``'s published App Home contains ``contains``; return it as JSON text."""

    def found() -> str | None:
        home = harness.sandbox.workspace.homes.get(user)
        text = json.dumps(home) if home is not None else ""
        return text if contains in text else None

    return str(wait_for(found))


def _audit(harness: Harness, event: str, decision: str) -> list[AuditEntry]:
    with harness.services.sessions() as s:
        query = sa.select(AuditEntry).where(AuditEntry.event == event, AuditEntry.decision == decision)
        return list(s.execute(query).scalars())


def _form(
    title: str | None, severity: str | None, services: list[str], scribe: str | None = None
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "services": {
            "services": {"type": "multi_static_select", "selected_options": [{"value": s} for s in services]}
        },
        "commander": {"commander": {"type": "users_select", "selected_user": ALICE}},
        "scribe": {"scribe": {"type": "users_select", "selected_user": scribe}},
        "description": {"description": {"type": "plain_text_input", "value": "checkout returns 500s"}},
    }
    if title is not None:
        values["title"] = {"title": {"type": "plain_text_input", "value": title}}
    if severity is not None:
        values["severity"] = {"severity": {"type": "static_select", "selected_option": {"value": severity}}}
    return values


def test_declare_modal_shows_field_errors_then_declares_with_roles(harness: Harness) -> None:
    harness.command(ALICE, "declare")
    modal = _modal(harness, ALICE, "declare_incident")
    blocks = {b["block_id"]: b for b in modal["blocks"]}
    options = [o["value"] for o in blocks["services"]["element"]["options"]]
    assert "checkoutservice" in options and blocks["commander"]["element"]["initial_user"] == ALICE

    delivery = harness.driver.submit_view(
        user=ALICE, view_id=modal["id"], values=_form("Checkout down", None, [])
    )
    assert delivery.ok
    errors = harness.sandbox.workspace.views[modal["id"]]["errors"]  # still open, errors on the fields
    assert set(errors) == {"severity", "services"}
    with harness.services.sessions() as s:
        assert s.execute(sa.text("SELECT count(*) FROM incidents")).scalar_one() == 0

    values = _form("Checkout down", "sev2", ["checkoutservice"], scribe=BOB)
    delivery = harness.driver.submit_view(user=ALICE, view_id=modal["id"], values=values)
    assert delivery.ok and modal["id"] not in harness.sandbox.workspace.views
    card = harness.wait_card("INC-1", lambda b: "Scribe" in b)
    fields = json.dumps(card["blocks"])
    assert "sev2" in fields and f"<@{ALICE}>" in fields and f"<@{BOB}>" in fields

    harness.command(ALICE, f"role INC-1 commander <@{CAROL}>")
    harness.wait_card("INC-1", lambda b: f"*Commander*\\n<@{CAROL}>" in b)
    harness.command(ALICE, f"role INC-1 boss <@{CAROL}>")
    harness.wait_ephemeral(ALICE, "the role (commander or scribe)")


def test_shortcuts_open_the_form_and_a_message_prefills_it(harness: Harness) -> None:
    harness.command(ALICE, "declare cartservice Cart is slow")
    card = harness.card_for("INC-1")
    assert surfaces.global_shortcut(harness.driver, user=BOB, callback_id="declare_incident").ok
    assert _modal(harness, BOB, "declare_incident")["blocks"][0]["block_id"] == "title"
    shortcut = surfaces.message_shortcut(
        harness.driver,
        user=CAROL,
        channel="incidents",
        message_ts=card["ts"],
        callback_id="incident_from_message",
    )
    assert shortcut.ok
    modal = _modal(harness, CAROL, "declare_incident")
    description = next(b for b in modal["blocks"] if b["block_id"] == "description")
    assert "Cart is slow" in description["element"]["initial_value"]


def test_kill_switch_needs_its_role_from_command_and_app_home(harness: Harness) -> None:
    harness.command(ALICE, "killswitch on")
    harness.wait_ephemeral(ALICE, "may not turn the kill switch on")
    assert _audit(harness, "kill_on", "denied")

    assert surfaces.open_home(harness.driver, user=ALICE).ok
    _home(harness, ALICE, "kill switch: off")
    assert surfaces.click_view(harness.driver, user=ALICE, action_id="home_kill_on").ok
    form = _modal(harness, ALICE, "safety_switch")
    reason = {"reason": {"reason": {"type": "plain_text_input", "value": "stop everything"}}}
    assert harness.driver.submit_view(user=ALICE, view_id=form["id"], values=reason).ok
    assert (
        "may not turn the kill switch on" in harness.sandbox.workspace.views[form["id"]]["errors"]["reason"]
    )
    assert len(_audit(harness, "kill_on", "denied")) == 2

    # an admin role that may flip it (the config's kill_switch.flip_roles)
    harness.services.rbac = harness.services.rbac.model_copy(
        update={"kill_switch": KillSwitch(flip_roles=("sre-lead",))}
    )
    harness.command(CAROL, "killswitch on all maintenance window")
    harness.wait_message("turned the kill switch on for every service: maintenance window")
    _home(harness, ALICE, "kill switch: on for every service")  # republished after the change
    harness.command(CAROL, "freeze on checkoutservice release night")
    harness.wait_message("turned the freeze on for checkoutservice: release night")
    assert [e.reason for e in _audit(harness, "freeze_on", "allowed")] == [
        "freeze on for checkoutservice: release night"
    ]

    # the freeze form from App Home, by a freeze override role: the channel hears of it
    assert surfaces.open_home(harness.driver, user=CAROL).ok
    _home(harness, CAROL, "release night")
    assert surfaces.click_view(harness.driver, user=CAROL, action_id="home_freeze_off").ok
    form = _modal(harness, CAROL, "safety_switch")
    values = {
        "service": {"service": {"type": "static_select", "selected_option": {"value": "checkoutservice"}}},
        "reason": {"reason": {"type": "plain_text_input", "value": "released"}},
    }
    assert harness.driver.submit_view(user=CAROL, view_id=form["id"], values=values).ok
    assert form["id"] not in harness.sandbox.workspace.views
    harness.wait_message("turned the freeze off for checkoutservice: released")


def _pending_failover(harness: Harness) -> tuple[dict[str, Any], int]:
    """An incident whose high-risk failover has one approval of two (Carol's): pending."""
    harness.post_alert("generic", generic("ServiceDown", "redis-cart"))
    card = harness.wait_card("INC-1", lambda b: "failover_datastore" in b)
    n = next(
        int(b["block_id"].split("-")[1])
        for b in card["blocks"]
        if b.get("block_id", "").startswith("text-") and "failover_datastore" in b["text"]["text"]
    )
    harness.click(CAROL, card, f"approve:{n}")
    return harness.wait_card("INC-1", lambda b: "1 of 2 approvals" in b and f"cancel:{n}" in b), n


def test_dry_run_shows_the_plan_and_runs_nothing(harness: Harness) -> None:
    harness.post_alert("generic", generic("ServiceDown", "redis-cart"))
    card = harness.wait_card("INC-1", lambda b: "failover_datastore" in b and "dryrun:" in b)
    n = next(
        int(b["block_id"].split("-")[1])
        for b in card["blocks"]
        if b.get("block_id", "").startswith("text-") and "failover_datastore" in b["text"]["text"]
    )
    harness.click(ALICE, card, f"dryrun:{n}")
    text = harness.wait_ephemeral(ALICE, "Dry run of failover_datastore on redis-cart")
    assert "would call" in text and "Nothing ran" in text
    assert harness.world.applied == []
    entry = _audit(harness, "dry_run", "info")[0]
    assert entry.actor == ALICE and entry.target == "redis-cart"


def test_cancel_by_a_non_requester_is_refused_and_a_lead_cancels(harness: Harness) -> None:
    card, n = _pending_failover(harness)
    harness.click(BOB, card, f"cancel:{n}")  # on call: neither the requester nor an approver of high risk
    harness.wait_ephemeral(BOB, "neither the requester nor an approver")
    assert _audit(harness, "cancel", "denied")
    harness.click(DAVE, card, f"cancel:{n}")
    harness.wait_ephemeral(DAVE, "cancelled")
    harness.wait_card("INC-1", lambda b: "cancelled" in b)
    assert harness.world.applied == [] and _audit(harness, "cancel", "allowed")


def test_app_home_shows_the_approvals_a_viewer_may_give_and_not_others(harness: Harness) -> None:
    _pending_failover(harness)
    surfaces.open_home(harness.driver, user=DAVE)
    surfaces.open_home(harness.driver, user=ALICE)
    dave = _home(harness, DAVE, "failover_datastore")
    assert "home_approve" in dave and "1 of 2" in dave
    alice = _home(harness, ALICE, "Approvals you may give now")
    assert "failover_datastore" not in alice and "Nothing waits for your approval" in alice
    assert surfaces.open_home(harness.driver, user=CAROL).ok
    carol = _home(harness, CAROL, "Your open incidents")  # she approved: involved, nothing left to approve
    assert "INC-1" in carol and "home_approve" not in carol

    surfaces.click_view(harness.driver, user=DAVE, action_id="home_approve")
    _home(harness, DAVE, "running")
    harness.wait_card("INC-1", lambda b: "executed" in b)
    assert harness.world.applied == [("failover_datastore", "redis-cart", {})]
    _home(harness, DAVE, "Nothing waits for your approval")
