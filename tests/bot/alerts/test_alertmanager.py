"""A real Prometheus Alertmanager delivers the live world's alerts to the bot; cards appear in the sandbox.

Needs the Debian package ``prometheus-alertmanager`` (``deploy/ci/install-system-deps.sh``). Missing it
fails the test with that instruction, unless ``REMEDIATE_TEST_ALERTMANAGER=off`` opts out.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.demo.alerts import AlertmanagerApiSink
from bot.demo.stack import DemoStack
from incidents_db.models import IncidentEvent
from tests.bot.demo.conftest import approve_id, demo_factory, replies, stop_process, wait_card
from tests.bot.sandbox.conftest import wait_for

__all__ = ["demo_factory"]  # the fixture, shared with tests/bot/demo
BINARY = "prometheus-alertmanager"


def _binary() -> str:
    if os.environ.get("REMEDIATE_TEST_ALERTMANAGER", "").lower() == "off":
        pytest.skip("REMEDIATE_TEST_ALERTMANAGER=off")
    path = shutil.which(BINARY) or shutil.which("alertmanager")
    if path is None:
        pytest.fail(
            f"{BINARY} is not installed: run `sudo bash deploy/ci/install-system-deps.sh` "
            "(or set REMEDIATE_TEST_ALERTMANAGER=off to skip this test)"
        )
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(bot_url: str, token: str) -> str:
    return f"""
route:
  receiver: remediate
  group_by: [group]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: remediate
    webhook_configs:
      - url: {bot_url}/alerts/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {token}
"""


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Callable[[str, str], str]]:
    binary = _binary()
    procs: list[subprocess.Popen[bytes]] = []

    def start(bot_url: str, token: str) -> str:
        config = tmp_path / "alertmanager.yml"
        config.write_text(_config(bot_url, token), encoding="utf-8")
        port = _free_port()
        log = (tmp_path / "alertmanager.log").open("wb")
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",  # no gossip port: a single local instance
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            assert proc.poll() is None, (tmp_path / "alertmanager.log").read_text(errors="replace")
            try:
                with urllib.request.urlopen(url + "/-/ready", timeout=2) as resp:
                    return resp.status == 200
            except OSError:
                return False

        wait_for(ready)
        return url

    yield start
    for proc in procs:
        stop_process(proc)


def test_alertmanager_delivers_to_the_bot_and_resolves(
    demo_factory: Callable[..., DemoStack], alertmanager: Callable[[str, str], str]
) -> None:
    # The fault fires once Alertmanager is up; the world's clock stands still after it (no evaluation
    # tick within the test), so the ranking cannot drift before the click however slow the machine.
    stack = demo_factory(first_fault_s=3600.0, tick_s=3600.0)
    assert stack.world is not None and stack.sandbox is not None and stack.sandbox.driver is not None
    am_url = alertmanager(stack.bot_url, stack.alerts_token)
    stack.world.sink = AlertmanagerApiSink(am_url)
    stack.world.fire()
    card = wait_card(stack, lambda b: "restart_service on cartservice" in b)
    with urllib.request.urlopen(am_url + "/api/v2/alerts", timeout=5) as resp:
        held = json.loads(resp.read())
    assert {a["labels"]["service"] for a in held} >= {"cartservice"}
    # It came through Alertmanager: the bot stored the labels only the Alertmanager sink adds.
    with stack.services.sessions() as s:
        payloads = [
            e.payload
            for e in s.execute(sa.select(IncidentEvent).where(IncidentEvent.type == "alert")).scalars()
        ]
    assert payloads and all(p["source"] == "alertmanager" and p["labels"].get("group") for p in payloads)
    restart = approve_id(card, "restart_service on cartservice")
    stack.sandbox.driver.click(
        user="U0ALICE001", channel="incidents", message_ts=card["ts"], action_id=restart
    )
    wait_card(stack, lambda b: "Resolved" in b)  # resolved alerts came back through it too
    # the timeline reaches the card's thread through the outbox, a moment after the card itself
    wait_for(lambda: any("resolved" in r for r in replies(stack, card["ts"])))
