"""The `chat.*` family: post, update, post ephemeral, permalink."""

from __future__ import annotations

from typing import Any

from bot.sandbox.blockkit import MAX_MESSAGE_TEXT
from bot.sandbox.errors import ApiError
from bot.sandbox.webapi.args import Args, member_channel, message_content, read_blocks, read_metadata
from bot.sandbox.workspace import Workspace


def chat_post_message(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Post a message (a thread reply with `thread_ts`) as the bot."""
    chan = member_channel(ws, args, by_name=True)
    if chan.get("is_archived"):
        raise ApiError("is_archived")
    text, blocks = message_content(args)
    thread_ts = args.text("thread_ts") or None
    metadata = read_metadata(args)
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


def chat_update(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Replace a bot message's text and blocks in place (blocks kept when not sent)."""
    chan = ws.channel(args.text("channel", error="channel_not_found"))
    ts = args.text("ts", error="message_not_found")
    with ws.lock:
        if chan.get("is_archived"):
            raise ApiError("is_archived")
        msg = ws.find_message(chan["id"], ts)
        if msg.user != ws.bot_user_id:
            raise ApiError("cant_update_message")
        text = args.text("text")
        blocks = read_blocks(args) if args.has("blocks") else msg.blocks
        if not text and not blocks:
            raise ApiError("no_text")
        if len(text) > MAX_MESSAGE_TEXT:
            raise ApiError("msg_too_long")
        msg.text, msg.blocks = text, blocks
        if args.has("metadata"):
            msg.metadata = read_metadata(args)
        msg.edited = {"user": ws.bot_user_id, "ts": ws.new_ts()}
        ws.touch()
        return {
            "ok": True,
            "channel": chan["id"],
            "ts": ts,
            "text": text,
            "message": msg.to_slack(ws.team_id),
        }


def chat_post_ephemeral(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Show a message to one user in a channel."""
    chan = member_channel(ws, args, by_name=True)
    user = args.text("user", error="user_not_found")
    if user not in ws.users:
        raise ApiError("user_not_found")
    if user not in chan["members"]:
        raise ApiError("user_not_in_channel")
    text, blocks = message_content(args)
    eph = ws.post_ephemeral(
        channel_id=chan["id"],
        user=user,
        text=text,
        blocks=blocks,
        source="chat.postEphemeral",
        thread_ts=args.text("thread_ts") or None,
    )
    return {"ok": True, "message_ts": eph.ts}


def chat_get_permalink(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Return a link to a message (on the sandbox page)."""
    chan = ws.channel(args.text("channel", error="channel_not_found"))
    msg = ws.find_message(chan["id"], args.text("message_ts", error="message_not_found"))
    link = f"{base_url.rstrip('/')}/archives/{chan['id']}/p{msg.ts.replace('.', '')}"
    if msg.thread_ts and msg.thread_ts != msg.ts:
        link += f"?thread_ts={msg.thread_ts}&cid={chan['id']}"
    return {"ok": True, "channel": chan["id"], "permalink": link}
