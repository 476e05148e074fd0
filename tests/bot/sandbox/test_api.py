"""The sandbox's stable API (its size, loops and errors are checked with every package in tests/test_package_shape.py)."""

from __future__ import annotations

from pathlib import Path

import bot.sandbox
from bot.sandbox.webapi import METHODS

SANDBOX = Path(bot.sandbox.__file__).resolve().parent
MAX_FILE_LINES = 450
MAX_FUNCTION_LINES = 80


def test_the_public_api_is_unchanged() -> None:
    assert sorted(bot.sandbox.__all__) == [
        "AppDriver",
        "Attempt",
        "ChannelSpec",
        "Delivery",
        "DeliveryError",
        "SandboxError",
        "SandboxOptions",
        "SlackSandbox",
        "UserSpec",
        "UsergroupSpec",
        "Workspace",
        "WorkspaceConfig",
        "WorkspaceConfigError",
    ]
    assert all(getattr(bot.sandbox, name) is not None for name in bot.sandbox.__all__)


def test_one_dispatcher_table_names_every_web_api_method() -> None:
    assert sorted(METHODS) == [
        "auth.test",
        "chat.getPermalink",
        "chat.postEphemeral",
        "chat.postMessage",
        "chat.update",
        "conversations.archive",
        "conversations.create",
        "conversations.history",
        "conversations.info",
        "conversations.invite",
        "conversations.join",
        "conversations.list",
        "conversations.replies",
        "usergroups.list",
        "usergroups.users.list",
        "users.info",
        "users.lookupByEmail",
        "views.open",
        "views.publish",
        "views.update",
    ]
