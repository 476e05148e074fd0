"""Slack's per-method rate limits (tiers, token buckets) and faults that tests inject on purpose.

Slack publishes limits per method as tiers of calls per minute per workspace, allowing short bursts;
`chat.postMessage` is special: about one message per second per channel, with bursts. Each limit is
a token bucket of `burst` tokens refilled at `per_minute / 60` per second. A refused call gets HTTP 429
with `Retry-After` (whole seconds until a token is back) and `{"ok": false, "error": "ratelimited"}`.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from bot.sandbox.clock import SandboxClock
from bot.sandbox.errors import SandboxError

TIER_PER_MINUTE = {1: 1, 2: 20, 3: 50, 4: 100}

METHOD_TIERS: dict[str, int] = {
    "auth.test": 4,
    "chat.update": 3,
    "chat.postEphemeral": 4,
    "chat.getPermalink": 4,
    "views.open": 4,
    "views.update": 4,
    "views.publish": 4,
    "users.info": 4,
    "usergroups.users.list": 2,
    "conversations.list": 2,
    "conversations.info": 3,
    "conversations.history": 3,
    "conversations.replies": 3,
    "conversations.join": 3,
    "conversations.create": 2,
    "conversations.invite": 3,
    "conversations.archive": 2,
}
POST_MESSAGE_PER_MINUTE = 60
POST_MESSAGE_BURST = 10

FAULT_KINDS = ("rate_limited", "server_error", "hang", "error")
FAULT_THEN = ("drop", "process", "lose")


@dataclass(frozen=True)
class Limit:
    """A token bucket: `burst` calls at once, refilled at `per_minute` per minute."""

    per_minute: float
    burst: float


@dataclass
class Fault:
    """The next `remaining` calls to `method` (`*` for any) fail this way instead of running."""

    method: str
    kind: str
    remaining: int
    retry_after: int = 1
    status: int = 500
    hang_s: float = 10.0
    then: str = "drop"
    error: str = "invalid_blocks"

    def to_json(self) -> dict[str, Any]:
        """Return the fault as the control API shows it."""
        return self.__dict__.copy()


def parse_fault(body: dict[str, Any]) -> Fault:
    """Build a fault from the control API's JSON body; refuse unknown kinds and bad numbers."""
    kind = str(body.get("kind", ""))
    aliases = {"429": "rate_limited", "500": "server_error", "5xx": "server_error", "timeout": "hang"}
    if kind in ("invalid_blocks", "invalid_attachments", "msg_too_long"):  # an `error` fault by its name
        body = {**body, "error": kind}
        kind = "error"
    kind = aliases.get(kind, kind)
    if kind not in FAULT_KINDS:
        raise SandboxError(f"fault kind {body.get('kind')!r}: expected one of {', '.join(FAULT_KINDS)}")
    method = str(body.get("method", "*"))
    try:
        fault = Fault(
            method=method,
            kind=kind,
            remaining=int(body.get("count", 1)),
            retry_after=int(body.get("retry_after", 1)),
            status=int(body.get("status", 500)),
            hang_s=float(body.get("hang_s", 10.0)),
            then=str(body.get("then", "drop")),
            error=str(body.get("error", "invalid_blocks")),
        )
    except (TypeError, ValueError) as exc:
        raise SandboxError(f"fault for {method}: {exc}; count, retry_after and status are integers") from None
    if fault.remaining < 1 or fault.retry_after < 0 or not 500 <= fault.status <= 599:
        raise SandboxError(f"fault for {method}: count >= 1, retry_after >= 0 and status 5xx expected")
    if fault.then not in FAULT_THEN:
        raise SandboxError(
            f"fault for {method}: then must be one of {', '.join(FAULT_THEN)}, got {fault.then!r}"
        )
    if not fault.error:
        raise SandboxError(f"fault for {method}: error must name a Slack error, e.g. invalid_blocks")
    return fault


class RateLimiter:
    """Per-workspace token buckets per method (per channel for `chat.postMessage`) plus injected faults."""

    def __init__(self, clock: SandboxClock, *, enabled: bool = True) -> None:
        self.clock = clock
        self.enabled = enabled
        self._lock = threading.Lock()
        self._overrides: dict[str, Limit] = {}
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._faults: deque[Fault] = deque()

    def limit_for(self, method: str) -> Limit | None:
        """Return the limit a method has now (overrides first), or None for unlimited methods."""
        if method in self._overrides:
            return self._overrides[method]
        if method == "chat.postMessage":
            return Limit(POST_MESSAGE_PER_MINUTE, POST_MESSAGE_BURST)
        tier = METHOD_TIERS.get(method)
        if tier is None:
            return None
        per_minute = TIER_PER_MINUTE[tier]
        return Limit(per_minute, per_minute)

    def set_limit(self, method: str, *, per_minute: float, burst: float | None = None) -> Limit:
        """Override one method's limit (tests make it tiny to reach 429 quickly)."""
        if per_minute <= 0:
            raise SandboxError(f"rate limit for {method}: per_minute must be positive, got {per_minute}")
        limit = Limit(per_minute, burst if burst is not None else max(1.0, per_minute / 60))
        with self._lock:
            self._overrides[method] = limit
            self._buckets = {k: v for k, v in self._buckets.items() if k[0] != method}
        return limit

    def check(self, method: str, scope: str = "") -> int | None:
        """Take one token for `method` in `scope`; return None if allowed, else Retry-After seconds."""
        if not self.enabled:
            return None
        limit = self.limit_for(method)
        if limit is None:
            return None
        rate = limit.per_minute / 60.0
        now = self.clock.now()
        with self._lock:
            tokens, last = self._buckets.get((method, scope), (limit.burst, now))
            tokens = min(limit.burst, tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[(method, scope)] = (tokens - 1.0, now)
                return None
            self._buckets[(method, scope)] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / rate))

    def add_fault(self, fault: Fault) -> None:
        """Queue a fault; faults apply in the order they were added."""
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        """Forget faults, overrides and bucket levels."""
        with self._lock:
            self._faults.clear()
            self._overrides.clear()
            self._buckets.clear()

    def faults(self) -> list[dict[str, Any]]:
        """Return the faults still pending."""
        with self._lock:
            return [f.to_json() for f in self._faults]

    def take_fault(self, method: str) -> Fault | None:
        """Return (and count down) the first pending fault that applies to `method`."""
        with self._lock:
            for fault in self._faults:
                if fault.method in (method, "*"):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
            return None
