"""The page and the page's actions: what a person in the browser does reaches the app as Slack's requests."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from slack_bolt import Ack, App, Respond

from bot.sandbox import SlackSandbox
from tests.bot.sandbox.conftest import ALICE, BOB, ServedApp, control, wait_for

Build = Callable[[Callable[[App, ServedApp], None]], ServedApp]


def fetch(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.headers["Content-Type"], resp.read().decode()


def test_page_and_its_assets_are_served(sandbox: SlackSandbox) -> None:
    status, ctype, html = fetch(sandbox.url)
    assert status == 200 and ctype.startswith("text/html")
    assert 'id="composer"' in html and "/static/sandbox.js" in html
    _, js_type, js = fetch(sandbox.url + "static/sandbox.js")
    assert js_type.startswith("text/javascript") and "/_sandbox/ui" in js and "/_sandbox/act/" in js
    assert fetch(sandbox.url + "static/sandbox.css")[0] == 200
    with pytest.raises(urllib.error.HTTPError) as missing:
        fetch(sandbox.url + "static/../workspace.py")
    assert missing.value.code == 404


def test_ui_bundle_nests_replies_and_shows_only_the_viewers_ephemerals(sandbox: SlackSandbox) -> None:
    ws = sandbox.workspace
    card = ws.post(channel_id="C0INCIDENT", text="card", blocks=[], user=ws.bot_user_id)
    ws.post(channel_id="C0INCIDENT", text="timeline", blocks=[], user=ws.bot_user_id, thread_ts=card.ts)
    ws.post_ephemeral(channel_id="C0INCIDENT", user=ALICE, text="for alice", blocks=[], source="test")
    ws.post_ephemeral(channel_id="C0INCIDENT", user=BOB, text="for bob", blocks=[], source="test")
    ui = control(sandbox, f"ui?channel=incidents&user={ALICE}", method="GET")
    assert [m["text"] for m in ui["messages"]] == ["card"]
    assert [r["text"] for r in ui["messages"][0]["replies"]] == ["timeline"]
    assert [e["text"] for e in ui["ephemerals"]] == ["for alice"]
    assert ui["app_connected"] is False
    later = control(sandbox, f"ui?channel=incidents&user={ALICE}", method="GET")
    assert later["version"] == ui["version"]  # nothing changed, so the page skips the redraw


def test_page_actions_without_an_app_are_refused(sandbox: SlackSandbox) -> None:
    with pytest.raises(urllib.error.HTTPError) as exc:
        control(sandbox, "act/command", {"user": ALICE, "channel": "incidents", "text": "/remediate help"})
    assert exc.value.code == 400


def card_app(app: App, served: ServedApp) -> None:
    @app.command("/remediate")
    def remediate(ack: Ack, respond: Respond, command: dict[str, Any]) -> None:
        ack()
        respond(
            response_type="in_channel",
            text="card",
            blocks=[
                {"type": "header", "text": {"type": "plain_text", "text": "INC-1 checkout"}},
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "action_id": "approve",
                            "text": {"type": "plain_text", "text": "Approve"},
                        }
                    ],
                },
            ],
        )

    @app.action("approve")
    def approve(ack: Ack, respond: Respond, body: dict[str, Any]) -> None:
        ack()
        respond(replace_original=True, text=f"approved by {body['user']['name']}")

    @app.event("app_mention")
    def mention(event: dict[str, Any], say: Any) -> None:
        say(text="on it", thread_ts=event["ts"])


def test_person_types_a_command_then_clicks_approve(sandbox: SlackSandbox, serve_app: Build) -> None:
    serve_app(card_app)
    answer = control(
        sandbox, "act/command", {"user": ALICE, "channel": "C0INCIDENT", "text": "/remediate declare x"}
    )
    assert answer["delivery"]["ok"] is True and answer["delivery"]["status"] == 200
    card = wait_for(lambda: control(sandbox, "ui?channel=C0INCIDENT", method="GET")["messages"])[0]
    assert card["blocks"][0]["text"]["text"] == "INC-1 checkout"
    clicked = control(
        sandbox, "act/click", {"user": BOB, "channel": "C0INCIDENT", "ts": card["ts"], "action_id": "approve"}
    )
    assert clicked["delivery"]["ok"] is True
    wait_for(
        lambda: (
            control(sandbox, "messages?channel=C0INCIDENT", method="GET")["messages"][0]["text"]
            == "approved by bob"
        )
    )
    kinds = [d["kind"] for d in control(sandbox, "deliveries", method="GET")["deliveries"]]
    assert kinds == ["command", "block_actions"]


def test_person_mentions_the_bot_and_gets_a_thread_reply(sandbox: SlackSandbox, serve_app: Build) -> None:
    serve_app(card_app)
    control(
        sandbox,
        "act/message",
        {"user": ALICE, "channel": "incidents", "text": "@remediate what's wrong with checkout?"},
    )
    messages = wait_for(lambda: [m for m in sandbox.workspace.messages["C0INCIDENT"] if m.thread_ts])
    assert messages[0].text == "on it"
    root = sandbox.workspace.messages["C0INCIDENT"][0]
    assert root.user == ALICE and root.text.startswith("<@U0REMBOT01>") and messages[0].thread_ts == root.ts
