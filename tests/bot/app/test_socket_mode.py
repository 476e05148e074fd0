"""`remediate serve --socket-mode` as a real subprocess against the sandbox.

Commands and clicks arrive over the websocket; alert intake and health are still served over HTTP;
/slack/events is refused with a reason; SIGTERM stops it cleanly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox import SandboxOptions, SlackSandbox
from tests.bot.cli.test_serve_cli import _free_port, _health
from tests.bot.sandbox.conftest import wait_for

ALICE = "U0ALICE001"


def _post(url: str, body: dict[str, Any], token: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _env(sandbox: SlackSandbox, sqlite_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REMEDIATE_"))}
    # no SLACK_SIGNING_SECRET: a Socket Mode app needs none
    return env | {
        "SLACK_BOT_TOKEN": sandbox.bot_token,
        "SLACK_APP_TOKEN": sandbox.app_token,
        "SLACK_API_URL": sandbox.api_url,
        "REMEDIATE_ALERTS_TOKEN": "t",
        "REMEDIATE_DATABASE_URL": sqlite_url,
        "REMEDIATE_DATA_DIR": str(data_dir),
        "REMEDIATE_TOPOLOGY": "online-boutique",
        **extra,
    }


@pytest.fixture
def sandbox() -> Iterator[SlackSandbox]:
    with SlackSandbox(SandboxOptions(retry_backoff_s=(0.0, 0.0, 0.0))) as running:
        yield running


def test_serve_in_socket_mode(sandbox: SlackSandbox, tmp_path: Path, sqlite_url: str) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", "serve", "--socket-mode", "--port", str(port)],
        env=_env(sandbox, sqlite_url, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert _health(base)["ok"] is True
        wait_for(lambda: sandbox.socket_mode.connections == 1)
        driver = sandbox.driver
        assert driver is not None and driver.transport == "socket"
        assert any(c.method == "apps.connections.open" and c.ok for c in sandbox.workspace.calls)

        # a slash command over the websocket, answered through its response_url
        help_ = driver.slash_command(user=ALICE, channel="incidents", text="help")
        assert help_.ok and help_.summary()["transport"] == "socket", help_.summary()
        wait_for(lambda: any("/remediate" in e.text for e in sandbox.workspace.ephemerals if e.user == ALICE))

        # an app_mention event over the websocket (retry_attempt 0 is a first delivery, not a retry)
        [mention] = driver.user_message(user=ALICE, channel="incidents", text="@remediate incidents")
        assert mention.ok and mention.retries == 0, mention.summary()
        wait_for(lambda: any(c.method == "chat.postEphemeral" and c.ok for c in sandbox.workspace.calls))

        # alerts still come in over HTTP, and the card lands in the channel
        alert = {"alerts": [{"name": "HighErrorRate", "service": "frontend"}]}
        assert _post(base + "/alerts/generic", alert)[0] == 401  # the bearer token is still required
        status, body = _post(base + "/alerts/generic", alert, "t")
        assert (status, body["created"]) == (200, ["INC-1"])
        card = wait_for(
            lambda: next(
                (m for m in sandbox.workspace.messages["C0INCIDENT"] if m.text.startswith("INC-1 ")), None
            )
        )

        # a button click round-trips over the websocket
        click = driver.click(user=ALICE, channel="incidents", message_ts=card.ts, action_id="why:1")
        assert click.ok, click.summary()
        wait_for(lambda: any("Why #1" in e.text for e in sandbox.workspace.ephemerals if e.user == ALICE))

        # Slack's HTTP endpoint is not served in this mode, and says why
        status, body = _post(base + "/slack/events", {"type": "url_verification", "challenge": "x"})
        assert status == 404 and "Socket Mode" in body["error"]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    wait_for(lambda: sandbox.socket_mode.connections == 0)


def test_serve_socket_mode_refuses_a_bot_token_as_app_token(
    sandbox: SlackSandbox, tmp_path: Path, sqlite_url: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "serve", "--socket-mode", "--port", str(_free_port())],
        env=_env(sandbox, sqlite_url, tmp_path, SLACK_APP_TOKEN=sandbox.bot_token),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "not_allowed_token_type" in result.stderr and "Traceback" not in result.stderr
