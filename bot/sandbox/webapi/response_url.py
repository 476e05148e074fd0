"""`response_url` posts: replace or delete the original message, or add an ephemeral or in-channel one.

Each `response_url` is good for `response_url_max_uses` posts within `response_url_ttl_s` seconds
(Slack: 5 in 30 minutes); errors are Slack's (`no_such_url`, `expired_url`, `used_url`) with 404.
"""

from __future__ import annotations

from typing import Any

from bot.sandbox.errors import ApiError
from bot.sandbox.webapi.args import Args, message_content
from bot.sandbox.workspace import Workspace


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
        text, blocks = message_content(args)
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
    """Delete the message (or ephemeral) a `response_url` came from."""
    if ts is None:
        raise ApiError("message_not_found")
    eph = ws.find_ephemeral(channel, ts)
    if eph is not None:
        ws.ephemerals.remove(eph)
    else:
        msg = ws.find_message(channel, ts)
        ws.messages[channel].remove(msg)
    ws.touch()
