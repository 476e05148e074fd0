"""Request payloads in the shapes Slack sends them (slash commands, Events API envelopes, interactions).

The shapes follow Slack's published samples (the `*Payload.json` files in `../shared/fixtures/slack/`):
the same keys, filled with the sandbox workspace's ids. `fill_blanks` turns such a sample, whose
values are blank, into a deliverable payload.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from bot.sandbox.errors import DeliveryError
from bot.sandbox.workspace import Workspace

OTHER_BOT_ID = "B0OTHERBOT"
_DROP = object()


def slash_command_form(
    ws: Workspace,
    *,
    user: str,
    channel: dict[str, Any],
    command: str,
    text: str,
    response_url: str,
    trigger_id: str,
) -> dict[str, str]:
    """Return the form fields Slack posts for a slash command."""
    return {
        "token": ws.config.verification_token,
        "team_id": ws.team_id,
        "team_domain": ws.config.team_domain,
        "channel_id": channel["id"],
        "channel_name": "directmessage" if channel["is_im"] else channel["name"],
        "user_id": user,
        "user_name": ws.users[user].name,
        "command": command,
        "text": text,
        "api_app_id": ws.config.app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }


def event_envelope(ws: Workspace, event: dict[str, Any], *, event_id: str) -> dict[str, Any]:
    """Wrap an event in the Events API `event_callback` envelope."""
    return {
        "token": ws.config.verification_token,
        "team_id": ws.team_id,
        "context_team_id": ws.team_id,
        "context_enterprise_id": None,
        "api_app_id": ws.config.app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(ws.clock.now()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": ws.team_id,
                "user_id": ws.bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": "4-" + ws.new_id("E", 40).lower(),
    }


def channel_type(channel: dict[str, Any]) -> str:
    """Return the Events API `channel_type` of a channel: channel, group or im."""
    if channel["is_im"]:
        return "im"
    return "group" if channel["is_private"] else "channel"


def message_event(
    ws: Workspace, *, kind: str, user: str, channel: dict[str, Any], text: str, ts: str, thread_ts: str | None
) -> dict[str, Any]:
    """Return a `message` or `app_mention` event for a message a person typed."""
    event: dict[str, Any] = {
        "type": kind,
        "client_msg_id": str(uuid.UUID(int=int(float(ts) * 1_000_000))),
        "user": user,
        "text": text,
        "blocks": [
            {
                "type": "rich_text",
                "block_id": ws.new_id("b", 5).lower(),
                "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}],
            }
        ],
        "team": ws.team_id,
        "channel": channel["id"],
        "event_ts": ts,
        "ts": ts,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    if kind == "message":
        event["channel_type"] = channel_type(channel)
    return event


def interaction_user(ws: Workspace, user: str) -> dict[str, Any]:
    """Return the `user` object of an interaction payload."""
    return {"id": user, "username": ws.users[user].name, "name": ws.users[user].name, "team_id": ws.team_id}


def button_action(
    ws: Workspace, message: dict[str, Any], action_id: str, block_id: str | None
) -> dict[str, Any]:
    """Return the `actions[0]` of a click on a message's button; `DeliveryError` when it has no such button."""
    for block in message.get("blocks", []):
        if block_id is not None and block.get("block_id") != block_id:
            continue
        elements = list(block.get("elements", [])) if block.get("type") == "actions" else []
        if isinstance(block.get("accessory"), dict):
            elements.append(block["accessory"])
        for el in elements:
            if el.get("action_id") == action_id and el.get("type") == "button":
                action = {
                    "action_id": action_id,
                    "block_id": block.get("block_id", ""),
                    "text": el.get("text"),
                    "type": "button",
                    "action_ts": ws.new_ts(),
                }
                for key in ("value", "style", "url"):
                    if key in el:
                        action[key] = el[key]
                return action
    raise DeliveryError(f"no button with action_id {action_id!r} on message {message.get('ts')}")


def block_actions_payload(
    ws: Workspace,
    *,
    user: str,
    channel: dict[str, Any],
    message: dict[str, Any],
    is_ephemeral: bool,
    action: dict[str, Any],
    trigger_id: str,
    response_url: str,
) -> dict[str, Any]:
    """Return the `block_actions` payload Slack sends when a button in a message is clicked."""
    return {
        "type": "block_actions",
        "user": interaction_user(ws, user),
        "api_app_id": ws.config.app_id,
        "token": ws.config.verification_token,
        "container": {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": channel["id"],
            "is_ephemeral": is_ephemeral,
            **({"thread_ts": message["thread_ts"]} if message.get("thread_ts") else {}),
        },
        "trigger_id": trigger_id,
        "team": {"id": ws.team_id, "domain": ws.config.team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel["id"], "name": channel["name"]},
        "message": message,
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [action],
    }


def view_payload(
    ws: Workspace, *, kind: str, user: str, view: dict[str, Any], values: dict[str, Any], trigger_id: str
) -> dict[str, Any]:
    """Return a `view_submission` or `view_closed` payload for an open modal."""
    public = {k: v for k, v in view.items() if k != "user"}
    public["state"] = {"values": values}
    payload: dict[str, Any] = {
        "type": kind,
        "team": {"id": ws.team_id, "domain": ws.config.team_domain},
        "enterprise": None,
        "user": interaction_user(ws, user),
        "api_app_id": ws.config.app_id,
        "token": ws.config.verification_token,
        "view": public,
        "is_enterprise_install": False,
    }
    if kind == "view_submission":
        payload["trigger_id"] = trigger_id
        payload["response_urls"] = []
    else:
        payload["is_cleared"] = False
    return payload


# a blank `type`, by the key that holds it
_TYPE_BY_PARENT = {
    "": "event_callback",
    "view": "modal",
    "message": "message",
    "previous_message": "message",
    "root": "message",
    "container": "message",
    "item": "message",
    "actions": "button",
}


class BlankFiller:
    """Fills the blank values of one of Slack's sample payloads with this workspace's ids.

    Keys decide the value (`user` -> a user id, `ts` -> a fresh timestamp, `response_url` -> a live
    sandbox URL); the parent key disambiguates `id`, `name` and `type`. Enterprise fields become null
    and a blank `subtype` is dropped, as Slack sends them for an ordinary workspace.
    """

    def __init__(
        self,
        ws: Workspace,
        *,
        user: str,
        channel: dict[str, Any],
        trigger_id: Callable[[], str],
        response_url: Callable[[], str],
    ) -> None:
        self.ws = ws
        self.user = user
        self.channel = channel
        self.trigger_id = trigger_id
        self.response_url = response_url

    def fill(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Return a copy of `payload` with every blank value filled."""
        out = self._value(payload, "", "")
        assert isinstance(out, dict)
        return out

    def _value(self, value: Any, key: str, parent: str) -> Any:
        if isinstance(value, dict):
            if key == "enterprise":
                return None
            filled = {k: self._value(v, k, key) for k, v in value.items()}
            return {k: v for k, v in filled.items() if v is not _DROP}
        if isinstance(value, list):
            return [self._value(v, key, parent) for v in value]
        if isinstance(value, str) and value in ("", "0000000000.000000"):
            return self._blank(key, parent)
        return value

    def _simple_values(self) -> dict[str, Callable[[], Any]]:
        """Return the keys whose blank value depends on the key alone, each with how to make its value."""
        ws, cfg = self.ws, self.ws.config
        return {
            "event_id": lambda: "Ev" + ws.new_id("", 10),
            "event_context": lambda: "4-" + ws.new_id("", 40).lower(),
            "client_msg_id": lambda: str(uuid.UUID(int=ws._counter + 1)),
            "token": lambda: cfg.verification_token,
            "bot_access_token": lambda: cfg.bot_tokens[0],
            "trigger_id": self.trigger_id,
            "response_url": self.response_url,
            "api_app_id": lambda: cfg.app_id,
            "app_id": lambda: cfg.app_id,
            "bot_id": lambda: OTHER_BOT_ID,
            "channel": lambda: self.channel["id"],
            "channel_id": lambda: self.channel["id"],
            "channel_name": lambda: self.channel["name"],
            "channel_type": lambda: channel_type(self.channel),
            "username": lambda: ws.users[self.user].name,
            "user_name": lambda: ws.users[self.user].name,
            "domain": lambda: cfg.team_domain,
            "team_domain": lambda: cfg.team_domain,
            "command": lambda: "/remediate",
            "text": lambda: "hello from the sandbox",
            "callback_id": lambda: "sandbox_callback",
            "action_id": lambda: "sandbox_action",
            "block_id": lambda: "sandbox_block",
            "style": lambda: "primary",
            "tab": lambda: "home",
            "reaction": lambda: "white_check_mark",
        }

    def _blank(self, key: str, parent: str) -> Any:
        ws, cfg = self.ws, self.ws.config
        if key in ("enterprise_id", "enterprise_name", "context_enterprise_id"):
            return None
        if key == "subtype":
            return _DROP
        if key == "type":
            return _TYPE_BY_PARENT.get(parent, "plain_text")
        if key.endswith("ts") or key in ("latest_reply", "last_read"):
            return ws.new_ts()
        simple = self._simple_values()
        if key in simple:
            return simple[key]()
        if key in ("team", "team_id", "context_team_id", "user_team", "source_team", "authed_teams") or (
            key.endswith("team_id")
        ):
            return ws.team_id
        if key == "user_id" and parent == "authorizations":
            return ws.bot_user_id
        if key in (
            "user",
            "user_id",
            "item_user",
            "parent_user_id",
            "inviter",
            "authed_users",
        ) or key.endswith("_user"):
            return self.user
        if key == "id":
            return {
                "user": self.user,
                "interactor": self.user,
                "team": ws.team_id,
                "channel": self.channel["id"],
                "view": ws.new_id("V"),
                "bot_profile": OTHER_BOT_ID,
            }.get(parent, ws.new_id("X"))
        if key == "name":
            names = {"user": ws.users[self.user].name, "channel": self.channel["name"], "team": cfg.team_name}
            return names.get(parent, "sandbox")
        if key.endswith("url") or key.startswith("image_") or key in ("permalink", "permalink_public"):
            return "https://example.com/sandbox"
        if key.endswith("date"):
            return "2024-01-01"
        if key.endswith("time"):
            return "12:00"
        return f"sandbox-{key}"
