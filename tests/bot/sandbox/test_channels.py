"""The sandbox's conversations.create / invite / archive through the real slack_sdk WebClient."""

from __future__ import annotations

import dataclasses

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.sandbox import SandboxOptions, SlackSandbox
from bot.sandbox.config import BOT_SCOPES, WorkspaceConfig
from tests.bot.sandbox.conftest import ALICE

BOB, NOBODY = "U0BOB00002", "U0NOBODY99"


def error_of(exc: pytest.ExceptionInfo[SlackApiError]) -> str:
    return str(exc.value.response["error"])


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("", "invalid_name_required"),
        ("x" * 81, "invalid_name_maxlength"),
        ("Inc-1-Upper", "invalid_name_specials"),
        ("inc 1", "invalid_name_specials"),
        ("inc.1", "invalid_name_specials"),
        ("---", "invalid_name_punctuation"),
        ("general", "name_taken"),
    ],
)
def test_create_checks_names_like_slack(client: WebClient, name: str, error: str) -> None:
    with pytest.raises(SlackApiError) as refused:
        client.conversations_create(name=name)
    assert error_of(refused) == error


def test_create_invite_post_archive(client: WebClient, sandbox: SlackSandbox) -> None:
    made = client.conversations_create(name="inc-1-" + "a" * 74)["channel"]
    assert made["name"] == "inc-1-" + "a" * 74 and made["is_archived"] is False
    assert made["creator"] == sandbox.workspace.bot_user_id and made["is_member"] is True
    with pytest.raises(SlackApiError) as taken:
        client.conversations_create(name=made["name"])
    assert error_of(taken) == "name_taken"

    with pytest.raises(SlackApiError) as unknown:
        client.conversations_invite(channel=made["id"], users=[ALICE, NOBODY])
    assert error_of(unknown) == "user_not_found"
    forced = client.api_call(
        "conversations.invite", json={"channel": made["id"], "users": f"{ALICE},{NOBODY}", "force": True}
    )
    assert forced["errors"] == [{"ok": False, "error": "user_not_found", "user": NOBODY}]
    with pytest.raises(SlackApiError) as again:
        client.conversations_invite(channel=made["id"], users=ALICE)
    assert error_of(again) == "already_in_channel"
    client.conversations_invite(channel=made["id"], users=BOB)
    info = client.conversations_info(channel=made["id"])["channel"]
    assert info["num_members"] == 3
    listed = client.conversations_list(types="public_channel")["channels"]
    assert made["id"] in [c["id"] for c in listed]

    client.chat_postMessage(channel=made["id"], text="card")
    client.conversations_archive(channel=made["id"])
    assert client.conversations_info(channel=made["id"])["channel"]["is_archived"] is True
    with pytest.raises(SlackApiError) as archived:
        client.chat_postMessage(channel=made["id"], text="late")
    assert error_of(archived) == "is_archived"
    with pytest.raises(SlackApiError) as twice:
        client.conversations_archive(channel=made["id"])
    assert error_of(twice) == "already_archived"
    with pytest.raises(SlackApiError) as reused:
        client.conversations_create(name=made["name"])  # an archived channel keeps its name
    assert error_of(reused) == "name_taken"


def test_private_channel_needs_groups_write() -> None:
    scopes = tuple(s for s in BOT_SCOPES if s != "groups:write")
    options = SandboxOptions(workspace=dataclasses.replace(WorkspaceConfig(), bot_scopes=scopes))
    with SlackSandbox(options) as sandbox:
        client = WebClient(token=sandbox.bot_token, base_url=sandbox.api_url, timeout=5)
        with pytest.raises(SlackApiError) as refused:
            client.conversations_create(name="inc-2-private", is_private=True)
        assert error_of(refused) == "missing_scope"
        assert refused.value.response["needed"] == "groups:write"
        public = client.conversations_create(name="inc-2-public")["channel"]
        assert public["is_private"] is False
