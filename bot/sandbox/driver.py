"""The driver: plays Slack's side towards the app, building each request Slack would send.

It sends slash commands, events (a person's message, an `app_mention`), button clicks and modal
submissions built from the workspace (`bot.sandbox.payloads`) over the app's transport
(`bot.sandbox.transport`: signed HTTP or Socket Mode), and applies the acks as Slack does: a command's
ack body becomes an ephemeral or in-channel reply, a `view_submission` ack's `response_action`
updates or closes the modal. A failed event delivery is retried up to three times (HTTP:
`X-Slack-Retry-Num` and `X-Slack-Retry-Reason`; Socket Mode: `retry_attempt`, `retry_reason`), unless
the app answered with `X-Slack-No-Retry: 1`. Commands and interactions are never retried; the user
sees Slack's error. Every delivery is recorded in the workspace for the page and the inspection API.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Sequence
from typing import Any

from bot.sandbox.delivery import Attempt, Delivery, SocketLink
from bot.sandbox.errors import ApiError, DeliveryError
from bot.sandbox.payloads import (
    BlankFiller,
    block_actions_payload,
    button_action,
    channel_type,
    event_envelope,
    message_event,
    slash_command_form,
    view_payload,
)
from bot.sandbox.transport import AppTransport
from bot.sandbox.workspace import Workspace

INTERACTION_TYPES = (
    "block_actions",
    "message_action",
    "shortcut",
    "view_submission",
    "view_closed",
    "block_suggestion",
)
DEFAULT_EVENTS = ("app_mention",)


class AppDriver(AppTransport):
    """Plays Slack's side towards one app: builds Slack's requests, retries events, applies acks."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        app_url: str | None = None,
        signing_secret: str = "",
        socket: SocketLink | None = None,
        sandbox_url: str,
        ack_timeout_s: float = 3.0,
        retry_backoff_s: Sequence[float] = (0.0, 1.0, 5.0),
        max_retries: int = 3,
        command: str = "/remediate",
        subscribed_events: Sequence[str] = DEFAULT_EVENTS,
    ) -> None:
        super().__init__(
            app_url=app_url, signing_secret=signing_secret, socket=socket, ack_timeout_s=ack_timeout_s
        )
        self.ws = workspace
        self.sandbox_url = sandbox_url
        self.retry_backoff_s = tuple(retry_backoff_s)
        self.max_retries = max_retries
        self.command = command
        self.subscribed_events = set(subscribed_events)

    def _record(self, delivery: Delivery, user: str | None) -> Delivery:
        with self.ws.lock:
            self.ws.deliveries.append({**delivery.summary(), "user": user, "at": self.ws.clock.now()})
            self.ws.touch()
        return delivery

    # -- what Slack sends -----------------------------------------------------------------------------
    def _user_and_channel(self, user: str, channel: str) -> dict[str, Any]:
        if user not in self.ws.users:
            raise DeliveryError(f"unknown user {user!r}; known: {', '.join(sorted(self.ws.users))}")
        try:
            return self.ws.channel(channel, by_name=True)
        except ApiError:
            raise DeliveryError(f"unknown channel {channel!r}") from None

    def slash_command(self, *, user: str, channel: str, text: str, command: str | None = None) -> Delivery:
        """Send a slash command as `user` typed it in `channel`; show the ack body as Slack would."""
        chan = self._user_and_channel(user, channel)
        form = slash_command_form(
            self.ws,
            user=user,
            channel=chan,
            command=command or self.command,
            text=text,
            response_url=self.ws.issue_response_url(self.sandbox_url, channel=chan["id"], user=user),
            trigger_id=self.ws.issue_trigger(user),
        )
        attempt = self.deliver("slash_commands", form)
        delivery = Delivery("command", f"{form['command']} {text}".strip(), form, (attempt,))
        self._apply_command_ack(delivery, chan["id"], user)
        return self._record(delivery, user)

    def _apply_command_ack(self, delivery: Delivery, channel_id: str, user: str) -> None:
        if not delivery.ok:
            timed_out = delivery.attempts[-1].failure in ("http_timeout", "timeout")
            error = "operation_timeout" if timed_out else "dispatch_failed"
            self.ws.post_ephemeral(
                channel_id=channel_id,
                user=user,
                text=f'{delivery.payload["command"]} failed with the error "{error}"',
                blocks=[],
                source="slack",
            )
            return
        if not delivery.body.strip():
            return
        reply = delivery.json()
        if not isinstance(reply, dict):
            reply = {"text": delivery.body}
        text, blocks = str(reply.get("text", "")), list(reply.get("blocks") or [])
        if reply.get("response_type") == "in_channel":
            self.ws.post(channel_id=channel_id, text=text, blocks=blocks, user=self.ws.bot_user_id)
        else:
            self.ws.post_ephemeral(channel_id=channel_id, user=user, text=text, blocks=blocks, source="ack")

    def event(self, event: dict[str, Any], *, event_id: str | None = None) -> Delivery:
        """Deliver an Events API event in its envelope, retrying like Slack on a failed ack."""
        envelope = event_envelope(self.ws, event, event_id=event_id or "Ev" + self.ws.new_id("", 10))
        return self.deliver_event_envelope(envelope)

    def deliver_event_envelope(self, envelope: dict[str, Any]) -> Delivery:
        """Send a complete `event_callback` envelope with Slack's retry policy."""
        attempts: list[Attempt] = []
        for retry in range(self.max_retries + 1):
            reason = attempts[-1].failure if attempts else None
            attempt = self.deliver("events_api", envelope, retry_num=retry, retry_reason=reason)
            attempts.append(attempt)
            if attempt.failure is None or attempt.headers.get("x-slack-no-retry") == "1":
                break
            if retry < self.max_retries:
                time.sleep(self.retry_backoff_s[min(retry, len(self.retry_backoff_s) - 1)])
        label = str(envelope.get("event", {}).get("type", "event"))
        user = envelope.get("event", {}).get("user")
        return self._record(
            Delivery("event", label, envelope, tuple(attempts)), user if isinstance(user, str) else None
        )

    def url_verification(self, challenge: str = "sandbox-challenge") -> Delivery:
        """Send the `url_verification` handshake; the delivery fails unless the challenge comes back."""
        if self.socket is not None:
            raise DeliveryError("url_verification is an HTTP handshake; a Socket Mode app gets hello instead")
        payload = {
            "token": self.ws.config.verification_token,
            "challenge": challenge,
            "type": "url_verification",
        }
        attempt = self.send(json.dumps(payload), "application/json")
        if attempt.failure is None:
            echoed = attempt.body
            try:
                parsed = json.loads(echoed)
                echoed = parsed.get("challenge", "") if isinstance(parsed, dict) else echoed
            except json.JSONDecodeError:
                pass
            if echoed != challenge:
                attempt = Attempt(0, attempt.status, attempt.ack_ms, "challenge_mismatch", attempt.body)
        return self._record(Delivery("url_verification", "url_verification", payload, (attempt,)), None)

    def user_message(
        self, *, user: str, channel: str, text: str, thread_ts: str | None = None
    ) -> list[Delivery]:
        """Post a message as a person and deliver the events the app subscribed to (message, app_mention)."""
        chan = self._user_and_channel(user, channel)
        text = self._link_mentions(text)
        try:
            msg = self.ws.post(channel_id=chan["id"], text=text, blocks=[], user=user, thread_ts=thread_ts)
        except ApiError:
            raise DeliveryError(f"no message {thread_ts} in {channel} to reply to") from None
        deliveries = []
        subscription = f"message.{channel_type(chan) if channel_type(chan) != 'group' else 'groups'}"
        subscription = subscription.replace("message.channel", "message.channels")
        kinds = []
        if subscription in self.subscribed_events:
            kinds.append("message")
        if f"<@{self.ws.bot_user_id}>" in text and "app_mention" in self.subscribed_events:
            kinds.append("app_mention")
        for kind in kinds:
            event = message_event(
                self.ws, kind=kind, user=user, channel=chan, text=text, ts=msg.ts, thread_ts=msg.thread_ts
            )
            deliveries.append(self.event(event))
        return deliveries

    def _link_mentions(self, text: str) -> str:
        names = {u.name: u.id for u in self.ws.users.values()}

        def link(match: re.Match[str]) -> str:
            user_id = names.get(match.group(1))
            return f"<@{user_id}>" if user_id else match.group(0)

        return re.sub(r"(?<![<\w])@([a-z0-9._-]+)", link, text)

    def click(
        self, *, user: str, channel: str, message_ts: str, action_id: str, block_id: str | None = None
    ) -> Delivery:
        """Click a button on a stored message (or ephemeral) as `user`; refuse buttons that aren't there."""
        chan = self._user_and_channel(user, channel)
        eph = self.ws.find_ephemeral(chan["id"], message_ts)
        if eph is not None:
            message: dict[str, Any] = {
                "type": "message",
                "text": eph.text,
                "blocks": eph.blocks,
                "ts": eph.ts,
            }
            message.update(user=self.ws.bot_user_id, bot_id=self.ws.config.bot_id)
        else:
            try:
                message = self.ws.find_message(chan["id"], message_ts).to_slack(self.ws.team_id)
            except ApiError:
                raise DeliveryError(f"no message {message_ts} in {channel}") from None
        action = button_action(self.ws, message, action_id, block_id)
        payload = block_actions_payload(
            self.ws,
            user=user,
            channel=chan,
            message=message,
            is_ephemeral=eph is not None,
            action=action,
            trigger_id=self.ws.issue_trigger(user),
            response_url=self.ws.issue_response_url(
                self.sandbox_url,
                channel=chan["id"],
                user=user,
                message_ts=message_ts,
                ephemeral=eph is not None,
            ),
        )
        return self._record(self.deliver_interaction(payload, label=action_id), user)

    def deliver_interaction(self, payload: dict[str, Any], *, label: str | None = None) -> Delivery:
        """Send an interaction payload (HTTP: the form field `payload=`); never retried, as in Slack."""
        attempt = self.deliver("interactive", payload)
        return Delivery(str(payload.get("type")), label or str(payload.get("type")), payload, (attempt,))

    def submit_view(self, *, user: str, view_id: str, values: dict[str, Any] | None = None) -> Delivery:
        """Submit an open modal as `user` and apply the ack's `response_action` (errors, update, clear)."""
        view = self.ws.views.get(view_id)
        if view is None or view["user"] != user:
            raise DeliveryError(f"no open view {view_id} for {user}")
        payload = view_payload(
            self.ws,
            kind="view_submission",
            user=user,
            view=view,
            values=values or {},
            trigger_id=self.ws.issue_trigger(user),
        )
        delivery = self.deliver_interaction(payload, label=view.get("callback_id") or "view_submission")
        with self.ws.lock:
            reply = delivery.json() if delivery.ok else None
            action = reply.get("response_action") if isinstance(reply, dict) else None
            if delivery.ok and action == "errors":
                view["errors"] = reply.get("errors", {})  # type: ignore[union-attr]
            elif delivery.ok and action in ("update", "push") and isinstance(reply.get("view"), dict):  # type: ignore[union-attr]
                view.update(reply["view"])  # type: ignore[index]
            elif delivery.ok:
                self.ws.views.pop(view_id, None)
            self.ws.touch()
        return self._record(delivery, user)

    def close_view(self, *, user: str, view_id: str) -> Delivery | None:
        """Close a modal; send `view_closed` only when the view asked for `notify_on_close`."""
        with self.ws.lock:
            view = self.ws.views.pop(view_id, None)
            self.ws.touch()
        if view is None or not view.get("notify_on_close"):
            return None
        payload = view_payload(self.ws, kind="view_closed", user=user, view=view, values={}, trigger_id="")
        return self._record(self.deliver_interaction(payload), user)

    def deliver_payload(self, payload: dict[str, Any]) -> Delivery:
        """Deliver any complete payload, picking the encoding Slack uses for its kind."""
        kind = payload.get("type")
        if "command" in payload and kind is None:
            form = {
                k: ("true" if v is True else "false" if v is False else "" if v is None else str(v))
                for k, v in payload.items()
            }
            attempt = self.deliver("slash_commands", form)
            return self._record(Delivery("command", str(payload["command"]), payload, (attempt,)), None)
        if kind == "event_callback":
            return self.deliver_event_envelope(payload)
        if kind in INTERACTION_TYPES:
            return self._record(self.deliver_interaction(payload), None)
        raise DeliveryError(f"payload type {kind!r}: expected a slash command, event_callback or interaction")

    def deliver_sample(self, sample: dict[str, Any], *, user: str, channel: str) -> Delivery:
        """Fill a Slack sample payload's blank values with live ids and deliver it."""
        chan = self._user_and_channel(user, channel)
        filler = BlankFiller(
            self.ws,
            user=user,
            channel=chan,
            trigger_id=lambda: self.ws.issue_trigger(user),
            response_url=lambda: self.ws.issue_response_url(self.sandbox_url, channel=chan["id"], user=user),
        )
        return self.deliver_payload(filler.fill(sample))

    def in_background(self, fn: Any, /, **kwargs: Any) -> None:
        """Run a delivery on a daemon thread (the page must not wait for event retries)."""
        threading.Thread(target=fn, kwargs=kwargs, daemon=True, name="sandbox-delivery").start()
