"""How a request reaches the app, exactly as Slack sends it, and how long the ack took.

The transport is chosen per app: signed HTTP POSTs to the app's URL, or, for an app connected in
Socket Mode, envelopes over its websocket (`bot.sandbox.socket_mode`, seen here as a `SocketLink`).
Over HTTP every request is signed (`X-Slack-Signature: v0=HMAC-SHA256(secret, "v0:{ts}:{body}")` with
`X-Slack-Request-Timestamp`). Slash commands are form-encoded; interactions are a form field
`payload=` holding JSON; events are JSON envelopes. An ack slower than `ack_timeout_s` (Slack: 3 s),
a non-2xx status or a refused connection is a failed attempt; retries carry `X-Slack-Retry-Num`
and `X-Slack-Retry-Reason`. Over Socket Mode an envelope not acked in time fails with `timeout`.
"""

from __future__ import annotations

import http.client
import json
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

from slack_sdk.signature import SignatureVerifier

from bot.sandbox.delivery import Attempt, EnvelopeType, SocketLink
from bot.sandbox.errors import DeliveryError


class AppTransport:
    """Sends one request to one app (signed HTTP, or a Socket Mode envelope) and times its ack."""

    def __init__(
        self,
        *,
        app_url: str | None = None,
        signing_secret: str = "",
        socket: SocketLink | None = None,
        ack_timeout_s: float = 3.0,
    ) -> None:
        self.app_url: str | None = None
        self.socket = socket
        if socket is None:
            url = app_url or ""
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise DeliveryError(f"app URL {app_url!r}: expected http(s)://HOST:PORT/slack/events")
            self.app_url = url if parts.path not in ("", "/") else url.rstrip("/") + "/slack/events"
        self.signing_secret = signing_secret
        self.ack_timeout_s = ack_timeout_s

    @property
    def transport(self) -> str:
        """Return how requests reach the app: `http` or `socket` (Socket Mode)."""
        return "socket" if self.socket is not None else "http"

    def deliver(
        self,
        kind: EnvelopeType,
        payload: dict[str, Any],
        *,
        retry_num: int = 0,
        retry_reason: str | None = None,
    ) -> Attempt:
        """Send one request the way Slack does for the app's transport and time the ack.

        Over HTTP a slash command (`slash_commands`) is form-encoded, an interaction (`interactive`) is
        the form field `payload=`, an event envelope (`events_api`) is JSON; over Socket Mode each is
        the `payload` of an envelope of that type.
        """
        if self.socket is not None:
            return self.socket.deliver(
                kind, payload, timeout_s=self.ack_timeout_s, retry_num=retry_num, retry_reason=retry_reason
            )
        if kind == "slash_commands":
            return self.send(urlencode(payload), "application/x-www-form-urlencoded")
        if kind == "interactive":
            return self.send(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")
        return self.send(
            json.dumps(payload), "application/json", retry_num=retry_num, retry_reason=retry_reason
        )

    def sign(self, body: str, timestamp: int) -> str:
        """Return the `X-Slack-Signature` value for a body sent at `timestamp`."""
        signature = SignatureVerifier(self.signing_secret).generate_signature(
            timestamp=str(timestamp), body=body
        )
        assert signature is not None
        return signature

    def send(
        self,
        body: str,
        content_type: str,
        *,
        retry_num: int = 0,
        retry_reason: str | None = None,
        timestamp: int | None = None,
        signature: str | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> Attempt:
        """POST one signed request to the app and time the ack (pass `timestamp`/`signature` to forge)."""
        if self.app_url is None:
            raise DeliveryError("the app is connected in Socket Mode; raw HTTP requests need an app URL")
        ts = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Content-Type": content_type,
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": signature if signature is not None else self.sign(body, ts),
            **(extra_headers or {}),
        }
        if retry_num:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason or "unknown_error"
        parts = urlsplit(self.app_url)
        conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = conn_cls(parts.hostname or "", parts.port, timeout=self.ack_timeout_s)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        started = time.perf_counter()
        try:
            conn.request("POST", path, body=body.encode("utf-8"), headers=headers)
            response = conn.getresponse()
            raw = response.read().decode("utf-8", errors="replace")
            elapsed = (time.perf_counter() - started) * 1000
            resp_headers = {k.lower(): v for k, v in response.getheaders()}
        except TimeoutError:
            return Attempt(retry_num, None, (time.perf_counter() - started) * 1000, "http_timeout", "")
        except OSError:
            return Attempt(retry_num, None, (time.perf_counter() - started) * 1000, "connection_failed", "")
        finally:
            conn.close()
        failure = None
        if elapsed > self.ack_timeout_s * 1000:
            failure = "http_timeout"
        elif 300 <= response.status < 400:
            failure = "too_many_redirects"
        elif not 200 <= response.status < 300:
            failure = "http_error"
        return Attempt(retry_num, response.status, elapsed, failure, raw, resp_headers)
