"""Fixtures: a running sandbox on a real socket, and a small real Bolt app served over WSGI."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

from bot.sandbox import SandboxOptions, SlackSandbox

SECRET = "sandbox-test-signing-secret"
# How long a test waits for something the app does in the background. Only a broken run ever waits
# this long; a working one returns as soon as the condition holds, however busy the machine is.
WAIT_S = 120.0
ALICE, BOB = "U0ALICE001", "U0BOB00002"


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class ServedApp:
    """A Bolt app on a free port, with what its listeners saw."""

    app: App
    url: str
    seen: list[tuple[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)


@pytest.fixture
def sandbox() -> Iterator[SlackSandbox]:
    with SlackSandbox(SandboxOptions(retry_backoff_s=(0.0, 0.0, 0.0))) as running:
        yield running


@pytest.fixture
def client(sandbox: SlackSandbox) -> WebClient:
    return WebClient(token=sandbox.bot_token, base_url=sandbox.api_url, timeout=5)


def control(
    sandbox: SlackSandbox, path: str, body: dict[str, Any] | None = None, method: str = "POST"
) -> Any:
    """Call the sandbox's own JSON API over HTTP, as a test in another process would."""
    data = None if body is None and method == "GET" else json.dumps(body or {}).encode()
    req = urllib.request.Request(
        sandbox.url + "_sandbox/" + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=WAIT_S) as resp:
        return json.loads(resp.read())


@pytest.fixture
def serve_app(sandbox: SlackSandbox) -> Iterator[Callable[[Callable[[App, ServedApp], None]], ServedApp]]:
    """Build a real Bolt app talking to the sandbox's Web API, serve it, and connect the driver to it."""
    servers: list[WSGIServer] = []

    def build(listeners: Callable[[App, ServedApp], None]) -> ServedApp:
        app = App(
            signing_secret=SECRET,
            client=WebClient(token=sandbox.bot_token, base_url=sandbox.api_url, timeout=5),
        )
        server = make_server(
            "127.0.0.1",
            0,
            SlackRequestHandler(app),
            server_class=_ThreadingWSGIServer,
            handler_class=_QuietHandler,
        )
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        served = ServedApp(app=app, url=f"http://127.0.0.1:{server.server_port}/slack/events")

        @app.middleware
        def remember_headers(request: Any, response: Any, next: Callable[[], Any]) -> Any:
            served.headers.append({k: v[0] for k, v in request.headers.items()})
            served.bodies.append(request.raw_body)
            return next()

        listeners(app, served)
        sandbox.connect_app(served.url, SECRET)
        return served

    yield build
    for server in servers:
        server.shutdown()
        server.server_close()


def wait_for(predicate: Callable[[], Any], *, seconds: float = WAIT_S) -> Any:
    """Poll until `predicate()` is truthy (work Bolt does after the ack); fail after `seconds`.

    Give ``seconds`` only to wait longer than `WAIT_S`: a deadline is an upper bound for a broken run,
    never a guess of how fast this machine is.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"condition not met within {seconds}s: {predicate}")
