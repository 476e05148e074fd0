"""The `conversations.*` family: list, info, history, replies, join, create, invite, archive.

`conversations.create` checks a name as Slack does (lowercase letters, digits, `-` and `_`, 80 at most;
a name in use, archived channels included, is `name_taken`); create, invite and archive need
`channels:manage` for a public channel and `groups:write` for a private one (`missing_scope` otherwise,
naming the scope needed, as Slack does). An archived channel refuses posts (`is_archived`).
"""

from __future__ import annotations

import re
from typing import Any

from bot.sandbox.errors import ApiError
from bot.sandbox.records import Message
from bot.sandbox.webapi.args import Args, member_channel, paginate
from bot.sandbox.workspace import Workspace


def conversations_list(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """List conversations of the requested types the bot can see, paginated by cursor."""
    types = set((args.text("types") or "public_channel").split(","))
    with ws.lock:
        found = []
        for chan in ws.channels.values():
            kind = "im" if chan["is_im"] else ("private_channel" if chan["is_private"] else "public_channel")
            if kind not in types:
                continue
            if kind != "public_channel" and ws.bot_user_id not in chan["members"]:
                continue
            found.append(ws.channel_json(chan))
    chunk, cursor = paginate(found, args, 100)
    return {"ok": True, "channels": chunk, "response_metadata": {"next_cursor": cursor}}


def conversations_info(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Return one conversation (private ones only to members)."""
    chan = ws.channel(args.text("channel", error="channel_not_found"))
    if chan["is_private"] and ws.bot_user_id not in chan["members"]:
        raise ApiError("channel_not_found")
    return {"ok": True, "channel": ws.channel_json(chan)}


def _in_window(msg: Message, args: Args) -> bool:
    """Return True when a message lies within the `oldest`/`latest` window of the call."""
    oldest, latest = args.text("oldest"), args.text("latest")
    inclusive = args.flag("inclusive")
    value = float(msg.ts)
    if oldest and (value < float(oldest) or (value == float(oldest) and not inclusive)):
        return False
    return not (latest and (value > float(latest) or (value == float(latest) and not inclusive)))


def conversations_history(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Return a channel's top-level messages, newest first, paginated by cursor (metadata on request)."""
    chan = member_channel(ws, args, by_name=False)
    with_metadata = args.flag("include_all_metadata")
    with ws.lock:
        try:
            top = [
                m.to_slack(ws.team_id, metadata=with_metadata)
                for m in reversed(ws.messages[chan["id"]])
                if (m.thread_ts is None or m.thread_ts == m.ts) and _in_window(m, args)
            ]
        except ValueError:
            raise ApiError("invalid_ts_latest") from None
    chunk, cursor = paginate(top, args, 100)
    return {
        "ok": True,
        "messages": chunk,
        "has_more": bool(cursor),
        "pin_count": 0,
        "response_metadata": {"next_cursor": cursor},
    }


def conversations_replies(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Return a thread: its parent first, then the replies in `oldest`/`latest` oldest first."""
    chan = member_channel(ws, args, by_name=False)
    ts = args.text("ts", error="thread_not_found")
    with_metadata = args.flag("include_all_metadata")
    with ws.lock:
        try:
            msg = ws.find_message(chan["id"], ts)
        except ApiError:
            raise ApiError("thread_not_found") from None
        root = ws.find_message(chan["id"], msg.thread_ts) if msg.thread_ts else msg
        try:
            replies = [
                ws.find_message(chan["id"], reply)
                for reply in root.replies
                if _in_window(ws.find_message(chan["id"], reply), args)
            ]
        except ValueError:
            raise ApiError("invalid_ts_oldest") from None
        thread = [root.to_slack(ws.team_id, metadata=with_metadata)] + [
            reply.to_slack(ws.team_id, metadata=with_metadata) for reply in replies
        ]
    chunk, cursor = paginate(thread, args, 1000)
    return {
        "ok": True,
        "messages": chunk,
        "has_more": bool(cursor),
        "response_metadata": {"next_cursor": cursor},
    }


def conversations_join(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Add the bot to a public channel."""
    chan = ws.channel(args.text("channel", error="channel_not_found"))
    if chan["is_private"]:
        raise ApiError("method_not_supported_for_channel_type")
    with ws.lock:
        already = ws.bot_user_id in chan["members"]
        chan["members"].add(ws.bot_user_id)
        ws.touch()
    out: dict[str, Any] = {"ok": True, "channel": ws.channel_json(chan)}
    if already:
        out["warning"] = "already_in_channel"
        out["response_metadata"] = {"warnings": ["already_in_channel"]}
    return out


NAME_MAX = 80
_NAME_CHARS = re.compile(r"[a-z0-9_-]+")


def _need_scope(ws: Workspace, chan_private: bool) -> None:
    """Refuse a channel-managing call when the bot token lacks the scope for this kind of channel."""
    needed = "groups:write" if chan_private else "channels:manage"
    if needed not in ws.config.bot_scopes:
        raise ApiError("missing_scope", extra={"needed": needed, "provided": ",".join(ws.config.bot_scopes)})


def check_channel_name(name: str) -> None:
    """Refuse a channel name the way Slack does (`invalid_name_*`)."""
    if not name:
        raise ApiError("invalid_name_required")
    if len(name) > NAME_MAX:
        raise ApiError("invalid_name_maxlength")
    if not _NAME_CHARS.fullmatch(name):
        raise ApiError("invalid_name_specials")
    if not any(c.isalnum() for c in name):
        raise ApiError("invalid_name_punctuation")


def conversations_create(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Create a public (or, with `is_private`, private) channel with the bot as its creator and member."""
    private = args.flag("is_private")
    _need_scope(ws, private)
    name = args.text("name")
    check_channel_name(name)
    chan = ws.create_channel(name=name, creator=ws.bot_user_id, is_private=private)
    return {"ok": True, "channel": ws.channel_json(chan)}


def conversations_invite(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Invite users (comma-separated ids); with `force`, the valid ones join and the rest are listed in `errors`."""
    chan = ws.channel(args.text("channel", error="channel_not_found"))
    _need_scope(ws, chan["is_private"])
    if chan["is_im"]:
        raise ApiError("method_not_supported_for_channel_type")
    users = [u.strip() for u in args.text("users", error="no_user").split(",") if u.strip()]
    if not users:
        raise ApiError("no_user")
    force = args.flag("force")
    with ws.lock:
        if chan.get("is_archived"):
            raise ApiError("is_archived")
        if ws.bot_user_id not in chan["members"]:
            raise ApiError("not_in_channel")
        errors = []
        for user in users:
            problem = None
            if user == ws.bot_user_id:
                problem = "cant_invite_self"
            elif user not in ws.users:
                problem = "user_not_found"
            elif user in chan["members"]:
                problem = "already_in_channel"
            if problem is not None:
                if not force:
                    raise ApiError(problem)
                errors.append({"ok": False, "error": problem, "user": user})
        for user in users:
            if user in ws.users and user != ws.bot_user_id:
                chan["members"].add(user)
        ws.touch()
    out: dict[str, Any] = {"ok": True, "channel": ws.channel_json(chan)}
    if errors:
        out["errors"] = errors
    return out


def conversations_archive(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Archive a channel the bot is in; archived already is `already_archived`."""
    chan = ws.channel(args.text("channel", error="channel_not_found"))
    if chan["is_im"]:
        raise ApiError("method_not_supported_for_channel_type")
    _need_scope(ws, chan["is_private"])
    with ws.lock:
        if chan.get("is_archived"):
            raise ApiError("already_archived")
        if ws.bot_user_id not in chan["members"]:
            raise ApiError("not_in_channel")
        chan["is_archived"] = True
        ws.touch()
    return {"ok": True}
