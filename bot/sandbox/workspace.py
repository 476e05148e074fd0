"""The sandbox's memory of one Slack workspace: users, channels, usergroups, messages, views, triggers.

Everything is kept in process, guarded by one lock, and shaped so that `to_slack()` returns what
Slack's Web API returns for the same object. Identifiers are generated from a seeded counter, so two
runs with the same seed hand out the same ids.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.sandbox.errors import ApiError, WorkspaceConfigError

MAX_LOG = 5000


@dataclass(frozen=True)
class UserSpec:
    """A person (or bot) in the workspace."""

    id: str
    name: str
    real_name: str
    is_bot: bool = False
    is_admin: bool = False


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


class SandboxClock:
    """Wall-clock time that tests can move forward (`advance`) instead of sleeping."""

    def __init__(self) -> None:
        self._offset = 0.0

    def now(self) -> float:
        """Return seconds since the epoch, shifted by every `advance` so far."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the sandbox's time forward (trigger and response_url expiry, rate-limit refill)."""
        self._offset += max(0.0, seconds)


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


class Workspace:
    """The sandbox's state; every public method takes the lock, so handlers may run in parallel."""

    def __init__(self, config: WorkspaceConfig | None = None, *, clock: SandboxClock | None = None) -> None:
        self.config = config or WorkspaceConfig()
        self.clock = clock or SandboxClock()
        self.lock = threading.RLock()
        self._counter = 0
        self._last_micros = 0
        self.version = 0
        self.reset()

    # -- identity -------------------------------------------------------------------------------------
    @property
    def team_id(self) -> str:
        """Return the team id (`T...`)."""
        return self.config.team_id

    @property
    def bot_user_id(self) -> str:
        """Return the bot's user id."""
        return self.config.bot_user_id

    def reset(self) -> None:
        """Forget every message, view, trigger and log; restore users and channels from the config."""
        with self.lock:
            cfg = self.config
            self.users: dict[str, UserSpec] = {u.id: u for u in cfg.users}
            self.users[cfg.bot_user_id] = UserSpec(cfg.bot_user_id, cfg.bot_name, cfg.bot_name, is_bot=True)
            self.channels: dict[str, dict[str, Any]] = {}
            for spec in cfg.channels:
                members = set(spec.members) | ({cfg.bot_user_id} if spec.bot else set())
                self.channels[spec.id] = {
                    "id": spec.id,
                    "name": spec.name,
                    "is_private": spec.is_private,
                    "is_im": False,
                    "members": members,
                    "topic": spec.topic,
                    "created": 1700000000,
                }
            self.usergroups: dict[str, UsergroupSpec] = {g.id: g for g in cfg.usergroups}
            self.messages: dict[str, list[Message]] = {cid: [] for cid in self.channels}
            self.ephemerals: list[Ephemeral] = []
            self.views: dict[str, dict[str, Any]] = {}
            self.triggers: dict[str, Trigger] = {}
            self.response_urls: dict[str, ResponseTarget] = {}
            self.calls: deque[CallRecord] = deque(maxlen=MAX_LOG)
            self.deliveries: deque[dict[str, Any]] = deque(maxlen=MAX_LOG)
            self.touch()

    def touch(self) -> None:
        """Mark the state as changed (the page polls `version`)."""
        with self.lock:
            self.version += 1

    def new_id(self, prefix: str, length: int = 10) -> str:
        """Return a fresh, seeded, Slack-looking id (`V0A1B2C3D4`)."""
        with self.lock:
            self._counter += 1
            digest = hashlib.sha256(f"{self.config.seed}:{prefix}:{self._counter}".encode()).hexdigest()
            return prefix + digest[: length - len(prefix)].upper()

    def new_ts(self) -> str:
        """Return a message timestamp like Slack's ("1700000000.000100"), unique and increasing."""
        with self.lock:
            micros = max(int(self.clock.now() * 1_000_000), self._last_micros + 1)
            self._last_micros = micros
            return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    # -- lookups --------------------------------------------------------------------------------------
    def channel(self, ref: str, *, by_name: bool = False) -> dict[str, Any]:
        """Return a channel by id (or by name, with or without `#`, when `by_name`); else `channel_not_found`."""
        with self.lock:
            if ref in self.channels:
                return self.channels[ref]
            if by_name:
                name = ref.lstrip("#")
                for chan in self.channels.values():
                    if chan["name"] == name:
                        return chan
                if ref in self.users:
                    return self.open_im(ref)
            raise ApiError("channel_not_found")

    def open_im(self, user_id: str) -> dict[str, Any]:
        """Return (creating once) the direct-message channel between the bot and a user."""
        with self.lock:
            for chan in self.channels.values():
                if chan["is_im"] and chan["user"] == user_id:
                    return chan
            cid = "D" + user_id[1:]
            self.channels[cid] = {
                "id": cid,
                "name": user_id,
                "is_private": True,
                "is_im": True,
                "user": user_id,
                "members": {user_id, self.bot_user_id},
                "topic": "",
                "created": int(self.clock.now()),
            }
            self.messages[cid] = []
            return self.channels[cid]

    def channel_json(self, chan: dict[str, Any], *, viewer: str | None = None) -> dict[str, Any]:
        """Return a channel as `conversations.info` shows it."""
        viewer = viewer or self.bot_user_id
        out: dict[str, Any] = {
            "id": chan["id"],
            "created": chan["created"],
            "is_archived": False,
            "is_im": chan["is_im"],
            "is_private": chan["is_private"],
            "is_member": viewer in chan["members"],
            "num_members": len(chan["members"]),
        }
        if chan["is_im"]:
            out["user"] = chan["user"]
        else:
            out.update(
                name=chan["name"],
                is_channel=not chan["is_private"],
                is_group=chan["is_private"],
                topic={"value": chan["topic"], "creator": "", "last_set": 0},
                purpose={"value": "", "creator": "", "last_set": 0},
            )
        return out

    def user_json(self, user: UserSpec) -> dict[str, Any]:
        """Return a user as `users.info` shows it."""
        return {
            "id": user.id,
            "team_id": self.team_id,
            "name": user.name,
            "real_name": user.real_name,
            "deleted": False,
            "is_bot": user.is_bot,
            "is_admin": user.is_admin,
            "is_app_user": False,
            "tz": "Etc/UTC",
            "tz_offset": 0,
            "profile": {
                "real_name": user.real_name,
                "display_name": user.name,
                "email": f"{user.name}@{self.config.team_domain}.example",
                "team": self.team_id,
            },
        }

    def find_message(self, channel_id: str, ts: str) -> Message:
        """Return a stored message or raise `message_not_found`."""
        with self.lock:
            for msg in self.messages.get(channel_id, []):
                if msg.ts == ts:
                    return msg
            raise ApiError("message_not_found")

    def find_ephemeral(self, channel_id: str, ts: str) -> Ephemeral | None:
        """Return an ephemeral message by channel and ts, if there is one."""
        with self.lock:
            for eph in self.ephemerals:
                if eph.channel == channel_id and eph.ts == ts:
                    return eph
            return None

    # -- writes ---------------------------------------------------------------------------------------
    def post(
        self,
        *,
        channel_id: str,
        text: str,
        blocks: list[dict[str, Any]],
        user: str,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Message:
        """Store a new message (a reply when `thread_ts` names a parent); bot posts carry bot and app ids."""
        with self.lock:
            parent = None
            if thread_ts:
                parent = self.find_message(channel_id, thread_ts)
                # Slack threads replies under the root even when a reply's ts is given.
                if parent.thread_ts and parent.thread_ts != parent.ts:
                    parent = self.find_message(channel_id, parent.thread_ts)
            is_bot = user == self.bot_user_id
            msg = Message(
                channel=channel_id,
                ts=self.new_ts(),
                text=text,
                blocks=blocks,
                user=user,
                bot_id=self.config.bot_id if is_bot else None,
                app_id=self.config.app_id if is_bot else None,
                thread_ts=parent.ts if parent else None,
                metadata=metadata,
            )
            if parent:
                parent.replies.append(msg.ts)
                if user not in parent.reply_users:
                    parent.reply_users.append(user)
            self.messages.setdefault(channel_id, []).append(msg)
            self.touch()
            return msg

    def post_ephemeral(
        self,
        *,
        channel_id: str,
        user: str,
        text: str,
        blocks: list[dict[str, Any]],
        source: str,
        thread_ts: str | None = None,
    ) -> Ephemeral:
        """Store a message only `user` sees."""
        with self.lock:
            eph = Ephemeral(channel_id, self.new_ts(), user, text, blocks, source, thread_ts)
            self.ephemerals.append(eph)
            self.touch()
            return eph

    def issue_trigger(self, user: str) -> str:
        """Hand out a fresh `trigger_id` for an interaction by `user`."""
        with self.lock:
            number = self._counter + 1
            trigger_id = f"{number}.{int(self.clock.now())}.{self.new_id('', 20).lower()}"
            self.triggers[trigger_id] = Trigger(user=user, issued_at=self.clock.now())
            return trigger_id

    def use_trigger(self, trigger_id: str) -> Trigger:
        """Consume a trigger: unknown -> `invalid_trigger_id`, reused -> `exchanged_trigger_id`, late -> `expired_trigger_id`."""
        with self.lock:
            trigger = self.triggers.get(trigger_id)
            if trigger is None:
                raise ApiError("invalid_trigger_id")
            if trigger.used:
                raise ApiError("exchanged_trigger_id")
            if self.clock.now() - trigger.issued_at > self.config.trigger_ttl_s:
                raise ApiError("expired_trigger_id")
            trigger.used = True
            return trigger

    def issue_response_url(
        self,
        base_url: str,
        *,
        channel: str,
        user: str,
        message_ts: str | None = None,
        ephemeral: bool = False,
    ) -> str:
        """Hand out a `response_url` on this sandbox for a command or an interaction."""
        with self.lock:
            rid = self.new_id("R", 24)
            self.response_urls[rid] = ResponseTarget(
                channel=channel,
                user=user,
                issued_at=self.clock.now(),
                message_ts=message_ts,
                message_is_ephemeral=ephemeral,
            )
            return f"{base_url.rstrip('/')}/response/{rid}"

    def record_call(self, method: str, args: dict[str, Any], status: int, error: str | None) -> None:
        """Append one Web API call to the call log (tokens are not logged)."""
        with self.lock:
            self.calls.append(CallRecord(method, args, status, error is None, error, self.clock.now()))
