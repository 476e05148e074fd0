"""The sandbox's HTTP request handler: routes each request to the Web API, a `response_url`, the page.

Routes:
    POST|GET /api/<method>           Slack Web API (form, JSON or query arguments; Bearer token)
    GET      /link/?ticket=...       Socket Mode: the websocket `apps.connections.open` hands out
    POST     /response/<id>          response_url posts
    GET      /                       the page; GET /static/<file> its script and style
    GET      /_sandbox/...           inspection (state, messages, ephemerals, views, calls, deliveries, ui)
    POST     /_sandbox/...           control (faults, rate_limits, clock, reset) and page actions (act/*)
"""

from __future__ import annotations

import base64
import json
import logging
import socket
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bot.sandbox.control import control, inspect
from bot.sandbox.core import SandboxCore
from bot.sandbox.errors import SandboxError
from bot.sandbox.oauth import AUTHORIZE_PATH
from bot.sandbox.websocket import WebSocket, accept_key

log = logging.getLogger("remediate.sandbox")
STATIC = {"sandbox.js": "text/javascript", "sandbox.css": "text/css", "index.html": "text/html"}


class Handler(BaseHTTPRequestHandler):
    """Answers one HTTP request (or one Socket Mode link) for the sandbox the server carries."""

    protocol_version = "HTTP/1.1"
    server_version = "remediate-slack-sandbox/1"

    @property
    def sandbox(self) -> SandboxCore:
        """Return the sandbox this server answers for."""
        return self.server.sandbox  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:
        """Log requests at debug level (the standard library writes them to stderr)."""
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        """Answer a GET: a Socket Mode link upgrade on `/link/`, else a route."""
        if urlsplit(self.path).path.rstrip("/") == "/link":
            self._socket_mode()
            return
        self._route("GET")

    def _socket_mode(self) -> None:
        """Upgrade to a websocket (RFC 6455) for a ticket from `apps.connections.open`, then serve it."""
        query = parse_qs(urlsplit(self.path).query)
        key = self.headers.get("Sec-WebSocket-Key", "")
        if (
            self.headers.get("Upgrade", "").lower() != "websocket"
            or "upgrade" not in self.headers.get("Connection", "").lower()
            or self.headers.get("Sec-WebSocket-Version") != "13"
            or not key
        ):
            self._send(400, {"ok": False, "error": "expected a websocket upgrade (RFC 6455, version 13)"})
            return
        if not self.sandbox.socket_mode.admit(query.get("ticket", [""])[-1]):
            self._send(
                401, {"ok": False, "error": "invalid_ticket: call apps.connections.open for a new URL"}
            )
            return
        self.send_response(HTTPStatus.SWITCHING_PROTOCOLS)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept_key(key))
        self.end_headers()
        self.close_connection = True
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # envelopes are small
        self.sandbox.connect_socket_mode()
        self.sandbox.socket_mode.serve(WebSocket(self.connection, self.rfile))

    def do_POST(self) -> None:
        """Answer a POST."""
        self._route("POST")

    def do_DELETE(self) -> None:
        """Answer a DELETE (only `/_sandbox/faults`)."""
        self._route("DELETE")

    def _body(self) -> tuple[dict[str, Any], bool]:
        """Return the request's arguments and whether the body was JSON."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8") if length else ""
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype == "application/json":
            parsed = json.loads(raw) if raw.strip() else {}
            if not isinstance(parsed, dict):
                raise ValueError("expected a JSON object")
            return parsed, True
        return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}, False

    def _route(self, verb: str) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        path = parts.path
        try:
            body, is_json = self._body() if verb != "GET" else ({}, False)
        except (ValueError, UnicodeDecodeError):
            self._send(200, {"ok": False, "error": "invalid_json"})
            return
        try:
            if path.startswith("/api/"):
                auth = self.headers.get("Authorization", "")
                token = auth[7:].strip() if auth.startswith("Bearer ") else None
                if token is None and not is_json:
                    token = str(body.get("token") or query.get("token") or "") or None
                status, headers, result = self.sandbox.call_api(
                    path[5:], {**query, **body, **_basic(auth)}, token
                )
                self._send(status, result, headers)
            elif path.startswith("/response/") and verb == "POST":
                status, headers, result = self.sandbox.call_response_url(path[len("/response/") :], body)
                self._send(status, result, headers)
            elif path == AUTHORIZE_PATH and verb == "GET":  # the person clicked Allow
                self._found(self.sandbox.oauth.authorize(query))
            elif path.startswith("/_sandbox/"):
                name = path[len("/_sandbox/") :]
                if verb == "GET":
                    self._send(200, inspect(self.sandbox, name, query))
                else:
                    self._send(200, control(self.sandbox, verb, name, body))
            elif verb == "GET":
                self._static(path)
            else:
                self._send(404, {"ok": False, "error": "not_found"})
        except SandboxError as exc:
            self._send(400, {"ok": False, "error": str(exc)})
        except LookupError as exc:
            self._send(404, {"ok": False, "error": str(exc).strip("'\"")})

    def _found(self, location: str) -> None:
        self.send_response(HTTPStatus.FOUND)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _static(self, path: str) -> None:
        if path.startswith("/archives/"):
            self._found(f"/#{path.split('/')[2]}")
            return
        name = "index.html" if path in ("/", "/index.html") else path.removeprefix("/static/")
        if name not in STATIC:
            self._send(404, {"ok": False, "error": "not_found"})
            return
        data = resources.files("bot.sandbox").joinpath("static", name).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", f"{STATIC[name]}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        if status == 0:  # a `hang` fault that drops the connection without answering
            self.close_connection = True
            return
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


def _basic(auth: str) -> dict[str, str]:
    """Return the client id and secret of HTTP Basic auth (how `oauth.v2.access` may authenticate)."""
    if not auth.startswith("Basic "):
        return {}
    try:
        client_id, _, secret = base64.b64decode(auth[6:].strip()).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return {}
    return {"client_id": client_id, "client_secret": secret}
