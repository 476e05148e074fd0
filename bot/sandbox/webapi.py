"""The Web API methods the sandbox answers, each returning Slack's JSON or raising `ApiError(name)`.

Arguments arrive as Slack accepts them: query string, form fields (where `blocks` and `view` are JSON
strings) or a JSON body; `Args` hides the difference. Error names are Slack's documented ones.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from bot.sandbox.blockkit import MAX_MESSAGE_TEXT, check_blocks, check_view
from bot.sandbox.errors import ApiError
from bot.sandbox.workspace import Message, Workspace


class Args:
    """Method arguments from any of Slack's encodings, read with the types Slack documents."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def text(self, name: str, *, error: str | None = None) -> str:
        """Return a string argument; missing and required (`error` given) raises that error."""
        value = self.values.get(name)
        if value is None or value == "":
            if error:
                raise ApiError(error)
            return ""
        return str(value)

    def integer(self, name: str, default: int) -> int:
        """Return an integer argument, or `invalid_arguments`."""
        value = self.values.get(name)
        if value in (None, ""):
            return default
        try:
            return int(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ApiError("invalid_arguments") from None

    def flag(self, name: str) -> bool:
        """Return a boolean argument ("true", "1", true)."""
        value = self.values.get(name)
        return value is True or str(value).lower() in ("true", "1")

    def parsed(self, name: str, *, error: str) -> Any:
        """Return a JSON argument that may arrive as a string (form) or already parsed (JSON body)."""
        value = self.values.get(name)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                raise ApiError(error) from None
        return value

    def has(self, name: str) -> bool:
        """Return True when the argument was sent at all."""
        return name in self.values


Handler = Callable[[Workspace, Args, str], dict[str, Any]]
METHODS: dict[str, Handler] = {}


def method(name: str) -> Callable[[Handler], Handler]:
    """Register a handler under a Slack method name."""

    def wrap(fn: Handler) -> Handler:
        METHODS[name] = fn
        return fn

    return wrap


def _blocks(args: Args) -> list[dict[str, Any]]:
    if not args.has("blocks"):
        return []
    blocks = args.parsed("blocks", error="invalid_blocks_format")
    if blocks is None:
        return []
    errors = check_blocks(blocks)
    if errors:
        raise ApiError("invalid_blocks", extra={"errors": errors, "response_metadata": {"messages": errors}})
    return list(blocks)


def _message_content(args: Args) -> tuple[str, list[dict[str, Any]]]:
    text = args.text("text")
    blocks = _blocks(args)
    if not text and not blocks:
        raise ApiError("no_text")
    if len(text) > MAX_MESSAGE_TEXT:
        raise ApiError("msg_too_long")
    return text, blocks


def _metadata(args: Args) -> dict[str, Any] | None:
    """Return message metadata ({event_type, event_payload}), or `invalid_metadata_format`."""
    if not args.has("metadata"):
        return None
    metadata = args.parsed("metadata", error="invalid_metadata_format")
    if metadata is None:
        return None
    if (
        not isinstance(metadata, dict)
        or not isinstance(metadata.get("event_type"), str)
        or not metadata["event_type"]
        or not isinstance(metadata.get("event_payload", {}), dict)
    ):
        raise ApiError("invalid_metadata_format")
    return {"event_type": metadata["event_type"], "event_payload": dict(metadata.get("event_payload", {}))}


def _member_channel(ws: Workspace, args: Args, *, by_name: bool) -> dict[str, Any]:
    chan = ws.channel(args.text("channel", error="channel_not_found"), by_name=by_name)
    if ws.bot_user_id not in chan["members"]:
        if chan["is_private"]:
            raise ApiError("channel_not_found")
        raise ApiError("not_in_channel")
    return chan


def _page(items: list[Any], args: Args, default_limit: int) -> tuple[list[Any], str]:
    limit = max(1, min(args.integer("limit", default_limit), 1000))
    cursor = args.text("cursor")
    start = 0
    if cursor:
        try:
            start = int(base64.b64decode(cursor).decode().split(":", 1)[1])
        except (ValueError, IndexError):
            raise ApiError("invalid_cursor") from None
    chunk = items[start : start + limit]
    more = start + limit < len(items)
    next_cursor = base64.b64encode(f"offset:{start + limit}".encode()).decode() if more else ""
    return chunk, next_cursor


@method("auth.test")
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


@method("chat.postMessage")
def chat_post_message(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Post a message (a thread reply with `thread_ts`) as the bot."""
    chan = _member_channel(ws, args, by_name=True)
    text, blocks = _message_content(args)
    thread_ts = args.text("thread_ts") or None
    metadata = _metadata(args)
    try:
        msg = ws.post(
            channel_id=chan["id"],
            text=text,
            blocks=blocks,
            user=ws.bot_user_id,
            thread_ts=thread_ts,
            metadata=metadata,
        )
    except ApiError as exc:
        if exc.error == "message_not_found":
            raise ApiError("thread_not_found") from None
        raise
    return {"ok": True, "channel": chan["id"], "ts": msg.ts, "message": msg.to_slack(ws.team_id)}


@method("chat.update")
def chat_update(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Replace a bot message's text and blocks in place (blocks kept when not sent)."""
    chan = ws.channel(args.text("channel", error="channel_not_found"))
    ts = args.text("ts", error="message_not_found")
    with ws.lock:
        msg = ws.find_message(chan["id"], ts)
        if msg.user != ws.bot_user_id:
            raise ApiError("cant_update_message")
        text = args.text("text")
        blocks = _blocks(args) if args.has("blocks") else msg.blocks
        if not text and not blocks:
            raise ApiError("no_text")
        if len(text) > MAX_MESSAGE_TEXT:
            raise ApiError("msg_too_long")
        msg.text, msg.blocks = text, blocks
        if args.has("metadata"):
            msg.metadata = _metadata(args)
        msg.edited = {"user": ws.bot_user_id, "ts": ws.new_ts()}
        ws.touch()
        return {
            "ok": True,
            "channel": chan["id"],
            "ts": ts,
            "text": text,
            "message": msg.to_slack(ws.team_id),
        }


@method("chat.postEphemeral")
def chat_post_ephemeral(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Show a message to one user in a channel."""
    chan = _member_channel(ws, args, by_name=True)
    user = args.text("user", error="user_not_found")
    if user not in ws.users:
        raise ApiError("user_not_found")
    if user not in chan["members"]:
        raise ApiError("user_not_in_channel")
    text, blocks = _message_content(args)
    eph = ws.post_ephemeral(
        channel_id=chan["id"],
        user=user,
        text=text,
        blocks=blocks,
        source="chat.postEphemeral",
        thread_ts=args.text("thread_ts") or None,
    )
    return {"ok": True, "message_ts": eph.ts}


@method("chat.getPermalink")
def chat_get_permalink(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Return a link to a message (on the sandbox page)."""
    chan = ws.channel(args.text("channel", error="channel_not_found"))
    msg = ws.find_message(chan["id"], args.text("message_ts", error="message_not_found"))
    link = f"{base_url.rstrip('/')}/archives/{chan['id']}/p{msg.ts.replace('.', '')}"
    if msg.thread_ts and msg.thread_ts != msg.ts:
        link += f"?thread_ts={msg.thread_ts}&cid={chan['id']}"
    return {"ok": True, "channel": chan["id"], "permalink": link}


def _view_json(ws: Workspace, view_id: str, view: dict[str, Any], user: str) -> dict[str, Any]:
    out = {
        "id": view_id,
        "team_id": ws.team_id,
        "type": view.get("type", "modal"),
        "title": view.get("title"),
        "submit": view.get("submit"),
        "close": view.get("close"),
        "blocks": view.get("blocks", []),
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""),
        "external_id": view.get("external_id", ""),
        "state": {"values": {}},
        "hash": ws.new_id("H", 16).lower(),
        "clear_on_close": bool(view.get("clear_on_close", False)),
        "notify_on_close": bool(view.get("notify_on_close", False)),
        "root_view_id": view_id,
        "previous_view_id": None,
        "app_id": ws.config.app_id,
        "app_installed_team_id": ws.team_id,
        "bot_id": ws.config.bot_id,
        "user": user,
    }
    return out


def _checked_view(args: Args) -> dict[str, Any]:
    view = args.parsed("view", error="invalid_arguments")
    errors = check_view(view)
    if errors:
        raise ApiError("invalid_arguments", extra={"response_metadata": {"messages": errors}})
    assert isinstance(view, dict)
    return view


@method("views.open")
def views_open(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Open a modal for the user behind a fresh `trigger_id`."""
    trigger = ws.use_trigger(args.text("trigger_id", error="invalid_trigger_id"))
    view = _checked_view(args)
    with ws.lock:
        view_id = ws.new_id("V")
        ws.views[view_id] = _view_json(ws, view_id, view, trigger.user)
        ws.touch()
        return {"ok": True, "view": _public_view(ws.views[view_id])}


def _public_view(view: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k != "user"}


@method("views.update")
def views_update(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Replace an open modal (by `view_id` or `external_id`), refusing a stale `hash`."""
    view = _checked_view(args)
    with ws.lock:
        view_id = args.text("view_id")
        if not view_id and args.text("external_id"):
            view_id = next(
                (v["id"] for v in ws.views.values() if v["external_id"] == args.text("external_id")), ""
            )
        current = ws.views.get(view_id)
        if current is None:
            raise ApiError("not_found")
        if args.text("hash") and args.text("hash") != current["hash"]:
            raise ApiError("hash_conflict")
        updated = _view_json(ws, view_id, view, current["user"])
        updated["previous_view_id"] = current.get("previous_view_id")
        ws.views[view_id] = updated
        ws.touch()
        return {"ok": True, "view": _public_view(updated)}


@method("users.info")
def users_info(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Return one user."""
    user = ws.users.get(args.text("user", error="user_not_found"))
    if user is None:
        raise ApiError("user_not_found")
    return {"ok": True, "user": ws.user_json(user)}


@method("usergroups.users.list")
def usergroups_users_list(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Return the members of a user group."""
    group = ws.usergroups.get(args.text("usergroup", error="no_such_subteam"))
    if group is None:
        raise ApiError("no_such_subteam")
    return {"ok": True, "users": list(group.users)}


@method("conversations.list")
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
    chunk, cursor = _page(found, args, 100)
    return {"ok": True, "channels": chunk, "response_metadata": {"next_cursor": cursor}}


@method("conversations.info")
def conversations_info(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Return one conversation (private ones only to members)."""
    chan = ws.channel(args.text("channel", error="channel_not_found"))
    if chan["is_private"] and ws.bot_user_id not in chan["members"]:
        raise ApiError("channel_not_found")
    return {"ok": True, "channel": ws.channel_json(chan)}


def _in_window(msg: Message, args: Args) -> bool:
    oldest, latest = args.text("oldest"), args.text("latest")
    inclusive = args.flag("inclusive")
    value = float(msg.ts)
    if oldest and (value < float(oldest) or (value == float(oldest) and not inclusive)):
        return False
    return not (latest and (value > float(latest) or (value == float(latest) and not inclusive)))


@method("conversations.history")
def conversations_history(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Return a channel's top-level messages, newest first, paginated by cursor (metadata on request)."""
    chan = _member_channel(ws, args, by_name=False)
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
    chunk, cursor = _page(top, args, 100)
    return {
        "ok": True,
        "messages": chunk,
        "has_more": bool(cursor),
        "pin_count": 0,
        "response_metadata": {"next_cursor": cursor},
    }


@method("conversations.replies")
def conversations_replies(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Return a thread: its parent first, then the replies in `oldest`/`latest` oldest first."""
    chan = _member_channel(ws, args, by_name=False)
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
    chunk, cursor = _page(thread, args, 1000)
    return {
        "ok": True,
        "messages": chunk,
        "has_more": bool(cursor),
        "response_metadata": {"next_cursor": cursor},
    }


@method("conversations.join")
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


def respond(ws: Workspace, response_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Handle a post to a `response_url`: replace, delete, or add an ephemeral / in-channel message."""
    with ws.lock:
        target = ws.response_urls.get(response_id)
        if target is None:
            raise ApiError("no_such_url", status=404)
        if ws.clock.now() - target.issued_at > ws.config.response_url_ttl_s:
            raise ApiError("expired_url", status=404)
        if target.uses >= ws.config.response_url_max_uses:
            raise ApiError("used_url", status=404)
        target.uses += 1
        args = Args(body)
        if args.flag("delete_original"):
            _delete_original(ws, target.channel, target.message_ts)
            return {"ok": True}
        text, blocks = _message_content(args)
        if args.flag("replace_original") and target.message_ts:
            eph = ws.find_ephemeral(target.channel, target.message_ts)
            if eph is not None:
                eph.text, eph.blocks = text, blocks
            else:
                msg = ws.find_message(target.channel, target.message_ts)
                msg.text, msg.blocks = text, blocks
                msg.edited = {"user": ws.bot_user_id, "ts": ws.new_ts()}
            ws.touch()
            return {"ok": True}
        thread_ts = args.text("thread_ts") or None
        if args.text("response_type") == "in_channel":
            ws.post(
                channel_id=target.channel, text=text, blocks=blocks, user=ws.bot_user_id, thread_ts=thread_ts
            )
        else:
            ws.post_ephemeral(
                channel_id=target.channel,
                user=target.user,
                text=text,
                blocks=blocks,
                source="response_url",
                thread_ts=thread_ts,
            )
        return {"ok": True}


def _delete_original(ws: Workspace, channel: str, ts: str | None) -> None:
    if ts is None:
        raise ApiError("message_not_found")
    eph = ws.find_ephemeral(channel, ts)
    if eph is not None:
        ws.ephemerals.remove(eph)
    else:
        msg = ws.find_message(channel, ts)
        ws.messages[channel].remove(msg)
    ws.touch()
