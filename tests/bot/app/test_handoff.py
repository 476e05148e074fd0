"""`remediate serve` in two processes (`bot.app.handoff`): real processes, real HTTP, signed requests.

The front acks and hands the work after each ack to the work process; these check that commands,
clicks and mentions get their replies there, that a killed work process is restarted with nothing
sent meanwhile lost, that a client's header cannot claim the front's dedupe, and that an approval
still runs only once it is recorded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.sandbox import AppDriver, SandboxOptions, SlackSandbox
from bot.sandbox.payloads import event_envelope
from incidents_db.db import make_sessionmaker, open_store
from remediation.approvals.views import get as get_request
from tests.bot.cli.test_serve_cli import _free_port, _health
from tests.bot.cli.test_serve_executors import HOOK_SECRET, _cards, _clean_env
from tests.bot.conftest import ALICE, BOB, SECRET
from tests.bot.sandbox.conftest import WAIT_S, control, wait_for
from tests.remediation.executors.receivers import JsonReceiver


@dataclass
class Served:
    """A running `remediate serve` (front and work process) on a sandbox, with a webhook executor."""

    base: str
    sandbox: SlackSandbox
    driver: AppDriver
    proc: subprocess.Popen[str]
    hook: JsonReceiver
    store_url: str

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.base + "/healthz", timeout=WAIT_S) as resp:
            return dict(json.loads(resp.read()))

    def ephemerals(self, user: str) -> list[str]:
        found = control(self.sandbox, f"ephemerals?channel=C0INCIDENT&user={user}", method="GET")
        items = found.get("ephemerals", found) if isinstance(found, dict) else found
        return [str(e.get("text", "")) for e in items]

    def wait_reply(self, user: str, contains: str, *, count: int = 1) -> None:
        wait_for(lambda: sum(contains in t for t in self.ephemerals(user)) >= count)

    def alert(self) -> dict[str, Any]:
        body = json.dumps({"alerts": [{"name": "HighErrorRate", "service": "checkoutservice"}]}).encode()
        req = urllib.request.Request(
            self.base + "/alerts/generic", data=body, headers={"Authorization": "Bearer t"}, method="POST"
        )
        with urllib.request.urlopen(req, timeout=WAIT_S) as resp:
            assert json.loads(resp.read())["created"] == ["INC-1"]
        return dict(wait_for(lambda: next(iter(_cards(self.sandbox)), None)))


@pytest.fixture
def served(tmp_path: Path, sqlite_url: str) -> Iterator[Served]:
    hook = JsonReceiver("webhook", secret=HOOK_SECRET)
    with SlackSandbox(SandboxOptions(ack_timeout_s=WAIT_S)) as sandbox:
        env = _clean_env(
            tmp_path,
            sqlite_url,
            SLACK_BOT_TOKEN=sandbox.bot_token,
            SLACK_API_URL=sandbox.api_url,
            REMEDIATE_EXECUTOR="webhook",
            REMEDIATE_WEBHOOK_URL=hook.url,
            REMEDIATE_WEBHOOK_SECRET=HOOK_SECRET,
        )
        port = _free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bot.cli.main",
                "serve",
                "--port",
                str(port),
            ],  # the default: two processes
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _health(base)
            driver = sandbox.connect_app(base + "/slack/events", SECRET)
            yield Served(base, sandbox, driver, proc, hook, sqlite_url)
        finally:
            proc.terminate()
            out, _ = proc.communicate(timeout=WAIT_S)
            hook.close()
    assert "Traceback" not in out, out
    assert proc.returncode == 0, out


def test_command_and_clicks_are_answered_from_the_work_process(served: Served) -> None:
    work = served.health()["work_process"]
    assert work["alive"] and work["pid"] not in (None, served.proc.pid) and work["restarts"] == 0
    card = served.alert()  # intake in the front, the card rendered and posted by the work process
    delivery = served.driver.slash_command(user=ALICE, channel="incidents", text="help")
    assert delivery.ok and delivery.body == ""  # acked empty; the answer comes from the work process
    served.wait_reply(ALICE, "- this list")
    before = len(served.ephemerals(ALICE))
    served.driver.click(user=ALICE, channel="incidents", message_ts=card["ts"], action_id="why:1")
    wait_for(lambda: len(served.ephemerals(ALICE)) > before)
    assert served.hook.received == []  # a Why runs nothing
    served.driver.click(user=ALICE, channel="incidents", message_ts=card["ts"], action_id="approve:1")
    assert served.hook.arrived.wait(WAIT_S), "the approved action never reached the receiver"
    wait_for(lambda: any("executed" in json.dumps(c["blocks"]) for c in _cards(served.sandbox)))
    [got] = served.hook.received
    sessions = make_sessionmaker(open_store(served.store_url, upgrade_schema=False))
    with sessions() as s:  # it ran as the request Alice's recorded approval approved
        request = get_request(db_session=s, request_id=got["body"]["request_id"])
    assert request.approvers == (ALICE,) and request.action == "restart_service"


def test_a_killed_work_process_is_restarted_and_the_command_answered(served: Served) -> None:
    first = served.health()["work_process"]["pid"]
    os.kill(first, signal.SIGKILL)
    # once the front saw it die (a frame written just before is lost with the process: docs/bot.md);
    # the command's frame waits for the restarted process, which may still be starting
    wait_for(
        lambda: (
            served.health()["work_process"]["pid"] != first or not served.health()["work_process"]["alive"]
        )
    )
    assert served.driver.slash_command(user=BOB, channel="incidents", text="help").ok
    served.wait_reply(BOB, "- this list")
    work = served.health()["work_process"]
    assert work["alive"] and work["pid"] != first and work["restarts"] == 1


def _mention(served: Served, event_id: str, headers: dict[str, str]) -> None:
    ws = served.driver.ws
    text = f"<@{ws.bot_user_id}> help"
    ts = f"{time.time():.6f}"
    event = {
        "type": "app_mention",
        "user": ALICE,
        "text": text,
        "channel": "C0INCIDENT",
        "ts": ts,
        "event_ts": ts,
    }
    body = json.dumps(event_envelope(ws, event, event_id=event_id))
    attempt = served.driver.send(body, "application/json", extra_headers=headers)
    assert attempt.failure is None and attempt.status == 200


def test_a_forged_header_cannot_mark_an_event_recorded(served: Served) -> None:
    forged = {
        "X-Remediate-Event-Recorded": "1",
        "X-Remediate-Recorded": "true",
        "Event-Recorded": "1",
    }
    # the same event id twice as first deliveries: the work process records it once, runs it once
    _mention(served, "EvFORGED00001", forged)
    _mention(served, "EvFORGED00001", forged)
    _mention(served, "EvFORGED00002", {})  # a later event, answered after both were handled
    served.wait_reply(ALICE, "- this list", count=2)
    served.driver.slash_command(user=ALICE, channel="incidents", text="help")
    served.wait_reply(ALICE, "- this list", count=3)
    assert sum("- this list" in t for t in served.ephemerals(ALICE)) == 3


def test_a_replayed_command_is_acked_and_runs_nothing(served: Served) -> None:
    first = served.driver.slash_command(user=BOB, channel="incidents", text="help")
    served.wait_reply(BOB, "- this list")
    body, stamp = urlencode(first.payload), int(time.time())
    for _ in range(2):  # the same signed request twice: the second is a replay
        attempt = served.driver.send(body, "application/x-www-form-urlencoded", timestamp=stamp)
        assert attempt.failure is None and attempt.status == 200 and attempt.body == ""
    served.wait_reply(BOB, "- this list", count=2)
    served.driver.slash_command(user=BOB, channel="incidents", text="help")  # answered after the replay
    served.wait_reply(BOB, "- this list", count=3)
    assert sum("- this list" in t for t in served.ephemerals(BOB)) == 3
