"""Reading Web API arguments as Slack accepts them, and the checks every message method shares.

Arguments arrive as Slack accepts them: query string, form fields (where `blocks`, `view` and
`metadata` are JSON strings) or a JSON body; `Args` hides the difference. Error names are Slack's
documented ones, raised as `ApiError(name)`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from bot.sandbox.blockkit import MAX_MESSAGE_TEXT, check_blocks
from bot.sandbox.errors import ApiError
from bot.sandbox.workspace import Workspace


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
"""A Web API method: the workspace, its arguments and the sandbox's base URL -> Slack's JSON answer."""


def read_blocks(args: Args) -> list[dict[str, Any]]:
    """Return the `blocks` argument checked as Slack checks it, or `invalid_blocks`."""
    if not args.has("blocks"):
        return []
    blocks = args.parsed("blocks", error="invalid_blocks_format")
    if blocks is None:
        return []
    errors = check_blocks(blocks)
    if errors:
        raise ApiError("invalid_blocks", extra={"errors": errors, "response_metadata": {"messages": errors}})
    return list(blocks)


def message_content(args: Args) -> tuple[str, list[dict[str, Any]]]:
    """Return a message's text and blocks: one of them required, text within Slack's limit."""
    text = args.text("text")
    blocks = read_blocks(args)
    if not text and not blocks:
        raise ApiError("no_text")
    if len(text) > MAX_MESSAGE_TEXT:
        raise ApiError("msg_too_long")
    return text, blocks


def read_metadata(args: Args) -> dict[str, Any] | None:
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


def member_channel(ws: Workspace, args: Args, *, by_name: bool) -> dict[str, Any]:
    """Return the channel the bot posts or reads in, refusing one it is not a member of."""
    chan = ws.channel(args.text("channel", error="channel_not_found"), by_name=by_name)
    if ws.bot_user_id not in chan["members"]:
        if chan["is_private"]:
            raise ApiError("channel_not_found")
        raise ApiError("not_in_channel")
    return chan


def paginate(items: list[Any], args: Args, default_limit: int) -> tuple[list[Any], str]:
    """Return one page of `items` and the next cursor (empty on the last page)."""
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
