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
from typing import Any

from bot.sandbox import SandboxOptions, SlackSandbox
from tests.bot.sandbox.conftest import WAIT_S, wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(sandbox: SlackSandbox, sqlite_url: str, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SLACK_BOT_TOKEN": sandbox.bot_token,
        "SLACK_SIGNING_SECRET": "s",
        "SLACK_API_URL": sandbox.api_url,
        "REMEDIATE_ALERTS_TOKEN": "t",
        "REMEDIATE_DATABASE_URL": sqlite_url,
        "REMEDIATE_DATA_DIR": str(data_dir),
        "REMEDIATE_TOPOLOGY": "online-boutique",
    }


def _health(base: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as resp:
                return dict(json.loads(resp.read()))
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{base}/healthz never answered")


def test_serve_answers_health_and_alerts(tmp_path: Path, sqlite_url: str) -> None:
    with SlackSandbox(SandboxOptions()) as sandbox:
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli.main", "serve", "--port", str(port)],
            env=_env(sandbox, sqlite_url, tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            health = _health(base)
            assert health["ok"] is True
            # nothing promoted in a fresh store: the bundled policy ranks (promoted > bundled > runbook)
            assert health["policy"]["source"] == "bundled" and health["policy"]["name"].startswith(
                "bundled policy "
            )
            body = json.dumps({"alerts": [{"name": "HighErrorRate", "service": "frontend"}]}).encode()
            req = urllib.request.Request(
                base + "/alerts/generic", data=body, headers={"Authorization": "Bearer t"}, method="POST"
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                assert json.loads(resp.read())["created"] == ["INC-1"]
            wait_for(lambda: sandbox.workspace.messages.get("C0INCIDENT"))
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def test_serve_ranks_with_the_promoted_learned_policy(tmp_path: Path, sqlite_url: str) -> None:
    with SlackSandbox(SandboxOptions()) as sandbox:
        env = _env(sandbox, sqlite_url, tmp_path)
        trained = subprocess.run(
            [sys.executable, "-m", "bot.cli.main", "train", "--quick", "--iterations", "1", "--minutes", "60", "--json"],
            env=env, capture_output=True, text=True, timeout=300, check=True,
        )  # fmt: skip
        version = json.loads(trained.stdout)["version"]
        subprocess.run(
            [sys.executable, "-m", "bot.cli.main", "policy", "promote", version, "--force"],
            env=env, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli.main", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            health = _health(f"http://127.0.0.1:{port}")
            policy = health["policy"]
            assert (policy["name"], policy["version"], policy["source"]) == (
                f"promoted policy {version}",
                version,
                "promoted",
            )
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def test_serve_refuses_without_signing_secret(sqlite_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REMEDIATE_"))}
    env.update({"SLACK_BOT_TOKEN": "xoxb-x", "REMEDIATE_DATABASE_URL": sqlite_url})
    env["REMEDIATE_TOPOLOGY"] = "online-boutique"
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "serve", "--port", "0", "--requester", "U0REMBOT01"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "SLACK_SIGNING_SECRET" in result.stderr and "Traceback" not in result.stderr
