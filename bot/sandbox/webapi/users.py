"""Who is calling and who is there: tokens, `auth.test`, `apps.connections.open`, `users.*`, `usergroups.*`.

`set_usergroup_members` is what a workspace admin does on Slack's side; it returns the
``subteam_members_changed`` event Slack then sends (the control API's ``act/usergroup`` delivers it).

A bot token (`xoxb-`) may call every Web API method but `apps.connections.open`, which only an
app-level token (`xapp-`, Socket Mode) may call; Slack's errors are `not_authed`, `invalid_auth`
and `not_allowed_token_type`.
"""

from __future__ import annotations

from dataclasses import replace
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


def usergroups_list(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Return the workspace's user groups (with their members when ``include_users`` is true)."""
    with_users = args.flag("include_users")
    groups = []
    for group in ws.usergroups.values():
        item: dict[str, Any] = {"id": group.id, "team_id": ws.team_id, "handle": group.handle,
                                "name": group.name, "user_count": len(group.users)}  # fmt: skip
        if with_users:
            item["users"] = list(group.users)
        groups.append(item)
    return {"ok": True, "usergroups": groups}


def users_lookup_by_email(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Return the user with this e-mail address (a user given none has ``<name>@example.com``)."""
    email = args.text("email", error="users_not_found").lower()
    for user in ws.users.values():
        if (user.email or f"{user.name}@example.com").lower() == email:
            return {"ok": True, "user": ws.user_json(user)}
    raise ApiError("users_not_found")


def set_usergroup_members(ws: Workspace, group_id: str, users: list[str]) -> dict[str, Any]:
    """Replace a user group's members as an admin would; return Slack's ``subteam_members_changed`` event."""
    with ws.lock:
        group = ws.usergroups.get(group_id)
        if group is None:
            raise ApiError("no_such_subteam")
        unknown = [u for u in users if u not in ws.users]
        if unknown:
            raise ApiError("invalid_users")
        before, after = set(group.users), tuple(dict.fromkeys(users))
        ws.usergroups[group_id] = replace(group, users=after)
        ws.touch()
        added, removed = sorted(set(after) - before), sorted(before - set(after))
        now = int(ws.clock.now())
    return {
        "type": "subteam_members_changed",
        "subteam_id": group_id,
        "team_id": ws.team_id,
        "date_previous_update": now - 1,
        "date_update": now,
        "added_users": added,
        "added_users_count": str(len(added)),
        "removed_users": removed,
        "removed_users_count": str(len(removed)),
        "event_ts": f"{now}.000000",
    }
