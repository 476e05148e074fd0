"""The sandbox's HTTP server: Slack's Web API, `response_url`s, an inspection/control API and the page.

Built on the standard library's `ThreadingHTTPServer`: one thread per request, so a call held open
by a `hang` fault never blocks the others (waitress would queue behind a fixed thread pool), it binds
port 0 for tests, shuts down promptly in-process, and adds no dependency. What each request does is
in `bot.sandbox.handler` (routes) and `bot.sandbox.core` (the Web API and the app's driver).
"""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer

from bot.sandbox.core import SandboxCore, SandboxOptions
from bot.sandbox.errors import SandboxError
from bot.sandbox.handler import Handler

__all__ = ["SandboxOptions", "SlackSandbox"]


class SlackSandbox(SandboxCore):
    """A running stand-in for Slack: `with SlackSandbox(options) as sandbox: WebClient(base_url=sandbox.api_url)`."""

    def __init__(self, options: SandboxOptions | None = None) -> None:
        super().__init__(options)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SlackSandbox:
        """Bind the port and serve on a background thread."""
        try:
            server = ThreadingHTTPServer((self.options.host, self.options.port), Handler)
        except OSError as exc:
            raise SandboxError(
                f"cannot listen on {self.options.host}:{self.options.port} ({exc.strerror}); pick another --port"
            ) from None
        server.daemon_threads = True
        server.sandbox = self  # type: ignore[attr-defined]
        self._server = server
        host, port = str(server.server_address[0]), server.server_address[1]
        self.base_url = f"http://{host}:{port}/"
        if self.options.app_url:
            self.connect_app(self.options.app_url, self.options.signing_secret or "")
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="slack-sandbox", daemon=True
        )
        self._thread.start()
        return self

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
        self.base_url = None

    def __enter__(self) -> SlackSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
