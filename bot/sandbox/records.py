"""What the workspace stores: messages, ephemerals, `trigger_id`s, `response_url` targets, Web API calls.

Each record is shaped so that its `to_slack()` / `to_json()` returns what Slack (or the inspection
API) shows for the same object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Message:
    """A message in a channel (a thread reply when `thread_ts` differs from `ts`)."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    user: str
    bot_id: str | None = None
    app_id: str | None = None
    thread_ts: str | None = None
    edited: dict[str, str] | None = None
    metadata: dict[str, Any] | None = None
    replies: list[str] = field(default_factory=list)
    reply_users: list[str] = field(default_factory=list)

    def to_slack(self, team_id: str, *, metadata: bool = True) -> dict[str, Any]:
        """Return the message as `conversations.history` shows it (``metadata`` as with include_all_metadata)."""
        out: dict[str, Any] = {"type": "message", "user": self.user, "text": self.text, "ts": self.ts}
        out["team"] = team_id
        if self.blocks:
            out["blocks"] = self.blocks
        if self.bot_id:
            out["bot_id"] = self.bot_id
            out["app_id"] = self.app_id
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.replies:
            out["thread_ts"] = self.ts
            out["reply_count"] = len(self.replies)
            out["reply_users"] = list(self.reply_users)
            out["reply_users_count"] = len(self.reply_users)
            out["latest_reply"] = self.replies[-1]
        if self.edited:
            out["edited"] = dict(self.edited)
        if self.metadata and metadata:
            out["metadata"] = self.metadata
        return out


@dataclass
class Ephemeral:
    """A message only one user sees ("Only visible to you"); never in history, as in Slack."""

    channel: str
    ts: str
    user: str
    text: str
    blocks: list[dict[str, Any]]
    source: str
    thread_ts: str | None = None

    def to_slack(self) -> dict[str, Any]:
        """Return the ephemeral as the inspection API and the page show it."""
        return {
            "type": "message",
            "subtype": "ephemeral",
            "channel": self.channel,
            "ts": self.ts,
            "visible_to": self.user,
            "text": self.text,
            "blocks": self.blocks,
            "thread_ts": self.thread_ts,
            "source": self.source,
        }


@dataclass
class ResponseTarget:
    """Where a `response_url` posts: the channel, the user, and the message it came from."""

    channel: str
    user: str
    issued_at: float
    message_ts: str | None = None
    message_is_ephemeral: bool = False
    uses: int = 0


@dataclass
class Trigger:
    """A `trigger_id` handed to the app with an interaction; usable once, for a few seconds."""

    user: str
    issued_at: float
    used: bool = False


@dataclass(frozen=True)
class CallRecord:
    """One Web API call the sandbox received, for tests that assert what the app sent."""

    method: str
    args: dict[str, Any]
    status: int
    ok: bool
    error: str | None
    at: float

    def to_json(self) -> dict[str, Any]:
        """Return the record as the inspection API shows it."""
        return self.__dict__.copy()
