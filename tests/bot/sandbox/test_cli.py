"""`remediate sandbox serve` as a real subprocess: prints its endpoints, serves, stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from slack_sdk import WebClient


def test_serve_prints_endpoints_serves_and_stops_on_sigint(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace.json"
    workspace.write_text(
        json.dumps({"team_name": "acme", "users": [{"id": "U0ZOE00001", "name": "zoe", "real_name": "Zoe"}]})
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot.cli.main",
            "sandbox",
            "serve",
            "--port",
            "0",
            "--json",
            "--workspace",
            str(workspace),
            "--bot-token",
            "xoxb-cli-test",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        client = WebClient(token="xoxb-cli-test", base_url=info["api_url"])
        assert client.auth_test()["team"] == "acme"
        assert client.users_info(user="U0ZOE00001")["user"]["name"] == "zoe"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()


def test_app_url_without_secret_is_refused() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot.cli.main",
            "sandbox",
            "serve",
            "--port",
            "0",
            "--app-url",
            "http://127.0.0.1:1/slack/events",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )
    assert done.returncode == 1
    assert "signing secret" in done.stderr and "Traceback" not in done.stderr


def test_bad_workspace_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "ws.json"
    bad.write_text('{"users": [{"id": "U1"}]}')
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "sandbox", "serve", "--port", "0", "--workspace", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "workspace file" in done.stderr and "Traceback" not in done.stderr
