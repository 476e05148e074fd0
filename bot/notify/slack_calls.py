"""The outbox's seam to Slack: Web API and response_url calls, failures translated into `Retry`.

Outside exceptions become ours where they enter (as `incidents_db/db.py` does for the database): a 429
is `Retry(counted=False)` with Slack's Retry-After; a 5xx, a timeout or a reset connection is an
uncertain `Retry` (Slack may have done the work); any other Slack error is a fatal one. `read_back`
finds the bot's own posts again by the message metadata they carried.
"""

from __future__ import annotations

import re
import urllib.error
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from opentelemetry.trace import SpanKind
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient
from sqlalchemy.orm import Session

from bot import tracing
from bot.notify.errors import Retry
from bot.services import Services
from incidents_db import outbox

RETRYABLE_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout"})
# how far before a row was queued a lookup reads back (Slack's clock vs ours, time spent in the queue)
LOOKUP_MARGIN_S = 600.0
LOOKUP_PAGES = 5
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")


def _header(response: Any, name: str) -> str | None:
    headers = getattr(response, "headers", None) or {}
    for key, value in dict(headers).items():
        if str(key).lower() == name.lower():
            return str(value[0] if isinstance(value, list) else value)
    return None


def _not_sent(exc: BaseException) -> bool:
    """Return True when a transport error proves the request never reached Slack (refused, no DNS)."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return isinstance(reason, ConnectionRefusedError) or type(reason).__name__ == "gaierror"


@contextmanager
def _answered(method: str, attempts: int) -> Iterator[None]:
    """Run one Slack call in a client span naming the method, the attempt and Slack's answer."""
    with tracing.span(f"slack {method}", kind=SpanKind.CLIENT, method=method, attempt=attempts + 1) as span:
        try:
            yield
        except Retry as exc:
            span.set_attribute("remediate.answer", exc.slack_error or exc.error)
            raise
        span.set_attribute("remediate.answer", "ok")


class SlackCalls:
    """Calls for the outbox worker (its thread only): translated failures, read-back, the bot's identity."""

    def __init__(self, services: Services, client: WebClient) -> None:
        self.services = services
        self.client = client
        self.answered = False  # did Slack answer a call since the worker last reset this
        self._channel_ids: dict[str, str] = {}
        self._me: tuple[str, str] | None = None  # the bot's user id and bot id, for lookups

    def backoff(self, attempts: int) -> float:
        """Return the delay before attempt ``attempts + 1``: base x 2^attempts, capped."""
        return float(
            min(self.services.settings.retry_max_s, self.services.settings.retry_base_s * (2**attempts))
        )

    def call(self, attempts: int, method: str, *, read: bool = False, **kwargs: Any) -> Any:
        """Call a Web API method (reads as GET with query arguments); translate failures into `Retry`."""
        with _answered(method, attempts):
            return self._call(attempts, method, read=read, **kwargs)

    def _call(self, attempts: int, method: str, *, read: bool = False, **kwargs: Any) -> Any:
        try:
            if read:
                params = {k: v for k, v in kwargs.items() if v is not None}
                answer = self.client.api_call(method, http_verb="GET", params=params)
            else:
                answer = self.client.api_call(method, json=kwargs)
        except SlackApiError as exc:
            self.answered = True
            status = exc.response.status_code
            error = str(exc.response.get("error", "")) if exc.response is not None else ""
            if status == 429:
                after = _header(exc.response, "Retry-After")
                delay = (
                    float(after) if after and after.replace(".", "", 1).isdigit() else self.backoff(attempts)
                )
                raise Retry(
                    max(delay, self.services.settings.retry_base_s),
                    f"{method}: 429 rate limited",
                    counted=False,
                ) from None
            if status >= 500 or error in RETRYABLE_ERRORS:
                raise Retry(
                    self.backoff(attempts), f"{method}: HTTP {status} {error}".strip(), uncertain=True
                ) from None
            details = exc.response.get("errors") if exc.response is not None else None
            detail = f" {details}" if details else ""
            raise Retry(0, f"{method}: {error or status}{detail}", fatal=True, slack_error=error) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            raise Retry(
                self.backoff(attempts), f"{method}: {type(exc).__name__}: {exc}", uncertain=not _not_sent(exc)
            ) from None
        self.answered = True
        return answer

    def post_url(self, message: outbox.Message) -> dict[str, Any]:
        """POST a reply to its response_url; 429 and 5xx as for the Web API, an expired URL falls back."""
        with _answered("response_url", message.attempts):
            return self._post_url(message)

    def _post_url(self, message: outbox.Message) -> dict[str, Any]:
        payload = message.payload
        hook = WebhookClient(str(payload["url"]), timeout=int(self.client.timeout), retry_handlers=[])
        try:
            answer = hook.send_dict(dict(payload["body"]))
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            raise Retry(
                self.backoff(message.attempts),
                f"response_url: {type(exc).__name__}: {exc}",
                uncertain=not _not_sent(exc),
            ) from None
        self.answered = True
        status = answer.status_code
        if status == 429:
            after = _header(answer, "Retry-After")
            delay = float(after) if after and after.replace(".", "", 1).isdigit() else 1.0
            raise Retry(
                max(delay, self.services.settings.retry_base_s),
                "response_url: 429 rate limited",
                counted=False,
            )
        if status >= 500:
            raise Retry(self.backoff(message.attempts), f"response_url: HTTP {status}", uncertain=True)
        if status in (404, 410) and payload.get("channel") and payload.get("user"):
            # the URL expired or was used up (30 minutes, 5 uses): say it ephemerally instead
            body = payload["body"]
            sent = self.call(
                message.attempts,
                "chat.postEphemeral",
                channel=payload["channel"],
                user=payload["user"],
                text=body.get("text", ""),
            )
            return {"fallback": f"response_url: HTTP {status}", "message_ts": sent.get("message_ts")}
        if status >= 400:
            raise Retry(0, f"response_url: HTTP {status} {answer.body}"[:500], fatal=True)
        return {"status": status}

    def channel_id(self, session: Session, attempts: int, ref: str) -> str:
        """Return the id of a channel named by id or name (conversations.history wants an id)."""
        if CHANNEL_ID.match(ref):
            return ref
        if ref in self._channel_ids:
            return self._channel_ids[ref]
        if ref == self.services.settings.incident_channel:  # where the cards go: an earlier card says its id
            known = outbox.latest_card_channel(db_session=session)
            if known is not None:
                return known
        name, cursor = ref.lstrip("#"), None
        for _ in range(20):
            page = self.call(
                attempts,
                "conversations.list",
                read=True,
                types="public_channel,private_channel",
                limit=200,
                cursor=cursor,
            )
            for chan in page.get("channels", []):
                if chan.get("name") == name:
                    self._channel_ids[ref] = str(chan["id"])
                    return str(chan["id"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        raise Retry(0, f"channel {ref!r} not found among the bot's channels", fatal=True)

    def read_back(
        self,
        attempts: int,
        *,
        channel: str,
        since: datetime | None,
        event_type: str,
        match: Callable[[dict[str, Any]], bool],
        thread_ts: str | None = None,
    ) -> list[dict[str, Any]]:
        """Return the messages in a channel (or a thread) since ``since`` whose metadata matches, oldest first."""
        start = (since or self.services.clock()) - timedelta(seconds=LOOKUP_MARGIN_S)
        args: dict[str, Any] = {
            "channel": channel,
            "oldest": f"{start.timestamp():.6f}",
            "include_all_metadata": "true",
            "limit": 200,
        }
        method = "conversations.history"
        if thread_ts is not None:
            method, args["ts"] = "conversations.replies", thread_ts
        mine = self.identity(attempts)
        found: list[dict[str, Any]] = []
        cursor = None
        for _ in range(LOOKUP_PAGES):
            page = self.call(attempts, method, read=True, cursor=cursor, **args)
            for msg in page.get("messages", []):
                meta = msg.get("metadata") or {}
                if (
                    meta.get("event_type") == event_type
                    and match(meta.get("event_payload") or {})
                    and (
                        (mine[1] and msg.get("bot_id") == mine[1]) or (mine[0] and msg.get("user") == mine[0])
                    )
                ):  # another app may post the same metadata: only our own posts are adopted
                    found.append(msg)
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        return sorted(found, key=lambda m: float(m["ts"]))

    def identity(self, attempts: int) -> tuple[str, str]:
        """Return the bot's (user id, bot id), asked once of auth.test."""
        if self._me is None:
            me = self.call(attempts, "auth.test")
            self._me = (str(me.get("user_id") or ""), str(me.get("bot_id") or ""))
        return self._me
