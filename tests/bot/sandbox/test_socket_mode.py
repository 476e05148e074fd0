"""Socket Mode in the sandbox: `apps.connections.open`, the websocket link, envelopes, acks, redelivery."""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import websocket
from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.app.socket_mode import close_socket_mode, open_socket_mode
from bot.sandbox import Delivery, SandboxOptions, SlackSandbox
from tests.bot.sandbox.conftest import ALICE, control, wait_for


def _open_url(sandbox: SlackSandbox, token: str) -> str:
    return str(WebClient(base_url=sandbox.api_url, timeout=5).apps_connections_open(app_token=token)["url"])


def _connect(sandbox: SlackSandbox) -> websocket.WebSocket:
    link = websocket.create_connection(_open_url(sandbox, sandbox.app_token), timeout=5)
    hello = json.loads(link.recv())
    assert hello["type"] == "hello" and hello["connection_info"] == {"app_id": "A0REMEDIATE"}
    return link


def _in_background(fn: Any, **kwargs: Any) -> list[Delivery]:
    """Run a driver call on a thread (it blocks until acked); the list gets its delivery."""
    out: list[Delivery] = []
    thread = threading.Thread(target=lambda: out.append(fn(**kwargs)), daemon=True)
    thread.start()
    return out


@pytest.mark.parametrize(
    ("token", "error"),
    [("xoxb-sandbox-token", "not_allowed_token_type"), ("xapp-unknown", "invalid_auth")],
)
def test_connections_open_refuses_other_tokens(sandbox: SlackSandbox, token: str, error: str) -> None:
    with pytest.raises(SlackApiError) as refused:
        _open_url(sandbox, token)
    assert refused.value.response.status_code == 200 and refused.value.response["error"] == error


def test_connections_open_issues_a_single_use_ticket(sandbox: SlackSandbox) -> None:
    url = _open_url(sandbox, sandbox.app_token)
    assert url.startswith(sandbox.url.replace("http://", "ws://") + "link/?ticket=")
    # the app-level token is for apps.connections.open only
    with pytest.raises(SlackApiError) as refused:
        WebClient(token=sandbox.app_token, base_url=sandbox.api_url).auth_test()
    assert refused.value.response["error"] == "not_allowed_token_type"
    link = websocket.create_connection(url, timeout=5)
    assert json.loads(link.recv())["num_connections"] == 1
    with pytest.raises(websocket.WebSocketBadStatusException) as again:
        websocket.create_connection(url, timeout=5)
    assert again.value.status_code == 401
    link.close()


def test_envelope_shape_and_ack_payload(sandbox: SlackSandbox) -> None:
    link = _connect(sandbox)
    assert sandbox.driver is not None and sandbox.driver.transport == "socket"
    out = _in_background(sandbox.driver.slash_command, user=ALICE, channel="incidents", text="help")
    envelope = json.loads(link.recv())
    assert set(envelope) == {"envelope_id", "type", "payload", "accepts_response_payload"}
    assert envelope["type"] == "slash_commands" and envelope["accepts_response_payload"] is True
    assert envelope["payload"]["command"] == "/remediate" and envelope["payload"]["text"] == "help"
    assert envelope["payload"]["user_id"] == ALICE and envelope["payload"]["response_url"]
    link.send(json.dumps({"envelope_id": envelope["envelope_id"], "payload": {"text": "here is help"}}))
    delivery = wait_for(lambda: out and out[0])
    assert delivery.ok and delivery.summary()["transport"] == "socket"
    assert delivery.attempts[0].envelope_id == envelope["envelope_id"]
    # the ack's payload is shown to the person, as an HTTP ack body would be
    assert [e.text for e in sandbox.workspace.ephemerals] == ["here is help"]
    link.close()


@pytest.fixture
def impatient() -> Iterator[SlackSandbox]:
    with SlackSandbox(SandboxOptions(ack_timeout_s=0.1, retry_backoff_s=(0.0, 0.0, 0.0))) as running:
        yield running


def test_unacked_event_is_redelivered_then_recorded_as_failed(impatient: SlackSandbox) -> None:
    link = _connect(impatient)
    assert impatient.driver is not None
    event = {"type": "app_mention", "user": ALICE, "text": "<@U0REMBOT01> status", "channel": "C0INCIDENT"}
    out = _in_background(impatient.driver.event, event=event, event_id="Ev0SOCKET01")
    envelopes = [json.loads(link.recv()) for _ in range(4)]  # never acked
    assert [(e["retry_attempt"], e["retry_reason"]) for e in envelopes] == [
        (0, ""),
        (1, "timeout"),
        (2, "timeout"),
        (3, "timeout"),
    ]
    assert {e["type"] for e in envelopes} == {"events_api"}
    assert {e["accepts_response_payload"] for e in envelopes} == {False}
    assert {e["payload"]["event_id"] for e in envelopes} == {"Ev0SOCKET01"}
    assert len({e["envelope_id"] for e in envelopes}) == 4
    delivery = wait_for(lambda: out and out[0])
    assert not delivery.ok and delivery.retries == 3 and delivery.attempts[-1].failure == "timeout"
    recorded = control(impatient, "deliveries", method="GET")["deliveries"][-1]
    assert recorded["ok"] is False and recorded["failure"] == "timeout" and recorded["transport"] == "socket"
    # an ack after the deadline is too late
    link.send(json.dumps({"envelope_id": envelopes[0]["envelope_id"]}))
    wait_for(lambda: impatient.socket_mode.late_acks)
    link.close()


def test_slash_command_without_a_connection_fails_like_slack(impatient: SlackSandbox) -> None:
    _connect(impatient).close()
    wait_for(lambda: impatient.socket_mode.connections == 0)
    assert impatient.driver is not None
    delivery = impatient.driver.slash_command(user=ALICE, channel="incidents", text="help")
    assert not delivery.ok and delivery.attempts[-1].failure == "connection_failed"
    assert impatient.workspace.ephemerals[-1].text == '/remediate failed with the error "dispatch_failed"'


def test_ping_is_answered_and_close_is_clean(sandbox: SlackSandbox) -> None:
    link = _connect(sandbox)
    link.ping(b"are-you-there")
    opcode, frame = link.recv_data_frame(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_PONG and frame.data == b"are-you-there"
    assert control(sandbox, "socket_mode", method="GET")["connections"] == 1
    link.close()
    wait_for(lambda: sandbox.socket_mode.connections == 0)


def test_unmasked_client_frame_is_a_protocol_error(sandbox: SlackSandbox) -> None:
    url = _open_url(sandbox, sandbox.app_token)
    path = url.split(str(sandbox.url.split("//")[1]), 1)[1]
    host, port = sandbox.url.split("//")[1].rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(
            f"GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += raw.recv(4096)
        head, _, rest = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101") and b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
        raw.sendall(bytes([0x81, 2]) + b"hi")  # a text frame without a mask
        data = rest
        while True:
            chunk = raw.recv(4096)
            if not chunk:
                break
            data += chunk
    # hello first, then a close frame with 1002 (protocol error)
    close_at = data.index(bytes([0x88]))
    assert struct.unpack("!H", data[close_at + 2 : close_at + 4])[0] == 1002


def test_bolt_socket_mode_handler_round_trips(sandbox: SlackSandbox) -> None:
    """slack_sdk's built-in Socket Mode client (what Bolt's SocketModeHandler uses) against the sandbox."""
    client = WebClient(token=sandbox.bot_token, base_url=sandbox.api_url, timeout=5)
    app = App(client=client, signing_secret="", request_verification_enabled=False)
    mentions: list[str] = []

    @app.command("/remediate")
    def on_command(ack: Ack, body: dict[str, Any]) -> None:
        ack(text=f"you said {body['text']}")
        client.chat_postMessage(
            channel=body["channel_id"],
            text="a card",
            blocks=[
                {"type": "section", "text": {"type": "mrkdwn", "text": "a card"}},
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "action_id": "why:1",
                            "text": {"type": "plain_text", "text": "Why"},
                        }
                    ],
                },
            ],
        )

    @app.action("why:1")
    def on_click(ack: Ack, respond: Respond) -> None:
        ack()
        respond(text="because", replace_original=False)

    @app.event("app_mention")
    def on_mention(ack: Ack, event: dict[str, Any]) -> None:
        ack()
        mentions.append(event["text"])

    handler = open_socket_mode(app, sandbox.app_token)
    try:
        wait_for(lambda: sandbox.socket_mode.connections == 1)
        assert sandbox.driver is not None
        command = sandbox.driver.slash_command(user=ALICE, channel="incidents", text="hello")
        assert command.ok, command.summary()
        card = wait_for(lambda: sandbox.workspace.messages["C0INCIDENT"])[-1]
        assert command.json() == {"text": "you said hello"}
        click = sandbox.driver.click(user=ALICE, channel="incidents", message_ts=card.ts, action_id="why:1")
        assert click.ok, click.summary()
        wait_for(lambda: any(e.text == "because" for e in sandbox.workspace.ephemerals))
        [mention] = sandbox.driver.user_message(user=ALICE, channel="incidents", text="@remediate status")
        assert mention.ok and mention.retries == 0
        wait_for(lambda: mentions == ["<@U0REMBOT01> status"])
    finally:
        close_socket_mode(handler)
