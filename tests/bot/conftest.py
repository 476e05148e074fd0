"""A running remediate app (waitress, real store) wired to a running Slack sandbox, plus helpers."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from waitress.server import create_server

from bot.app.app import RemediateApp, build_app
from bot.sandbox import AppDriver, SandboxOptions, SlackSandbox
from bot.server import Server, stop_server
from bot.services import Services, build_services
from bot.settings import load_settings
from remediation.executors.sim import SimExecutor
from tests.bot.sandbox.conftest import WAIT_S, control, wait_for

SECRET = "bot-test-signing-secret"
TOKEN = "alerts-test-token"
ALICE, BOB, CAROL, DAVE, BOT = "U0ALICE001", "U0BOB00002", "U0CAROL003", "U0DAVE0004", "U0REMBOT01"

RBAC = f"""
version: 1
policy_version: rbac-test-1
roles:
  bot: the bot itself; proposes actions for alert-born incidents
  oncall: on call
  sre-lead: leads
users:
  {BOT}: {{name: remediate, roles: [bot]}}
  {ALICE}: {{name: alice, roles: [oncall]}}
  {BOB}: {{name: bob, roles: [oncall]}}
  {CAROL}: {{name: carol, roles: [sre-lead]}}
  {DAVE}: {{name: dave, roles: [sre-lead]}}
teams:
  shop:
    members: [{ALICE}, {BOB}]
    services: [checkoutservice, cartservice, redis-cart, frontend, billing-api]
policies:
  - {{name: bot-requests, roles: [bot], services: ["*"], request: [low, medium, high, critical]}}
  - {{name: oncall-owned, roles: [oncall], services: [owned], request: [low, medium, high, critical], approve: [low, medium]}}
  - {{name: leads, roles: [sre-lead], services: ["*"], request: [low, medium, high, critical], approve: [low, medium, high, critical]}}
approvals_required: {{low: 1, medium: 1, high: 2, critical: 2}}
freeze: {{override_roles: [sre-lead]}}
"""


class World:
    """A small simulated world for the sim executor: records what was applied; can refuse; can be slow.

    An action in ``slow`` takes that many seconds, or less once the test sets ``release``; ``started``
    is set when a slow action begins and ``finished`` when it ends, so a test waits on events.
    """

    def __init__(self) -> None:
        self.applied: list[tuple[str, str | None, dict[str, Any]]] = []
        self.refuse: set[str] = set()
        self.slow: dict[str, float] = {}
        self.release = threading.Event()
        self.started = threading.Event()
        self.finished = threading.Event()

    def apply(self, action_id: str, target: str | None, params: Mapping[str, Any]) -> Mapping[str, Any]:
        self.applied.append((action_id, target, dict(params)))
        if action_id in self.slow:
            self.started.set()
            self.release.wait(self.slow[action_id])
            self.finished.set()
        if action_id in self.refuse:
            return {"ok": False, "detail": f"{target} refused {action_id}"}
        return {"ok": True, "detail": f"{action_id} applied to {target}"}


@dataclass
class Harness:
    """Everything a scenario test touches."""

    sandbox: SlackSandbox
    driver: AppDriver
    app: RemediateApp
    services: Services
    world: World
    url: str
    incidents_channel: str = "C0INCIDENT"
    stops: list[Callable[[], None]] = field(default_factory=list)

    # --- Slack side -------------------------------------------------------------------------
    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        return [m.to_dict() if hasattr(m, "to_dict") else m for m in self._messages(channel)]

    def _messages(self, channel: str | None) -> list[Any]:
        return list(self.sandbox.workspace.messages.get(channel or self.incidents_channel, []))

    def ephemerals(self, user: str) -> list[str]:
        found = control(
            self.sandbox, f"ephemerals?channel={self.incidents_channel}&user={user}", method="GET"
        )
        items = found.get("ephemerals", found) if isinstance(found, dict) else found
        return [str(e.get("text", "")) for e in items]

    def wait_ephemeral(self, user: str, contains: str, seconds: float = WAIT_S) -> str:
        def found() -> str | None:
            return next((t for t in self.ephemerals(user) if contains in t), None)

        return str(wait_for(found, seconds=seconds))

    def wait_message(self, contains: str, seconds: float = WAIT_S) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            return next((m for m in self.cards() if contains in m.get("text", "")), None)

        return dict(wait_for(find, seconds=seconds))

    def cards(self) -> list[dict[str, Any]]:
        found = control(self.sandbox, f"messages?channel={self.incidents_channel}", method="GET")
        items = found.get("messages", found) if isinstance(found, dict) else found
        return [m for m in items if not m.get("thread_ts") or m.get("thread_ts") == m.get("ts")]

    def replies(self, ts: str) -> list[dict[str, Any]]:
        found = control(
            self.sandbox, f"messages?channel={self.incidents_channel}&thread_ts={ts}", method="GET"
        )
        items = found.get("messages", found) if isinstance(found, dict) else found
        return [m for m in items if m.get("ts") != ts]

    def card_for(self, incident_id: str) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            return next((c for c in self.cards() if c.get("text", "").startswith(incident_id + " ")), None)

        return dict(wait_for(find))

    def wait_card(
        self, incident_id: str, predicate: Callable[[str], bool], seconds: float = WAIT_S
    ) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for card in self.cards():
                if card.get("text", "").startswith(incident_id + " ") and predicate(
                    json.dumps(card.get("blocks", []))
                ):
                    return card
            return None

        return dict(wait_for(find, seconds=seconds))

    def command(self, user: str, text: str) -> Any:
        delivery = self.driver.slash_command(user=user, channel="incidents", text=text)
        assert delivery.ok, delivery.summary()
        return delivery

    def click(self, user: str, card: dict[str, Any], action_id: str) -> Any:
        return self.driver.click(user=user, channel="incidents", message_ts=card["ts"], action_id=action_id)

    # --- alerts side -------------------------------------------------------------------------
    def post_alert(
        self, source: str, body: Any, *, token: str | None = TOKEN, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            f"{self.url}/alerts/{source}", data=data, headers=all_headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=WAIT_S) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


def generic(name: str, service: str, status: str = "firing", **extra: Any) -> dict[str, Any]:
    return {"alerts": [{"name": name, "service": service, "status": status, **extra}]}


@pytest.fixture
def harness(tmp_path: Path, migrated_sqlite_url: str) -> Iterator[Harness]:
    """The running app and sandbox on a SQLite file."""
    yield from _running(tmp_path, migrated_sqlite_url)


@pytest.fixture
def db_harness(tmp_path: Path, migrated_db_url: str) -> Iterator[Harness]:
    """The running app and sandbox, once on SQLite and once on PostgreSQL (for what storage decides)."""
    yield from _running(tmp_path, migrated_db_url)


def _running(tmp_path: Path, url_of_store: str, **overrides: Any) -> Iterator[Harness]:
    """Run the app and sandbox; ``overrides`` are further settings (a test's own vocabulary, labels)."""
    rbac = tmp_path / "rbac.yaml"
    rbac.write_text(RBAC, encoding="utf-8")
    # Slack wants an ack within 3 s; these tests check behaviour, not speed (benchmarks measure acks), so
    # a busy machine's slow ack must not fail them. Tests of the 3 s rule build their own sandbox.
    with SlackSandbox(SandboxOptions(ack_timeout_s=WAIT_S, retry_backoff_s=(0.0, 0.0, 0.0))) as sandbox:
        settings = load_settings(
            database_url=url_of_store,
            rbac_config=rbac,
            slack_signing_secret=SECRET,
            slack_bot_token=sandbox.bot_token,
            slack_api_url=sandbox.api_url,
            alerts_token=TOKEN,
            pagerduty_webhook_secret="pd-secret",
            github_webhook_secret="gh-secret",
            requester=BOT,
            topology="online-boutique",
            retry_base_s=0.05,
            retry_max_s=1.0,
            **overrides,
        )
        world = World()
        services = build_services(settings, executor=SimExecutor(world))
        app = build_app(settings, services)
        app.worker.start()
        server = create_server(Server(app, alerts_token=TOKEN), host="127.0.0.1", port=0, threads=8)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.effective_port}"
        driver = sandbox.connect_app(url + "/slack/events", SECRET)
        h = Harness(sandbox, driver, app, services, world, url)
        try:
            yield h
        finally:
            world.release.set()  # a slow action still running ends now
            app.worker.stop()
            stop_server(server, loop=thread)
