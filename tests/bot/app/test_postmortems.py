"""The postmortem review end to end through the Slack sandbox: drafted on resolve, reviewed, published, v2."""

from __future__ import annotations

import json
from typing import Any

from remediation.audit.service import entries
from remediation.postmortem import service as postmortems
from tests.bot.conftest import ALICE, BOB, CAROL, Harness, generic
from tests.bot.sandbox.conftest import wait_for


def _reply(harness: Harness, card: dict[str, Any], contains: str) -> dict[str, Any]:
    """Wait for the newest thread reply of the card whose text or blocks contain ``contains``."""

    def found() -> dict[str, Any] | None:
        hits = [
            r
            for r in harness.replies(card["ts"])
            if contains in r.get("text", "") + json.dumps(r.get("blocks", []))
        ]
        return hits[-1] if hits else None

    return dict(wait_for(found))


def _modal(harness: Harness, user: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        views = [v for v in harness.sandbox.workspace.views.values() if v["user"] == user]
        return views[-1] if views else None

    return dict(wait_for(found))


def _typed(block: str, text: str) -> dict[str, Any]:
    return {block: {block: {"type": "plain_text_input", "value": text}}}


def test_drafted_on_resolve_reviewed_in_slack_published_and_edited_to_version_two(harness: Harness) -> None:
    harness.post_alert("generic", generic("HighErrorRate", "checkoutservice", value=0.3))
    card = harness.card_for("INC-1")
    harness.command(ALICE, "postmortem INC-1")
    harness.wait_ephemeral(ALICE, "still open")  # no postmortem before it resolves
    harness.command(BOB, "resolve INC-1")
    drafted = _reply(harness, card, "Postmortem drafted: INC-1")
    ids = [e["action_id"] for b in drafted["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert ids == ["pm_edit", "pm_signoff", "pm_publish"]

    harness.command(ALICE, f"postmortem INC-1 review <@{BOB}> <@{CAROL}>")
    _reply(harness, card, "to review the postmortem")
    harness.driver.click(user=ALICE, channel="incidents", message_ts=drafted["ts"], action_id="pm_edit")
    modal = _modal(harness, ALICE)
    assert modal["callback_id"] == "pm_edit" and modal["private_metadata"] == "INC-1"
    values = {
        **_typed("summary", "Checkout failed; ünïcødé ✓ <!channel> *bold*"),
        **_typed("root_cause", "v2.4.1 dropped the tax client"),
        **_typed("contributing_factors", "no canary\nalerts paged late"),
        **_typed("action_items", "add a canary | U0ALICE001 | 2026-04-01"),
        "reviewers": {"reviewers": {"type": "multi_users_select", "selected_users": [BOB, CAROL]}},
    }
    delivery = harness.driver.submit_view(user=ALICE, view_id=modal["id"], values=values)
    assert delivery.ok and modal["id"] not in harness.sandbox.workspace.views  # saved, closed
    edited = _reply(harness, card, "edited the postmortem")
    assert "<!channel>" not in json.dumps(edited)

    harness.command(BOB, "postmortem INC-1 comment looks right <@U0DAVE0004> <b>")
    comment = _reply(harness, card, "on the postmortem")
    assert "&lt;b&gt;" in comment["text"]
    harness.driver.click(user=BOB, channel="incidents", message_ts=drafted["ts"], action_id="pm_signoff")
    _reply(harness, card, f"<@{BOB}> signed off")
    harness.command(ALICE, "postmortem INC-1 publish")
    harness.wait_ephemeral(ALICE, "waiting for the sign-off of <@U0CAROL003>")
    harness.command(CAROL, "postmortem INC-1 signoff")
    _reply(harness, card, f"<@{CAROL}> signed off")  # commands run after their acks: publish waits for it
    harness.driver.click(user=CAROL, channel="incidents", message_ts=drafted["ts"], action_id="pm_publish")
    published = _reply(harness, card, "published the postmortem (version 1)")
    assert published

    harness.driver.click(user=CAROL, channel="incidents", message_ts=drafted["ts"], action_id="pm_edit")
    again = _modal(harness, CAROL)
    harness.driver.submit_view(user=CAROL, view_id=again["id"], values=_typed("summary", "second thoughts"))
    _reply(harness, card, "edited the postmortem (version 2)")
    harness.command(ALICE, "postmortems")
    listed = harness.wait_ephemeral(ALICE, "Recent postmortems")
    assert "INC-1" in listed and "v2" in listed

    with harness.services.sessions() as s:
        v1 = postmortems.report(db_session=s, incident_id="INC-1", version=1)
        v2 = postmortems.report(db_session=s, incident_id="INC-1")
        steps = [
            e.event for e in entries(db_session=s, incident_id="INC-1") if e.event.startswith("postmortem_")
        ]
    assert (v1["status"], v1["version"], v1["signed_off_by"]) == ("published", 1, [BOB, CAROL])
    assert v1["summary"].startswith("Checkout failed; ünïcødé") and v1["action_items"][0]["owner"] == ALICE
    assert v1["root_cause"]["recorded"] == {"text": "v2.4.1 dropped the tax client"}
    assert (v2["status"], v2["version"], v2["summary"]) == ("draft", 2, "second thoughts")
    assert steps == ["postmortem_draft", "postmortem_review", "postmortem_edit", "postmortem_comment",
                     "postmortem_signoff", "postmortem_signoff", "postmortem_publish", "postmortem_edit"]  # fmt: skip


def test_reminders_go_to_the_thread_of_postmortems_left_in_review(harness: Harness) -> None:
    from bot.app.postmortems import remind

    harness.command(ALICE, "declare cartservice Cart is slow")
    card = harness.card_for("INC-1")
    harness.command(ALICE, "resolve INC-1")
    _reply(harness, card, "Postmortem drafted")
    harness.command(ALICE, f"postmortem INC-1 review <@{BOB}>")
    _reply(harness, card, "to review the postmortem")
    assert remind(harness.services) == []  # not yet a day
    assert remind(harness.services, after_s=0) == ["INC-1"]
    harness.app.worker.wake()
    assert f"<@{BOB}>, please review" in _reply(harness, card, "waited in review")["text"]
