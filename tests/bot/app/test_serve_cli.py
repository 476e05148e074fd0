"""`remediate serve` as a real subprocess: health, alert intake, and refusing to start without secrets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bot.sandbox import SandboxOptions, SlackSandbox


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_answers_health_and_alerts(tmp_path: Path, sqlite_url: str) -> None:
    with SlackSandbox(SandboxOptions()) as sandbox:
        port = _free_port()
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": sandbox.bot_token,
            "SLACK_SIGNING_SECRET": "s",
            "SLACK_API_URL": sandbox.api_url,
            "REMEDIATE_ALERTS_TOKEN": "t",
            "REMEDIATE_DATABASE_URL": sqlite_url,
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli.main", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            health = None
            while time.monotonic() < deadline and health is None:
                try:
                    with urllib.request.urlopen(base + "/healthz", timeout=2) as resp:
                        health = json.loads(resp.read())
                except OSError:
                    time.sleep(0.2)
            assert health is not None and health["ok"] is True
            body = json.dumps({"alerts": [{"name": "HighErrorRate", "service": "frontend"}]}).encode()
            req = urllib.request.Request(
                base + "/alerts/generic", data=body, headers={"Authorization": "Bearer t"}, method="POST"
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                assert json.loads(resp.read())["created"] == ["INC-1"]
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not sandbox.workspace.messages.get("C0INCIDENT"):
                time.sleep(0.1)
            assert sandbox.workspace.messages.get("C0INCIDENT")
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def test_serve_refuses_without_signing_secret(sqlite_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REMEDIATE_"))}
    env.update({"SLACK_BOT_TOKEN": "xoxb-x", "REMEDIATE_DATABASE_URL": sqlite_url})
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "serve", "--port", "0", "--requester", "U0REMBOT01"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "SLACK_SIGNING_SECRET" in result.stderr and "Traceback" not in result.stderr
