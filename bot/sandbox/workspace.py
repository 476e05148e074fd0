"""The sandbox's memory of one Slack workspace: users, channels, usergroups, messages, views, triggers.

Everything is kept in process, guarded by one lock, and shaped so that `to_slack()` returns what
Slack's Web API returns for the same object. Identifiers are generated from a seeded counter, so two
runs with the same seed hand out the same ids. What the workspace starts with is its
`WorkspaceConfig` (`bot.sandbox.config`); the records it keeps are in `bot.sandbox.records`.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from typing import Any

from bot.sandbox.clock import SandboxClock
from bot.sandbox.config import UsergroupSpec, UserSpec, WorkspaceConfig
from bot.sandbox.errors import ApiError
from bot.sandbox.records import CallRecord, Ephemeral, Message, ResponseTarget, Trigger

MAX_LOG = 5000


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
                    "creator": "",
                    "is_archived": False,
                }
            self.usergroups: dict[str, UsergroupSpec] = {g.id: g for g in cfg.usergroups}
            self.messages: dict[str, list[Message]] = {cid: [] for cid in self.channels}
            self.ephemerals: list[Ephemeral] = []
            self.views: dict[str, dict[str, Any]] = {}
            self.homes: dict[str, dict[str, Any]] = {}  # user id -> the App Home view published for them
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
                "creator": "",
                "is_archived": False,
            }
            self.messages[cid] = []
            return self.channels[cid]

    def create_channel(self, *, name: str, creator: str, is_private: bool) -> dict[str, Any]:
        """Add a channel with its creator as the only member; a name in use (archived too) is `name_taken`."""
        with self.lock:
            if any(c["name"] == name for c in self.channels.values() if not c["is_im"]):
                raise ApiError("name_taken")
            cid = self.new_id("C", 11)
            self.channels[cid] = {
                "id": cid,
                "name": name,
                "is_private": is_private,
                "is_im": False,
                "members": {creator},
                "topic": "",
                "created": int(self.clock.now()),
                "creator": creator,
                "is_archived": False,
            }
            self.messages[cid] = []
            self.touch()
            return self.channels[cid]

    def channel_json(self, chan: dict[str, Any], *, viewer: str | None = None) -> dict[str, Any]:
        """Return a channel as `conversations.info` shows it."""
        viewer = viewer or self.bot_user_id
        out: dict[str, Any] = {
            "id": chan["id"],
            "created": chan["created"],
            "is_archived": bool(chan.get("is_archived")),
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
                creator=chan.get("creator", ""),
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
