"""Who is calling and who is there: tokens, `auth.test`, `apps.connections.open`, `users.*`, `usergroups.*`.

A bot token (`xoxb-`) may call every Web API method but `apps.connections.open`, which only an
app-level token (`xapp-`, Socket Mode) may call; Slack's errors are `not_authed`, `invalid_auth`
and `not_allowed_token_type`.
"""

from __future__ import annotations

from typing import Any

from bot.sandbox.config import WorkspaceConfig
from bot.sandbox.errors import ApiError
from bot.sandbox.socket_mode import SocketModeHub
from bot.sandbox.webapi.args import Args
from bot.sandbox.workspace import Workspace

APPS_CONNECTIONS_OPEN = "apps.connections.open"


def token_error(config: WorkspaceConfig, method: str, token: str | None) -> str | None:
    """Return Slack's error for a token that may not call `method`, or None when it may."""
    if not token:
        return "not_authed"
    app_method = method == APPS_CONNECTIONS_OPEN
    if token in (config.bot_tokens if app_method else config.app_tokens):
        return "not_allowed_token_type"
    if token not in (config.app_tokens if app_method else config.bot_tokens):
        return "invalid_auth"
    return None


def apps_connections_open(hub: SocketModeHub, base_url: str) -> dict[str, Any]:
    """Hand out a one-use Socket Mode URL (the one method for app-level tokens; not rate limited here)."""
    return {"ok": True, "url": hub.issue_url(base_url)}


def auth_test(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Identify the bot and its workspace."""
    cfg = ws.config
    return {
        "ok": True,
        "url": f"https://{cfg.team_domain}.slack.com/",
        "team": cfg.team_name,
        "user": cfg.bot_name,
        "team_id": cfg.team_id,
        "user_id": cfg.bot_user_id,
        "bot_id": cfg.bot_id,
        "is_enterprise_install": False,
    }


def users_info(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Return one user."""
    user = ws.users.get(args.text("user", error="user_not_found"))
    if user is None:
        raise ApiError("user_not_found")
    return {"ok": True, "user": ws.user_json(user)}


def usergroups_users_list(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Return the members of a user group."""
    group = ws.usergroups.get(args.text("usergroup", error="no_such_subteam"))
    if group is None:
        raise ApiError("no_such_subteam")
    return {"ok": True, "users": list(group.users)}
