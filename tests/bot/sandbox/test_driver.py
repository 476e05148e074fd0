"""The driver against a real Bolt app over HTTP: signing, acks, retries, interactions, Slack's samples."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from slack_bolt import Ack, App, BoltResponse, Respond
from slack_sdk import WebClient

from bot.sandbox import DeliveryError, SlackSandbox
from tests.bot.sandbox.conftest import ALICE, BOB, ServedApp, wait_for

FIXTURES = Path(__file__).resolve().parents[4] / "shared" / "fixtures" / "slack"
Build = Callable[[Callable[[App, ServedApp], None]], ServedApp]

CARD = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "*checkout* is slow"}},
    {
        "type": "actions",
        "block_id": "suggestion-1",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "value": "req-1",
                "style": "primary",
                "text": {"type": "plain_text", "text": "Approve"},
            },
            {
                "type": "button",
                "action_id": "reject",
                "value": "req-1",
                "text": {"type": "plain_text", "text": "Reject"},
            },
        ],
    },
]


def command_app(app: App, served: ServedApp) -> None:
    @app.command("/remediate")
    def remediate(ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient) -> None:
        served.seen.append(("command", command))
        if command["text"] == "help":
            ack(text="usage: /remediate help | declare | card | modal")
        elif command["text"] == "card":
            ack()
            client.chat_postMessage(channel=command["channel_id"], text="incident card", blocks=CARD)
        elif command["text"] == "modal":
            ack()
            client.views_open(
                trigger_id=command["trigger_id"],
                view={
                    "type": "modal",
                    "callback_id": "declare",
                    "title": {"type": "plain_text", "text": "Declare"},
                    "submit": {"type": "plain_text", "text": "Declare"},
                    "blocks": [
                        {
                            "type": "input",
                            "block_id": "title",
                            "label": {"type": "plain_text", "text": "Title"},
                            "element": {"type": "plain_text_input", "action_id": "value"},
                        }
                    ],
                },
            )
        else:
            ack()
            respond(text=f"declared: {command['text']}", response_type="in_channel")

    @app.action("approve")
    def approve(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        served.seen.append(("approve", body))
        respond(replace_original=True, text=f"approved by <@{body['user']['id']}>")

    @app.view("declare")
    def declare(ack: Ack, view: dict[str, Any]) -> None:
        title = view["state"]["values"]["title"]["value"]["value"]
        if not title:
            ack(response_action="errors", errors={"title": "a title is required"})
            return
        ack()
        served.seen.append(("declared", title))


def test_signed_slash_command_is_acked_and_ack_body_shown(sandbox: SlackSandbox, serve_app: Build) -> None:
    served = serve_app(command_app)
    assert sandbox.driver is not None
    delivery = sandbox.driver.slash_command(user=ALICE, channel="incidents", text="help")
    assert delivery.ok and delivery.status == 200 and delivery.retries == 0
    assert delivery.ack_ms > 0
    assert served.seen[0][0] == "command"
    command = served.seen[0][1]
    assert command["user_id"] == ALICE and command["channel_id"] == "C0INCIDENT"
    assert command["response_url"].startswith(sandbox.url + "response/")
    assert served.headers[0]["x-slack-signature"].startswith("v0=")
    assert [e.text for e in sandbox.workspace.ephemerals] == [
        "usage: /remediate help | declare | card | modal"
    ]


def test_command_respond_in_channel_goes_through_response_url(
    sandbox: SlackSandbox, serve_app: Build
) -> None:
    serve_app(command_app)
    assert sandbox.driver is not None
    assert sandbox.driver.slash_command(user=BOB, channel="incidents", text="checkout down").ok
    wait_for(lambda: sandbox.workspace.messages["C0INCIDENT"])  # respond() runs after the ack
    assert [m.text for m in sandbox.workspace.messages["C0INCIDENT"]] == ["declared: checkout down"]


def test_forged_and_replayed_requests_are_rejected_by_bolt(sandbox: SlackSandbox, serve_app: Build) -> None:
    served = serve_app(command_app)
    driver = sandbox.driver
    assert driver is not None
    body = "command=%2Fremediate&text=help&user_id=" + ALICE
    forged = driver.send(body, "application/x-www-form-urlencoded", signature="v0=" + "0" * 64)
    assert forged.status == 401 and forged.failure == "http_error"
    old = int(time.time()) - 600
    replayed = driver.send(body, "application/x-www-form-urlencoded", timestamp=old)
    assert replayed.status == 401
    assert served.seen == []


def test_event_retries_carry_slack_headers(sandbox: SlackSandbox, serve_app: Build) -> None:
    def app_failing_twice(app: App, served: ServedApp) -> None:
        @app.middleware
        def fail_first_two(request: Any, next: Callable[[], BoltResponse]) -> BoltResponse:
            if len(served.headers) <= 2:
                return BoltResponse(status=503, body="busy")
            return next()

        @app.event("app_mention")
        def mention(event: dict[str, Any]) -> None:
            served.seen.append(("mention", event))

    served = serve_app(app_failing_twice)
    assert sandbox.driver is not None
    [delivery] = sandbox.driver.user_message(user=ALICE, channel="incidents", text="@remediate status INC-1")
    assert delivery.ok and delivery.retries == 2
    assert [h.get("x-slack-retry-num") for h in served.headers] == [None, "1", "2"]
    assert [h.get("x-slack-retry-reason") for h in served.headers] == [None, "http_error", "http_error"]
    assert [json.loads(b)["event_id"] for b in served.bodies] == [delivery.payload["event_id"]] * 3
    wait_for(lambda: served.seen)
    assert served.seen[0][1]["text"] == "<@U0REMBOT01> status INC-1"


def test_slow_ack_is_a_timeout_and_retried(sandbox: SlackSandbox, serve_app: Build) -> None:
    def slow_first(app: App, served: ServedApp) -> None:
        @app.middleware
        def slow(request: Any, next: Callable[[], BoltResponse]) -> BoltResponse:
            if len(served.headers) == 1:
                time.sleep(2.0)
            return next()

        @app.event("app_mention")
        def mention() -> None:
            pass

    served = serve_app(slow_first)
    driver = sandbox.driver
    assert driver is not None
    driver.ack_timeout_s = 0.5
    delivery = driver.event(
        {
            "type": "app_mention",
            "user": ALICE,
            "text": "<@U0REMBOT01> hi",
            "channel": "C0INCIDENT",
            "ts": "1.000001",
        }
    )
    assert delivery.attempts[0].failure == "http_timeout"
    assert delivery.ok and delivery.retries == 1
    assert served.headers[1]["x-slack-retry-reason"] == "http_timeout"


def test_no_retry_header_and_exhausted_retries(sandbox: SlackSandbox, serve_app: Build) -> None:
    def refusing(app: App, served: ServedApp) -> None:
        @app.middleware
        def refuse(request: Any, next: Callable[[], BoltResponse]) -> BoltResponse:
            served.seen.append(("attempt", request.headers.get("x-slack-retry-num")))
            headers = {"x-slack-no-retry": "1"} if len(served.seen) == 1 else {}
            return BoltResponse(status=500, body="no", headers=headers)

    served = serve_app(refusing)
    driver = sandbox.driver
    assert driver is not None
    event = {"type": "app_mention", "user": ALICE, "text": "hi", "channel": "C0INCIDENT", "ts": "1.000001"}
    first = driver.event(event)
    assert not first.ok and first.retries == 0  # the app said X-Slack-No-Retry: 1
    second = driver.event(event)
    assert not second.ok and second.retries == 3  # Slack gives up after three retries
    assert [s[1] for s in served.seen[1:]] == [None, ["1"], ["2"], ["3"]]


def test_button_click_sends_block_actions_and_respond_replaces(
    sandbox: SlackSandbox, serve_app: Build
) -> None:
    served = serve_app(command_app)
    driver = sandbox.driver
    assert driver is not None
    assert driver.slash_command(user=ALICE, channel="incidents", text="card").ok
    [card] = wait_for(lambda: sandbox.workspace.messages["C0INCIDENT"])
    with pytest.raises(DeliveryError):
        driver.click(user=BOB, channel="incidents", message_ts=card.ts, action_id="no-such-button")
    delivery = driver.click(user=BOB, channel="incidents", message_ts=card.ts, action_id="approve")
    assert delivery.ok
    body = next(s[1] for s in served.seen if s[0] == "approve")
    assert body["type"] == "block_actions"
    assert body["actions"][0] == body["actions"][0] | {
        "action_id": "approve",
        "block_id": "suggestion-1",
        "value": "req-1",
    }
    assert body["container"] == {
        "type": "message",
        "message_ts": card.ts,
        "channel_id": "C0INCIDENT",
        "is_ephemeral": False,
    }
    assert body["message"]["blocks"] == CARD
    assert re.fullmatch(r"\d+\.\d+\.[0-9a-f]+", body["trigger_id"])
    wait_for(lambda: card.text.startswith("approved"))
    assert card.text == f"approved by <@{BOB}>"


def test_modal_open_submit_with_errors_then_success(sandbox: SlackSandbox, serve_app: Build) -> None:
    served = serve_app(command_app)
    driver = sandbox.driver
    assert driver is not None
    assert driver.slash_command(user=ALICE, channel="incidents", text="modal").ok
    [view] = wait_for(lambda: list(sandbox.workspace.views.values()))
    assert view["user"] == ALICE and view["callback_id"] == "declare"
    empty = {"title": {"value": {"type": "plain_text_input", "value": ""}}}
    assert driver.submit_view(user=ALICE, view_id=view["id"], values=empty).ok
    assert sandbox.workspace.views[view["id"]]["errors"] == {"title": "a title is required"}
    filled = {"title": {"value": {"type": "plain_text_input", "value": "checkout down"}}}
    assert driver.submit_view(user=ALICE, view_id=view["id"], values=filled).ok
    assert sandbox.workspace.views == {}
    assert ("declared", "checkout down") in served.seen


def test_url_verification_challenge(sandbox: SlackSandbox, serve_app: Build) -> None:
    serve_app(lambda app, served: None)
    assert sandbox.driver is not None
    assert sandbox.driver.url_verification("abc123").ok


def test_unreachable_app_is_a_failed_delivery(sandbox: SlackSandbox) -> None:
    driver = sandbox.connect_app("http://127.0.0.1:9/slack/events", "s")
    delivery = driver.slash_command(user=ALICE, channel="incidents", text="help")
    assert not delivery.ok and delivery.attempts[0].failure == "connection_failed"
    [eph] = sandbox.workspace.ephemerals
    assert eph.text == '/remediate failed with the error "dispatch_failed"'


def every_listener(app: App, served: ServedApp) -> None:
    anything = re.compile(".*")

    def record(kind: str) -> Callable[..., None]:
        def listener(ack: Ack, body: dict[str, Any]) -> None:
            ack()
            served.seen.append((kind, body))

        return listener

    app.command(anything)(record("command"))
    app.action(anything)(record("action"))
    app.shortcut(anything)(record("shortcut"))
    app.view(anything)(record("view_submission"))
    app.view_closed(anything)(record("view_closed"))
    for event in ("app_home_opened", "app_mention", "message", "member_joined_channel", "reaction_added"):
        app.event(event)(record(event))


SAMPLES = sorted(p.name for p in FIXTURES.glob("*.json")) if FIXTURES.is_dir() else []


@pytest.mark.skipif(not SAMPLES, reason=f"Slack's sample payloads are not at {FIXTURES}")
@pytest.mark.parametrize("name", SAMPLES)
def test_every_slack_sample_is_accepted_after_filling_blanks(
    name: str, sandbox: SlackSandbox, serve_app: Build
) -> None:
    served = serve_app(every_listener)
    assert sandbox.driver is not None
    sample = json.loads((FIXTURES / name).read_text())
    delivery = sandbox.driver.deliver_sample(sample, user=ALICE, channel="incidents")
    assert delivery.status == 200, (delivery.status, delivery.body)
    assert delivery.ok and delivery.retries == 0
    payload = delivery.payload
    wait_for(lambda: served.seen)  # events are dispatched after the ack
    assert served.seen, f"no listener ran for {name}"
    blanks = [key for key, value in _leaves(payload) if value == ""]
    assert blanks == []


def _leaves(value: Any, key: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, k)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v, key)]
    return [(key, value)]
