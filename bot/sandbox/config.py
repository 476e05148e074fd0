"""What the sandbox workspace starts with: its identity, users, channels and usergroups (`WorkspaceConfig`).

The defaults are a small team (alice, bob, carol, dave) with #incidents, #general, #random and a
private #sre-leads; `load_workspace_config` reads a JSON file over them (docs/sandbox.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.sandbox.errors import WorkspaceConfigError


@dataclass(frozen=True)
class UserSpec:
    """A person (or bot) in the workspace."""

    id: str
    name: str
    real_name: str
    is_bot: bool = False
    is_admin: bool = False
    email: str = ""  # `users.lookupByEmail`; none: <name>@example.com


@dataclass(frozen=True)
class ChannelSpec:
    """A conversation and who is in it at start (`bot` true puts the app's bot user in it)."""

    id: str
    name: str
    members: tuple[str, ...]
    is_private: bool = False
    bot: bool = True
    topic: str = ""


@dataclass(frozen=True)
class UsergroupSpec:
    """A user group (`@oncall`) and its members."""

    id: str
    handle: str
    name: str
    users: tuple[str, ...]


# The bot token's scopes, as deploy/slack/manifest.yaml asks for them; every Web API answer to a bot
# token lists them in its `X-OAuth-Scopes` header, as Slack's does (`remediate doctor` reads it).
BOT_SCOPES = (
    "app_mentions:read",
    "chat:write",
    "commands",
    "channels:history",
    "groups:history",
    "channels:read",
    "groups:read",
    "usergroups:read",
    "users:read",
    "users:read.email",
    "channels:manage",
    "groups:write",
)


@dataclass(frozen=True)
class WorkspaceConfig:
    """The fixed identity of the sandbox workspace and its starting members."""

    bot_tokens: tuple[str, ...] = ("xoxb-sandbox-token",)
    app_tokens: tuple[str, ...] = ("xapp-sandbox-token",)
    team_id: str = "T0SANDBOX"
    team_domain: str = "remediate-sandbox"
    team_name: str = "remediate sandbox"
    app_id: str = "A0REMEDIATE"
    bot_user_id: str = "U0REMBOT01"
    bot_id: str = "B0REMBOT01"
    bot_name: str = "remediate"
    verification_token: str = "sandbox-verification-token"
    users: tuple[UserSpec, ...] = (
        UserSpec("U0ALICE001", "alice", "Alice Oncall"),
        UserSpec("U0BOB00002", "bob", "Bob Responder"),
        UserSpec("U0CAROL003", "carol", "Carol Lead", is_admin=True),
        UserSpec("U0DAVE0004", "dave", "Dave Developer"),
    )
    channels: tuple[ChannelSpec, ...] = (
        ChannelSpec("C0INCIDENT", "incidents", ("U0ALICE001", "U0BOB00002", "U0CAROL003", "U0DAVE0004")),
        ChannelSpec("C0GENERAL1", "general", ("U0ALICE001", "U0BOB00002", "U0CAROL003", "U0DAVE0004")),
        ChannelSpec("C0RANDOM01", "random", ("U0ALICE001", "U0DAVE0004"), bot=False),
        ChannelSpec("G0SRELEADS", "sre-leads", ("U0CAROL003",), is_private=True, bot=False),
    )
    usergroups: tuple[UsergroupSpec, ...] = (
        UsergroupSpec("S0ONCALL01", "oncall", "On-call engineers", ("U0ALICE001", "U0BOB00002")),
        UsergroupSpec("S0SRELEAD1", "sre-leads", "SRE leads", ("U0CAROL003",)),
    )
    trigger_ttl_s: float = 3.0
    response_url_ttl_s: float = 1800.0
    response_url_max_uses: int = 5
    seed: int = 0
    bot_scopes: tuple[str, ...] = BOT_SCOPES


def load_workspace_config(path: Path, *, bot_tokens: tuple[str, ...] | None = None) -> WorkspaceConfig:
    """Read a workspace JSON file (team, users, channels, usergroups) over the defaults."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WorkspaceConfigError(f"workspace file {path}: cannot read it ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise WorkspaceConfigError(f"workspace file {path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise WorkspaceConfigError(f"workspace file {path}: expected a JSON object")
    base = WorkspaceConfig()
    values: dict[str, Any] = {}
    try:
        for key in ("team_id", "team_domain", "team_name", "app_id", "bot_user_id", "bot_id", "bot_name"):
            if key in raw:
                values[key] = str(raw[key])
        if "bot_scopes" in raw:
            values["bot_scopes"] = tuple(str(s) for s in raw["bot_scopes"])
        if "users" in raw:
            values["users"] = tuple(UserSpec(**u) for u in raw["users"])
        if "channels" in raw:
            values["channels"] = tuple(
                ChannelSpec(**{**c, "members": tuple(c.get("members", ()))}) for c in raw["channels"]
            )
        if "usergroups" in raw:
            values["usergroups"] = tuple(
                UsergroupSpec(**{**g, "users": tuple(g.get("users", ()))}) for g in raw["usergroups"]
            )
    except TypeError as exc:
        raise WorkspaceConfigError(
            f"workspace file {path}: {exc}; see docs/sandbox.md for the fields of users, channels, usergroups"
        ) from None
    unknown = sorted(set(raw) - {*values, "users", "channels", "usergroups"})
    if unknown:
        raise WorkspaceConfigError(f"workspace file {path}: unknown key(s) {', '.join(unknown)}")
    if bot_tokens:
        values["bot_tokens"] = bot_tokens
    return WorkspaceConfig(**{**base.__dict__, **values})
