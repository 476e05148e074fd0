"""The running demo: the Slack sandbox, the bot (waitress) and the live world, wired together in one process.

Start order: the sandbox (so the bot has a Web API to post to), the bot's server (so the sandbox and
the world have an app to call), the world last. Stop order is the reverse, so no alert or click is
sent to something already gone.
"""

from __future__ import annotations

import logging
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler
from pydantic import SecretStr
from waitress.server import BaseWSGIServer, MultiSocketServer

from bot.app.app import RemediateApp, build_app
from bot.app.audit_head import HeadPublisher
from bot.app.jobs import start_jobs
from bot.demo.alerts import AlertSink, SimAlert, SnapshotWebhook, WebhookSink
from bot.demo.guide import demo_guide
from bot.demo.world import LiveWorld, WorldOptions
from bot.sandbox import SandboxOptions, SlackSandbox
from bot.server import http_server, settle_heap, stop_server
from bot.services import Services, build_services
from bot.settings import Settings
from bot.tracing import setup_tracing, shutdown_tracing
from remediation.executors.sim import SimExecutor
from remediation.policies import Policy

log = logging.getLogger("remediate.demo")


def demo_rbac_path() -> Path:
    """Return the demo's RBAC file (the sandbox's users with roles), shipped in `bot.demo`."""
    return Path(str(resources.files("bot.demo").joinpath("rbac.yaml")))


@dataclass(frozen=True)
class DemoOptions:
    """Where the demo listens and how its world behaves.

    Attributes:
        topology: built-in topology name or node-link file the world runs.
        host: address every server binds (keep it local: the sandbox page trusts whoever reaches it).
        port: the bot's port (``/slack/events``, ``/alerts/*``); 0 picks a free one.
        sandbox_port: the sandbox page and Web API port; 0 picks a free one.
        world: the live world's behaviour (fault rate, tick, seed).
        rate_limits: whether the sandbox enforces Slack's rate limits.
    """

    topology: str = "online-boutique"
    host: str = "127.0.0.1"
    port: int = 3000
    sandbox_port: int = 3001
    world: WorldOptions = field(default_factory=WorldOptions)
    rate_limits: bool = True


class DemoStack:
    """The sandbox, the bot and the live world; `start()` then `stop()`, or use it as a context manager."""

    def __init__(
        self,
        settings: Settings,
        options: DemoOptions | None = None,
        *,
        policy: Policy | None = None,
        sink: AlertSink | None = None,
    ) -> None:
        self.options = options or DemoOptions()
        self.base_settings = settings
        self.policy = policy
        self.custom_sink = sink
        self.signing_secret = secrets.token_hex(16)
        self.alerts_token = secrets.token_hex(16)
        self.sandbox: SlackSandbox | None = None
        self.app: RemediateApp | None = None
        self.world: LiveWorld | None = None
        self.bot_url = ""
        self._server: BaseWSGIServer | MultiSocketServer | None = None
        self._server_thread: threading.Thread | None = None
        self._scheduler: BackgroundScheduler | None = None

    @property
    def page_url(self) -> str:
        """Return the sandbox page to open in a browser, on the incidents channel."""
        if self.sandbox is None:
            raise RuntimeError("the demo is not running")
        return self.sandbox.url

    @property
    def services(self) -> Services:
        """Return the bot's services (store, policy, executor)."""
        if self.app is None:
            raise RuntimeError("the demo is not running")
        return self.app.services

    def start(self) -> DemoStack:
        """Start the sandbox, the bot and the world; stop whatever started if a later part fails."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        opts = self.options
        guide = demo_guide(topology=opts.topology, fault_every_s=opts.world.fault_every_s)
        self.sandbox = SlackSandbox(
            SandboxOptions(host=opts.host, port=opts.sandbox_port, rate_limits=opts.rate_limits, guide=guide)
        ).start()
        settings = self.base_settings.model_copy(
            update={
                "slack_bot_token": SecretStr(self.sandbox.bot_token),
                "slack_api_url": self.sandbox.api_url,
                "slack_signing_secret": SecretStr(self.signing_secret),
                "alerts_token": SecretStr(self.alerts_token),
                "rbac_config": self.base_settings.rbac_config or demo_rbac_path(),
                "topology": opts.topology,
                "requester": self.sandbox.workspace.config.bot_user_id,
            }
        )
        setup_tracing(settings)  # OTEL_TRACES_EXPORTER: nothing is traced unless asked
        # The world exists before the services so the sim executor can act on it; its thread starts last.
        sink = self.custom_sink or _LateSink()
        self.world = LiveWorld(opts.topology, sink, opts.world)
        services = build_services(settings, policy=self.policy, executor=SimExecutor(self.world))
        self.app = build_app(settings, services)
        self.app.worker.start()
        audit_head = HeadPublisher.from_settings(settings, sessions=services.sessions, clock=services.clock)
        self._scheduler = start_jobs(self.app.services, audit_head=audit_head)
        server = http_server(self.app, alerts_token=self.alerts_token, host=opts.host, port=opts.port)
        settle_heap()
        self._server = server
        self.bot_url = f"http://{opts.host}:{server.effective_port}"  # type: ignore[union-attr]
        self._server_thread = threading.Thread(target=server.run, name="bot-http", daemon=True)
        self._server_thread.start()
        self.sandbox.connect_app(self.bot_url + "/slack/events", self.signing_secret)
        if isinstance(sink, _LateSink):
            sink.target = WebhookSink(self.bot_url + "/alerts/alertmanager", token=self.alerts_token)
        if self.world.metrics is None:
            self.world.metrics = SnapshotWebhook(self.bot_url + "/snapshots", token=self.alerts_token)
        self.world.start()

    def stop(self) -> None:
        """Stop the world, the bot and the sandbox, in that order; safe to call twice."""
        if self.world is not None:
            self.world.stop()
        if self._server is not None:
            stop_server(self._server, loop=self._server_thread)
            self._server = None
        if self._server_thread is not None:
            self._server_thread.join(timeout=2)
            self._server_thread = None
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        if self.app is not None:
            self.app.close()  # idempotent: stopping twice is safe
        if self.sandbox is not None:
            self.sandbox.stop()
        shutdown_tracing()  # the last spans are exported

    def __enter__(self) -> DemoStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _LateSink:
    """Forwards to a sink set once the bot's URL is known (the world is built before the server)."""

    def __init__(self) -> None:
        self.target: AlertSink | None = None

    def send(self, alerts: Sequence[SimAlert], *, group: str) -> bool:
        """Forward, or report not delivered while there is no target yet."""
        return self.target.send(alerts, group=group) if self.target is not None else False


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Turn SIGINT and SIGTERM into ``stop`` while inside; restore the old handlers after."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def run_demo(
    stack: DemoStack,
    *,
    minutes: float | None = None,
    say: Callable[[str], None] = print,
    stop: threading.Event | None = None,
) -> None:
    """Run a started-or-not stack until Ctrl-C, SIGTERM, ``stop`` or ``minutes``; always stop it cleanly."""
    stop = stop or threading.Event()
    deadline = time.monotonic() + minutes * 60 if minutes else None
    with _stop_on_signals(stop):
        if stack.sandbox is None:
            stack.start()
        try:
            world = stack.world
            assert world is not None
            say(f"open {stack.page_url} (the sandbox; cards arrive in #incidents)")
            say(
                f"bot on {stack.bot_url}; world: {world.topology.name}, a fault every {world.options.fault_every_s:g} s"
            )
            say("approve as carol (sre-lead) or alice (on call); Ctrl-C stops everything")
            seen = (0, 0)
            while not stop.wait(0.5):
                status = world.status()
                if (status.incidents, len(status.actions)) != seen:
                    if status.incidents != seen[0] and status.faults:
                        say(
                            f"fault {status.incidents}: "
                            + ", ".join(f"{f.kind} on {f.target}" for f in status.faults)
                        )
                    if len(status.actions) != seen[1]:
                        action, target, outcome = status.actions[-1]
                        say(f"world: {action}{' on ' + target if target else ''} -> {outcome}")
                    seen = (status.incidents, len(status.actions))
                if deadline is not None and time.monotonic() >= deadline:
                    say("time limit reached")
                    break
        finally:
            stack.stop()
            say("demo stopped")
