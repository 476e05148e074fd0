"""What one request to the app is: its attempts and how each ended, and where Socket Mode envelopes go.

Both transports (signed HTTP POSTs in `bot.sandbox.transport`, Socket Mode envelopes in
`bot.sandbox.socket_mode`) report an `Attempt`; the driver gathers them into a `Delivery`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

EnvelopeType = Literal["slash_commands", "events_api", "interactive"]


@dataclass(frozen=True)
class Attempt:
    """One request to the app (an HTTP POST, or a Socket Mode envelope with its id) and how it ended."""

    retry_num: int
    status: int | None
    ack_ms: float
    failure: str | None
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    envelope_id: str | None = None


@dataclass(frozen=True)
class Delivery:
    """A request Slack made to the app, with every attempt (more than one only for events)."""

    kind: str
    label: str
    payload: dict[str, Any]
    attempts: tuple[Attempt, ...]

    @property
    def ok(self) -> bool:
        """Return True when the last attempt was acked in time with a 2xx status."""
        return self.attempts[-1].failure is None

    @property
    def status(self) -> int | None:
        """Return the HTTP status of the last attempt (None without a response, and over Socket Mode)."""
        return self.attempts[-1].status

    @property
    def body(self) -> str:
        """Return the body of the last attempt's response (Socket Mode: the ack's payload as JSON)."""
        return self.attempts[-1].body

    @property
    def ack_ms(self) -> float:
        """Return how long the last attempt took, in milliseconds."""
        return self.attempts[-1].ack_ms

    @property
    def retries(self) -> int:
        """Return how many retries followed the first attempt."""
        return len(self.attempts) - 1

    def json(self) -> Any:
        """Return the last response body parsed as JSON (None when empty or not JSON)."""
        try:
            return json.loads(self.body) if self.body else None
        except json.JSONDecodeError:
            return None

    def summary(self) -> dict[str, Any]:
        """Return a small record of the delivery for the inspection API and the page."""
        return {
            "kind": self.kind,
            "label": self.label,
            "ok": self.ok,
            "status": self.status,
            "ack_ms": round(self.ack_ms, 1),
            "retries": self.retries,
            "failure": self.attempts[-1].failure,
            "transport": "socket" if self.attempts[-1].envelope_id else "http",
        }


class SocketLink(Protocol):
    """Where Socket Mode envelopes go: the sandbox's `SocketModeHub`, seen from the driver."""

    def deliver(
        self,
        kind: EnvelopeType,
        payload: dict[str, Any],
        *,
        timeout_s: float,
        retry_num: int = 0,
        retry_reason: str | None = None,
    ) -> Attempt:
        """Send one envelope to an open connection and wait up to `timeout_s` for its ack."""
        ...
