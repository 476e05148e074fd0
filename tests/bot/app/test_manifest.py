"""The Slack manifest names exactly what the app listens to."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.app import modals
from bot.app.listeners import COMMAND

MANIFEST = Path(__file__).resolve().parents[3] / "deploy" / "slack" / "manifest.yaml"


def test_manifest_matches_the_app() -> None:
    doc = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    commands = doc["features"]["slash_commands"]
    assert [c["command"] for c in commands] == [COMMAND]
    settings = doc["settings"]
    urls = {
        commands[0]["url"],
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
    }
    assert len(urls) == 1 and urls.pop().endswith("/slack/events")
    assert settings["event_subscriptions"]["bot_events"] == [
        "app_mention",
        "app_home_opened",
        "subteam_members_changed",
    ]
    assert doc["features"]["app_home"]["home_tab_enabled"] is True
    shortcuts = {s["callback_id"]: s["type"] for s in doc["features"]["shortcuts"]}
    assert shortcuts == {modals.DECLARE: "global", modals.FROM_MESSAGE: "message"}
    assert settings["interactivity"]["is_enabled"] is True
    assert sorted(doc["oauth_config"]["scopes"]["bot"]) == [
        "app_mentions:read",
        "channels:history",  # the outbox reads a post back after a lost answer
        "channels:manage",  # incident channels: create, invite, archive
        "channels:read",
        "chat:write",
        "commands",
        "groups:history",
        "groups:read",
        "groups:write",  # private incident channels
        "usergroups:read",  # RBAC groups from Slack user groups (docs/safety.md)
        "users:read",
        "users:read.email",  # on-call schedules name people by e-mail
    ]
