"""The running sandbox's parts and how it answers a request, apart from the socket it listens on.

`SandboxCore` holds the workspace, the rate limiter and its faults, the Socket Mode hub and the driver
of the connected app, and answers Web API calls (fault, token, rate limit, then the method in
`bot.sandbox.webapi`) and `response_url` posts. `SlackSandbox` (`bot.sandbox.server`) adds the HTTP
server; the request handler (`bot.sandbox.handler`) and the `/_sandbox/` API (`bot.sandbox.control`)
see only this core, so neither imports the server.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from bot.sandbox.config import WorkspaceConfig
from bot.sandbox.driver import DEFAULT_EVENTS, AppDriver
from bot.sandbox.errors import ApiError, SandboxError
from bot.sandbox.limits import Fault, RateLimiter
from bot.sandbox.oauth import OAUTH_V2_ACCESS, OAuthDesk
from bot.sandbox.socket_mode import SocketModeHub
from bot.sandbox.webapi import (
    APPS_CONNECTIONS_OPEN,
    METHODS,
    Args,
    apps_connections_open,
    respond,
    token_error,
)
from bot.sandbox.workspace import Workspace


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
    guide: tuple[str, ...] = ()  # mrkdwn lines of the dismissable guide the page opens with (the demo's)
    # more workspaces the app can be installed into (OAuth, `bot.sandbox.oauth`); each answers its own tokens
    extra_workspaces: tuple[WorkspaceConfig, ...] = ()
    client_id: str | None = None  # when set, oauth.v2.access wants this client id and secret
    client_secret: str | None = None


class SandboxCore:
    """The sandbox's state and request handling; `base_url` is set while a server listens for it."""

    def __init__(self, options: SandboxOptions | None = None) -> None:
        self.options = options or SandboxOptions()
        self.workspace = Workspace(self.options.workspace)
        self.teams = {self.workspace.team_id: self.workspace}
        for extra in self.options.extra_workspaces:
            self.teams[extra.team_id] = Workspace(extra, clock=self.workspace.clock)
        self.oauth = OAuthDesk(
            self.teams, client_id=self.options.client_id, client_secret=self.options.client_secret
        )
        self.limiter = RateLimiter(self.workspace.clock, enabled=self.options.rate_limits)
        self.socket_mode = SocketModeHub(self.workspace)
        self.stopping = threading.Event()
        self.base_url: str | None = None
        self.driver: AppDriver | None = None

    @property
    def url(self) -> str:
        """Return the base URL of the sandbox (the page)."""
        if self.base_url is None:
            raise SandboxError("the sandbox is not running; call start() first")
        return self.base_url

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

    def workspace_for(self, token: str | None) -> Workspace:
        """Return the workspace a bot or app token belongs to (the first workspace for any other)."""
        for ws in self.teams.values():
            if token in ws.config.bot_tokens or token in ws.config.app_tokens:
                return ws
        return self.workspace

    # -- the app ---------------------------------------------------------------------------------------
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

    def driver_for(self, team_id: str, app_url: str, signing_secret: str) -> AppDriver:
        """Return a driver sending as the users of another workspace (`extra_workspaces`) to an app."""
        if team_id not in self.teams:
            raise SandboxError(f"no sandbox workspace {team_id!r}; known: {', '.join(self.teams)}")
        return AppDriver(
            self.teams[team_id],
            app_url=app_url,
            signing_secret=signing_secret,
            sandbox_url=self.url,
            ack_timeout_s=self.options.ack_timeout_s,
            retry_backoff_s=self.options.retry_backoff_s,
            command=self.options.command,
            subscribed_events=self.options.subscribed_events,
        )

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
        clean = {k: v for k, v in args.items() if k not in ("token", "client_secret")}
        self.workspace_for(token).record_call(method, clean, status, error)
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
        if method == OAUTH_V2_ACCESS:  # no token: the client id and secret authenticate it
            try:
                return 200, self.oauth.access(args)
            except ApiError as exc:
                return 200, {"ok": False, "error": exc.error}
        ws = self.workspace_for(token)
        refused = token_error(ws.config, method, token)
        if refused is not None:
            return 200, {"ok": False, "error": refused}
        if token in ws.config.bot_tokens:
            headers["X-OAuth-Scopes"] = ",".join(ws.config.bot_scopes)
        if method == APPS_CONNECTIONS_OPEN:
            return 200, apps_connections_open(self.socket_mode, self.url)
        handler = METHODS.get(method)
        if handler is None:
            return 404, {"ok": False, "error": "unknown_method", "req_method": method}
        scope = str(args.get("channel", "")) if method == "chat.postMessage" else ""
        retry_after = self.limiter.check(method, scope)
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
            return 429, {"ok": False, "error": "ratelimited"}
        try:
            return 200, handler(ws, Args(args), self.url)
        except ApiError as exc:
            return exc.status, {"ok": False, "error": exc.error, **exc.extra}

    def call_response_url(self, response_id: str, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        """Handle a `response_url` post, honouring faults injected for the method name `response_url`."""
        headers: dict[str, str] = {}
        status, result = self._respond(response_id, body, headers)
        if status is None:
            return 0, headers, None
        self._owner(response_id).record_call(
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
            result, status = respond(self._owner(response_id), response_id, body), 200
        except ApiError as exc:
            result, status = {"ok": False, "error": exc.error, **exc.extra}, exc.status
        if fault is not None and fault.then == "lose":
            result["_lose"] = fault
        return status, result

    def _owner(self, response_id: str) -> Workspace:
        """Return the workspace that handed out a response URL (the first one for an unknown id)."""
        return next((ws for ws in self.teams.values() if response_id in ws.response_urls), self.workspace)


def _fault_error(fault: Fault) -> dict[str, Any]:
    """Return the answer of an `error` fault, shaped as Slack answers that error."""
    body: dict[str, Any] = {"ok": False, "error": fault.error}
    if fault.error == "invalid_blocks":
        messages = ["[ERROR] failed to match all allowed schemas [json-pointer:/blocks/0] (injected fault)"]
        body |= {"errors": messages, "response_metadata": {"messages": messages}}
    return body
