"""The sandbox's HTTP server: Slack's Web API, `response_url`s, an inspection/control API and the page.

Built on the standard library's `ThreadingHTTPServer`: one thread per request, so a call held open
by a `hang` fault never blocks the others (waitress would queue behind a fixed thread pool), it binds
port 0 for tests, shuts down promptly in-process, and adds no dependency.

Routes:
    POST|GET /api/<method>           Slack Web API (form, JSON or query arguments; Bearer token)
    GET      /link/?ticket=...       Socket Mode: the websocket `apps.connections.open` hands out
    POST     /response/<id>          response_url posts
    GET      /                       the page; GET /static/<file> its script and style
    GET      /_sandbox/...           inspection (state, messages, ephemerals, views, calls, deliveries, ui)
    POST     /_sandbox/...           control (faults, rate_limits, clock, reset) and page actions (act/*)
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bot.sandbox.control import control, inspect
from bot.sandbox.driver import DEFAULT_EVENTS, AppDriver
from bot.sandbox.errors import ApiError, SandboxError
from bot.sandbox.limits import Fault, RateLimiter
from bot.sandbox.socket_mode import SocketModeHub
from bot.sandbox.webapi import METHODS, Args, respond
from bot.sandbox.websocket import WebSocket, accept_key
from bot.sandbox.workspace import Workspace, WorkspaceConfig

log = logging.getLogger("remediate.sandbox")
STATIC = {"sandbox.js": "text/javascript", "sandbox.css": "text/css", "index.html": "text/html"}


@dataclass(frozen=True)
class SandboxOptions:
    """How to run the sandbox: where it listens, which app it drives, how strict it is."""

    host: str = "127.0.0.1"
    port: int = 0
    app_url: str | None = None
    signing_secret: str | None = None
    workspace: WorkspaceConfig = field(default_factory=WorkspaceConfig)
    rate_limits: bool = True
    ack_timeout_s: float = 3.0
    retry_backoff_s: tuple[float, ...] = (0.0, 1.0, 5.0)
    subscribed_events: tuple[str, ...] = DEFAULT_EVENTS
    command: str = "/remediate"


class SlackSandbox:
    """A running stand-in for Slack: `with SlackSandbox(options) as sandbox: WebClient(base_url=sandbox.api_url)`."""

    def __init__(self, options: SandboxOptions | None = None) -> None:
        self.options = options or SandboxOptions()
        self.workspace = Workspace(self.options.workspace)
        self.limiter = RateLimiter(self.workspace.clock, enabled=self.options.rate_limits)
        self.socket_mode = SocketModeHub(self.workspace)
        self.stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.driver: AppDriver | None = None

    @property
    def url(self) -> str:
        """Return the base URL of the sandbox (the page)."""
        if self._server is None:
            raise SandboxError("the sandbox is not running; call start() first")
        host, port = str(self._server.server_address[0]), self._server.server_address[1]
        return f"http://{host}:{port}/"

    @property
    def api_url(self) -> str:
        """Return the Web API base URL, for `WebClient(base_url=...)` and `SLACK_API_URL`."""
        return self.url + "api/"

    @property
    def bot_token(self) -> str:
        """Return the first configured bot token."""
        return self.workspace.config.bot_tokens[0]

    @property
    def app_token(self) -> str:
        """Return the first configured app-level token (`xapp-...`, for Socket Mode)."""
        return self.workspace.config.app_tokens[0]

    def start(self) -> SlackSandbox:
        """Bind the port and serve on a background thread."""
        try:
            server = ThreadingHTTPServer((self.options.host, self.options.port), _Handler)
        except OSError as exc:
            raise SandboxError(
                f"cannot listen on {self.options.host}:{self.options.port} ({exc.strerror}); pick another --port"
            ) from None
        server.daemon_threads = True
        server.sandbox = self  # type: ignore[attr-defined]
        self._server = server
        if self.options.app_url:
            self.connect_app(self.options.app_url, self.options.signing_secret or "")
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="slack-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def connect_app(self, app_url: str, signing_secret: str) -> AppDriver:
        """Point the driver (and the page) at an app; returns the driver."""
        if not signing_secret:
            raise SandboxError("a signing secret is needed to drive an app (--signing-secret)")
        return self._drive(app_url=app_url, signing_secret=signing_secret)

    def connect_socket_mode(self) -> AppDriver:
        """Deliver to the app over its Socket Mode connection(s) from now on; returns the driver.

        Called when an app opens a Socket Mode connection (as Slack does once Socket Mode is on for
        an app: Request URLs are no longer used); `connect_app` switches back to HTTP.
        """
        driver = self.driver
        if driver is not None and driver.socket is self.socket_mode:
            return driver
        return self._drive(socket=self.socket_mode)

    def _drive(self, **transport: Any) -> AppDriver:
        """Replace the driver with one delivering over ``transport`` (an app URL and secret, or a socket)."""
        self.driver = AppDriver(
            self.workspace,
            **transport,
            sandbox_url=self.url,
            ack_timeout_s=self.options.ack_timeout_s,
            retry_backoff_s=self.options.retry_backoff_s,
            command=self.options.command,
            subscribed_events=self.options.subscribed_events,
        )
        return self.driver

    def stop(self) -> None:
        """Stop serving, close Socket Mode links, release the port and wake requests held by `hang` faults."""
        self.stopping.set()
        self.socket_mode.close_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> SlackSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request handling (called from handler threads) ----------------------------------------------
    def call_api(
        self, method: str, args: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, str], Any]:
        """Run one Web API call: fault, auth, rate limit, then the method; returns (status, headers, body)."""
        headers: dict[str, str] = {}
        fault = self.limiter.take_fault(method)
        status: int | None
        if fault is not None and fault.kind == "server_error" and fault.then == "process":
            self._call(method, args, token, headers)  # the work is done, then the answer is a 5xx
            status, body = fault.status, {"ok": False, "error": "fatal_error"}
        else:
            status, body = self._call(method, args, token, headers, fault)
        if status is None:
            return 0, {}, None
        error = None if body.get("ok") else str(body.get("error"))
        clean = {k: v for k, v in args.items() if k != "token"}
        self.workspace.record_call(method, clean, status, error)
        if fault is not None and fault.kind == "hang" and fault.then == "lose":
            # processed and stored, but the answer never reaches the client (it times out or sees a reset)
            self.stopping.wait(fault.hang_s)
            return 0, {}, None
        return status, headers, body

    def _call(
        self,
        method: str,
        args: dict[str, Any],
        token: str | None,
        headers: dict[str, str],
        fault: Fault | None = None,
    ) -> tuple[int | None, dict[str, Any]]:
        if fault is not None:
            if fault.kind == "rate_limited":
                headers["Retry-After"] = str(fault.retry_after)
                return 429, {"ok": False, "error": "ratelimited"}
            if fault.kind == "server_error":
                return fault.status, {"ok": False, "error": "fatal_error"}
            if fault.kind == "error":
                return 200, _fault_error(fault)
            if fault.then != "lose":
                self.stopping.wait(fault.hang_s)
            if fault.then == "drop":
                return None, {}
        if not token:
            return 200, {"ok": False, "error": "not_authed"}
        config = self.workspace.config
        if method == "apps.connections.open":  # the one method for app-level tokens (not rate limited here)
            if token in config.bot_tokens:
                return 200, {"ok": False, "error": "not_allowed_token_type"}
            if token not in config.app_tokens:
                return 200, {"ok": False, "error": "invalid_auth"}
            return 200, {"ok": True, "url": self.socket_mode.issue_url(self.url)}
        if token in config.app_tokens:
            return 200, {"ok": False, "error": "not_allowed_token_type"}
        if token not in config.bot_tokens:
            return 200, {"ok": False, "error": "invalid_auth"}
        handler = METHODS.get(method)
        if handler is None:
            return 404, {"ok": False, "error": "unknown_method", "req_method": method}
        scope = str(args.get("channel", "")) if method == "chat.postMessage" else ""
        retry_after = self.limiter.check(method, scope)
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
            return 429, {"ok": False, "error": "ratelimited"}
        try:
            return 200, handler(self.workspace, Args(args), self.url)
        except ApiError as exc:
            return exc.status, {"ok": False, "error": exc.error, **exc.extra}

    def call_response_url(self, response_id: str, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        """Handle a `response_url` post, honouring faults injected for the method name `response_url`."""
        headers: dict[str, str] = {}
        status, result = self._respond(response_id, body, headers)
        if status is None:
            return 0, headers, None
        self.workspace.record_call(
            "response_url", body, status, None if result.get("ok") else result["error"]
        )
        fault = result.pop("_lose", None)
        if fault is not None:
            self.stopping.wait(fault.hang_s)
            return 0, headers, None
        return status, headers, result

    def _respond(
        self, response_id: str, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int | None, dict[str, Any]]:
        fault = self.limiter.take_fault("response_url")
        if fault is not None and fault.kind == "rate_limited":
            headers["Retry-After"] = str(fault.retry_after)
            return 429, {"ok": False, "error": "ratelimited"}
        if fault is not None and fault.kind == "server_error":
            return fault.status, {"ok": False, "error": "fatal_error"}
        if fault is not None and fault.kind == "error":
            return 400, _fault_error(fault)
        if fault is not None and fault.then != "lose":
            self.stopping.wait(fault.hang_s)
            if fault.then == "drop":
                return None, {}
        try:
            result, status = respond(self.workspace, response_id, body), 200
        except ApiError as exc:
            result, status = {"ok": False, "error": exc.error, **exc.extra}, exc.status
        if fault is not None and fault.then == "lose":
            result["_lose"] = fault
        return status, result


def _fault_error(fault: Fault) -> dict[str, Any]:
    """Return the answer of an `error` fault, shaped as Slack answers that error."""
    body: dict[str, Any] = {"ok": False, "error": fault.error}
    if fault.error == "invalid_blocks":
        messages = ["[ERROR] failed to match all allowed schemas [json-pointer:/blocks/0] (injected fault)"]
        body |= {"errors": messages, "response_metadata": {"messages": messages}}
    return body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "remediate-slack-sandbox/1"

    @property
    def sandbox(self) -> SlackSandbox:
        return self.server.sandbox  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
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
        self._route("POST")

    def do_DELETE(self) -> None:
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
                status, headers, result = self.sandbox.call_api(path[5:], {**query, **body}, token)
                self._send(status, result, headers)
            elif path.startswith("/response/") and verb == "POST":
                status, headers, result = self.sandbox.call_response_url(path[len("/response/") :], body)
                self._send(status, result, headers)
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

    def _static(self, path: str) -> None:
        if path.startswith("/archives/"):
            channel = path.split("/")[2]
            self.send_response(HTTPStatus.FOUND)
            self.send_header("Location", f"/#{channel}")
            self.send_header("Content-Length", "0")
            self.end_headers()
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
