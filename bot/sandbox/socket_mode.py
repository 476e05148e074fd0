"""Slack's Socket Mode, sandbox side: `apps.connections.open` tickets, the websocket link, envelopes, acks.

An app calls `apps.connections.open` with its app-level token (`xapp-...`) and gets a
`ws://.../link/?ticket=...` URL; the ticket is good for one connection within `TICKET_TTL_S`. On
connect the sandbox sends `{"type": "hello", ...}`; afterwards every request Slack would have POSTed
arrives as an envelope::

    {"envelope_id": "...", "type": "slash_commands" | "events_api" | "interactive",
     "payload": {...}, "accepts_response_payload": bool}   (+ "retry_attempt", "retry_reason" for events)

and the app acks with `{"envelope_id": "..."}`, optionally with a `payload` (the body an HTTP app
would have answered with). An envelope not acked within the ack timeout (Slack: 3 s) is a failed
attempt with the reason `timeout`; the driver then retries events like Slack (`retry_attempt` 1..3).
With several connections open, envelopes go to them in turn, so a retry may reach another one.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from bot.sandbox.delivery import Attempt, EnvelopeType
from bot.sandbox.errors import ProtocolError
from bot.sandbox.websocket import CLOSE_GOING_AWAY, OP_CLOSE, OP_TEXT, WebSocket
from bot.sandbox.workspace import Workspace

log = logging.getLogger("remediate.sandbox.socket_mode")
TICKET_TTL_S = 30.0
# interactions whose ack body Slack uses (response_action, options); others are acked empty
ACCEPTS_RESPONSE = frozenset({"view_submission", "block_suggestion"})


@dataclass
class _Pending:
    connection: _Connection
    acked: threading.Event = field(default_factory=threading.Event)
    ack: dict[str, Any] | None = None


@dataclass
class _Connection:
    id: str
    socket: WebSocket
    opened_at: float
    envelopes: int = 0
    acks: int = 0


class SocketModeHub:
    """The Socket Mode side of the sandbox: issues tickets, holds the open links, delivers envelopes."""

    def __init__(self, workspace: Workspace, *, ticket_ttl_s: float = TICKET_TTL_S) -> None:
        self.ws = workspace
        self.ticket_ttl_s = ticket_ttl_s
        self._lock = threading.Lock()
        self._tickets: dict[str, float] = {}
        self._connections: list[_Connection] = []
        self._pending: dict[str, _Pending] = {}
        self._turn = 0
        self.late_acks: list[str] = []
        self.closing = False

    # -- apps.connections.open -----------------------------------------------------------------------
    def issue_url(self, sandbox_url: str) -> str:
        """Return a fresh `ws://HOST:PORT/link/?ticket=...&app_id=...` for one connection."""
        ticket = str(uuid.uuid4())
        with self._lock:
            now = self.ws.clock.now()
            self._tickets = {t: at for t, at in self._tickets.items() if now - at < self.ticket_ttl_s}
            self._tickets[ticket] = now
        base = sandbox_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        return f"{base}link/?ticket={ticket}&app_id={self.ws.config.app_id}"

    def admit(self, ticket: str) -> bool:
        """Spend a ticket: True once per ticket issued within the last `ticket_ttl_s` seconds."""
        with self._lock:
            issued = self._tickets.pop(ticket, None)
        return issued is not None and self.ws.clock.now() - issued < self.ticket_ttl_s

    # -- the link ------------------------------------------------------------------------------------
    @property
    def connections(self) -> int:
        """Return how many Socket Mode connections are open."""
        with self._lock:
            return len(self._connections)

    def serve(self, socket: WebSocket) -> None:
        """Run one connection until it closes (called on the HTTP handler thread that upgraded it)."""
        conn = _Connection(id=str(uuid.uuid4()), socket=socket, opened_at=time.time())
        with self._lock:
            if self.closing:
                socket.close(CLOSE_GOING_AWAY, "the sandbox is stopping")
                return
            self._connections.append(conn)
            count = len(self._connections)
        self.ws.touch()
        try:
            socket.send_text(json.dumps(self._hello(count)))
            while True:
                message = socket.receive()
                if message.opcode == OP_CLOSE:
                    socket.close()
                    return
                if message.opcode == OP_TEXT:
                    self._on_text(conn, message.data)
                # pings were answered by `receive`; pongs and binary messages mean nothing to Slack
        except ProtocolError as exc:
            log.info("closing a Socket Mode connection: %s", exc)
            socket.close(exc.code, str(exc))
        except (ConnectionError, OSError):
            pass
        finally:
            socket.close()
            with self._lock:
                self._connections = [c for c in self._connections if c is not conn]
                for pending in self._pending.values():
                    if pending.connection is conn:
                        pending.acked.set()  # wake the waiter; no ack recorded means a failed attempt
            self.ws.touch()

    def _hello(self, count: int) -> dict[str, Any]:
        return {
            "type": "hello",
            "num_connections": count,
            "debug_info": {
                "host": "applink-sandbox",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": self.ws.config.app_id},
        }

    def _on_text(self, conn: _Connection, data: bytes) -> None:
        try:
            ack = json.loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            log.info("ignoring a Socket Mode message that is not JSON: %r", data[:200])
            return
        envelope_id = ack.get("envelope_id") if isinstance(ack, dict) else None
        if not isinstance(envelope_id, str):
            log.info("ignoring a Socket Mode message without an envelope_id: %r", data[:200])
            return
        with self._lock:
            pending = self._pending.get(envelope_id)
            if pending is None:
                self.late_acks.append(envelope_id)
                return
            conn.acks += 1
            pending.ack = ack
        pending.acked.set()

    def close_all(self) -> None:
        """Close every connection (1001 going away) and refuse new ones."""
        with self._lock:
            self.closing = True
            open_now = list(self._connections)
        for conn in open_now:
            conn.socket.close(CLOSE_GOING_AWAY, "the sandbox is stopping")

    # -- delivering ----------------------------------------------------------------------------------
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
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind == "slash_commands"
            or (kind == "interactive" and payload.get("type") in ACCEPTS_RESPONSE),
        }
        if kind == "events_api":
            envelope.update(retry_attempt=retry_num, retry_reason=retry_reason or "")
        started = time.perf_counter()

        def failed(reason: str) -> Attempt:
            elapsed = (time.perf_counter() - started) * 1000
            return Attempt(retry_num, None, elapsed, reason, "", envelope_id=envelope_id)

        with self._lock:
            if not self._connections:
                return failed("connection_failed")
            conn = self._connections[self._turn % len(self._connections)]
            self._turn += 1
            conn.envelopes += 1
            pending = self._pending[envelope_id] = _Pending(conn)
        try:
            conn.socket.send_text(json.dumps(envelope))
            pending.acked.wait(timeout_s)
        except OSError:
            pass
        finally:
            with self._lock:
                self._pending.pop(envelope_id, None)
        elapsed = (time.perf_counter() - started) * 1000
        if pending.ack is None:
            return failed("timeout" if not conn.socket.closed else "connection_failed")
        if elapsed > timeout_s * 1000:
            return failed("timeout")
        body = pending.ack.get("payload")
        text = json.dumps(body) if isinstance(body, dict) else "" if body is None else str(body)
        return Attempt(retry_num, None, elapsed, None, text, envelope_id=envelope_id)
