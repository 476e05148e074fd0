"""`remediate serve` in OAuth mode as a real subprocess: the install route, and refusing without a home."""

from __future__ import annotations

import http.client
import subprocess
import sys
from pathlib import Path

from bot.sandbox import SandboxOptions, SlackSandbox
from tests.bot.cli.test_serve_cli import _env, _free_port, _health


def _oauth_env(sandbox: SlackSandbox, sqlite_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {**_env(sandbox, sqlite_url, data_dir), "SLACK_CLIENT_ID": "111.222", "SLACK_CLIENT_SECRET": "c"}
    env.pop("SLACK_BOT_TOKEN")
    return {**env, **extra}


def test_serve_in_oauth_mode_refuses_without_a_home_workspace(tmp_path: Path, sqlite_url: str) -> None:
    with SlackSandbox(SandboxOptions()) as sandbox:
        done = subprocess.run(
            [sys.executable, "-m", "bot.cli.main", "serve", "--port", str(_free_port())],
            env=_oauth_env(sandbox, sqlite_url, tmp_path),
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 1
    assert "REMEDIATE_HOME_TEAM_ID" in done.stdout + done.stderr


def test_serve_in_oauth_mode_starts_an_install(tmp_path: Path, sqlite_url: str) -> None:
    with SlackSandbox(SandboxOptions()) as sandbox:
        port = _free_port()
        env = _oauth_env(sandbox, sqlite_url, tmp_path, REMEDIATE_HOME_TEAM_ID="T0SANDBOX")
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli.main", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            assert _health(f"http://127.0.0.1:{port}")["ok"]
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/slack/install")
            resp = conn.getresponse()
            assert resp.status == 302
            location = resp.getheader("Location") or ""
            assert location.startswith(sandbox.url + "oauth/v2/authorize?") and "state=" in location
            assert "client_id=111.222" in location
            assert "slack-app-oauth-state=" in (resp.getheader("Set-Cookie") or "")
            conn.close()
        finally:
            proc.terminate()
            proc.wait(timeout=60)
