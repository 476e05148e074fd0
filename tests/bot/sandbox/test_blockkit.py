"""Block Kit limits, table-driven, and their `invalid_blocks` answer through the Web API."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.sandbox.blockkit import check_blocks


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(action_id: str, text: str = "Approve") -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": text}}


def field(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


CARD: list[dict[str, Any]] = [
    {"type": "header", "text": {"type": "plain_text", "text": "checkout: p99 latency high"}},
    {
        "type": "section",
        "text": field("*SEV2*"),
        "fields": [field("*Service*\ncheckout"), field("*Since*\n10:02")],
    },
    {"type": "divider"},
    {"type": "context", "elements": [field("confidence 0.82 · risk low")]},
    {"type": "actions", "block_id": "s1", "elements": [button("approve:1"), button("reject:1", "Reject")]},
]

VIOLATIONS = [
    ("51 blocks", [{"type": "divider"}] * 51, "must provide no more than 50 items [json-pointer:/blocks]"),
    (
        "section text 3001",
        [section("x" * 3001)],
        "must be less than 3001 characters [json-pointer:/blocks/0/text/text]",
    ),
    (
        "empty section text",
        [section("")],
        "must be more than 0 characters [json-pointer:/blocks/0/text/text]",
    ),
    ("11 fields", [{"type": "section", "fields": [field("f")] * 11}], "must provide no more than 10 items"),
    ("field 2001", [{"type": "section", "fields": [field("x" * 2001)]}], "/blocks/0/fields/0/text"),
    (
        "button text 76",
        [{"type": "actions", "elements": [button("a", "x" * 76)]}],
        "must be less than 76 characters",
    ),
    (
        "action_id 256",
        [{"type": "actions", "elements": [button("a" * 256)]}],
        "/blocks/0/elements/0/action_id",
    ),
    (
        "duplicate action_id",
        [
            {"type": "actions", "elements": [button("approve")]},
            {"type": "actions", "elements": [button("approve")]},
        ],
        "action_id `approve` already exists [json-pointer:/blocks/1/elements/0/action_id]",
    ),
    (
        "duplicate block_id",
        [section("a") | {"block_id": "b"}, section("c") | {"block_id": "b"}],
        "block_id `b` already exists",
    ),
    (
        "26 elements",
        [{"type": "actions", "elements": [button(f"a{i}") for i in range(26)]}],
        "no more than 25 items",
    ),
    (
        "header 151",
        [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}],
        "must be less than 151 characters",
    ),
    ("mrkdwn header", [{"type": "header", "text": field("*x*")}], "must be one of plain_text"),
    ("unknown block", [{"type": "carousel"}], "unsupported type `carousel`"),
    (
        "input in a message",
        [
            {
                "type": "input",
                "label": {"type": "plain_text", "text": "x"},
                "element": {"type": "plain_text_input"},
            }
        ],
        "in messages",
    ),
    (
        "bad button style",
        [{"type": "actions", "elements": [button("a") | {"style": "green"}]}],
        "primary, danger",
    ),
    ("section without text", [{"type": "section"}], "must provide either text or fields"),
]


def test_a_realistic_card_is_accepted() -> None:
    assert check_blocks(CARD) == []
    assert check_blocks([{"type": "divider"}] * 50) == []
    assert check_blocks([section("x" * 3000)]) == []


@pytest.mark.parametrize(("blocks", "reason"), [pytest.param(b, r, id=name) for name, b, r in VIOLATIONS])
def test_each_limit_is_enforced(blocks: list[dict[str, Any]], reason: str) -> None:
    errors = check_blocks(blocks)
    assert any(reason in e for e in errors), errors


def test_violations_come_back_as_invalid_blocks(client: WebClient) -> None:
    assert client.chat_postMessage(channel="incidents", text="card", blocks=CARD)["ok"]
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel="incidents", text="card", blocks=[*CARD, *CARD])
    assert exc.value.response["error"] == "invalid_blocks"
    assert any("already exists" in e for e in exc.value.response["errors"])
    posted = client.chat_postMessage(channel="incidents", text="card", blocks=[*CARD[:4]])
    with pytest.raises(SlackApiError) as upd:
        client.chat_update(channel="C0INCIDENT", ts=posted["ts"], text="card", blocks=[section("x" * 3001)])
    assert upd.value.response["error"] == "invalid_blocks"
    with pytest.raises(SlackApiError) as fmt:
        client.api_call("chat.postMessage", data={"channel": "incidents", "text": "x", "blocks": "[not json"})
    assert fmt.value.response["error"] == "invalid_blocks_format"
