"""`remediate serve` as a real subprocess with executors: refusals at start, /healthz, a webhook that acts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox import SandboxOptions, SlackSandbox
from tests.bot.cli.test_serve_cli import _free_port, _health
from tests.bot.conftest import ALICE, BOT, RBAC, SECRET
from tests.bot.sandbox.conftest import WAIT_S, control, wait_for
from tests.remediation.executors.receivers import JsonReceiver

HOOK_SECRET = "hook-secret-for-serve"
KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- {name: test, cluster: {server: "https://127.0.0.1:6443", certificate-authority-data: "bm90LWEtY2E="}}
users:
- {name: bot, user: {token: t0ken}}
contexts:
- {name: staging, context: {cluster: test, user: bot}}
current-context: staging
"""


def _clean_env(tmp_path: Path, sqlite_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REMEDIATE_", "KUBE"))}
    rbac = tmp_path / "rbac.yaml"
    rbac.write_text(RBAC, encoding="utf-8")
    env.update(
        {
            "SLACK_BOT_TOKEN": "xoxb-x",
            "SLACK_SIGNING_SECRET": SECRET,
            "REMEDIATE_DATABASE_URL": sqlite_url,
            "REMEDIATE_DATA_DIR": str(tmp_path),
            "REMEDIATE_RBAC_CONFIG": str(rbac),
            "REMEDIATE_ALERTS_TOKEN": "t",
            "REMEDIATE_REQUESTER": BOT,
            "REMEDIATE_TOPOLOGY": "online-boutique",  # a graph named explicitly, as serve requires
            "REMEDIATE_POLICY": "runbook",  # approve:1 is the runbook's first fix, not the bundled policy's
            "HOME": str(tmp_path),  # no ~/.kube/config of the machine running the tests
            **extra,
        }
    )
    return env


def _serve_refused(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (
            {"REMEDIATE_EXECUTOR": "webhook", "REMEDIATE_WEBHOOK_URL": "hooks.example.com/run"},
            "setting REMEDIATE_WEBHOOK_URL='hooks.example.com/run': Value error, expected an http:// or "
            "https:// URL with a host",
        ),
        (
            {"REMEDIATE_EXECUTOR": "webhook", "REMEDIATE_WEBHOOK_SECRET": "x"},
            "not starting: the webhook executor needs REMEDIATE_WEBHOOK_URL",
        ),
        (
            {"REMEDIATE_EXECUTOR": "kubernetes", "REMEDIATE_KUBECONFIG": "/nonexistent/kubeconfig"},
            "not starting: the kubernetes executor cannot start: kubeconfig /nonexistent/kubeconfig does "
            "not exist",
        ),
        (
            {
                "REMEDIATE_EXECUTOR": "kubernetes",
                "REMEDIATE_KUBE_CONTEXT": "prod",
                "REMEDIATE_KUBECONFIG": "K",
            },
            "not starting: the kubernetes executor cannot start: context 'prod' is not in kubeconfig",
        ),
        (
            {"REMEDIATE_EXECUTOR": "none", "REMEDIATE_EXECUTOR_ROUTES": '{"escalate": "pagerduty"}'},
            "not starting: an action routes to pagerduty but REMEDIATE_PAGERDUTY_ROUTING_KEY is not set",
        ),
    ],
)
def test_serve_refuses_a_misconfigured_executor_in_one_line(
    tmp_path: Path, sqlite_url: str, extra: dict[str, str], reason: str
) -> None:
    if extra.get("REMEDIATE_KUBECONFIG") == "K":
        (tmp_path / "kubeconfig").write_text(KUBECONFIG)
        extra = {**extra, "REMEDIATE_KUBECONFIG": str(tmp_path / "kubeconfig")}
    result = _serve_refused(_clean_env(tmp_path, sqlite_url, **extra))
    assert result.returncode == 1, result.stdout + result.stderr
    assert reason in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert len(result.stderr.strip().splitlines()) == 1 or reason.startswith("setting")


@pytest.fixture
def receivers() -> Iterator[tuple[JsonReceiver, JsonReceiver]]:
    hook, pagerduty = JsonReceiver("webhook", secret=HOOK_SECRET), JsonReceiver("pagerduty")
    yield hook, pagerduty
    hook.close()
    pagerduty.close()


def _cards(sandbox: SlackSandbox) -> list[dict[str, Any]]:
    found = control(sandbox, "messages?channel=C0INCIDENT", method="GET")
    items = found.get("messages", found) if isinstance(found, dict) else found
    return [m for m in items if not m.get("thread_ts") or m.get("thread_ts") == m.get("ts")]


def test_serve_with_webhook_runs_an_approved_action_on_a_real_receiver(
    tmp_path: Path, sqlite_url: str, receivers: tuple[JsonReceiver, JsonReceiver]
) -> None:
    hook, pagerduty = receivers
    with SlackSandbox(SandboxOptions(ack_timeout_s=WAIT_S)) as sandbox:
        env = _clean_env(
            tmp_path,
            sqlite_url,
            SLACK_BOT_TOKEN=sandbox.bot_token,
            SLACK_API_URL=sandbox.api_url,
            REMEDIATE_EXECUTOR="webhook",
            REMEDIATE_WEBHOOK_URL=hook.url,
            REMEDIATE_WEBHOOK_SECRET=HOOK_SECRET,
            REMEDIATE_PAGERDUTY_ROUTING_KEY="pd-routing-key",
            REMEDIATE_PAGERDUTY_EVENTS_URL=pagerduty.url,
        )
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli.main", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            health = _health(base)
            assert health["executor"] == {"kind": "webhook", "routes": {"escalate": "pagerduty"}}
            body = json.dumps({"alerts": [{"name": "HighErrorRate", "service": "checkoutservice"}]}).encode()
            req = urllib.request.Request(
                base + "/alerts/generic", data=body, headers={"Authorization": "Bearer t"}, method="POST"
            )
            with urllib.request.urlopen(req, timeout=WAIT_S) as resp:
                assert json.loads(resp.read())["created"] == ["INC-1"]
            driver = sandbox.connect_app(base + "/slack/events", SECRET)
            card = wait_for(lambda: next(iter(_cards(sandbox)), None))
            assert "Advisory mode" not in json.dumps(card["blocks"])  # this bot acts
            driver.click(user=ALICE, channel="incidents", message_ts=card["ts"], action_id="approve:1")
            assert hook.arrived.wait(WAIT_S), "the approved action never reached the receiver"
            [got] = hook.received
            assert got["problems"] == []  # signed with the configured secret
            assert got["body"]["action"] == "restart_service" and got["body"]["target"] == "checkoutservice"
            assert got["body"]["dry_run"] is False
            wait_for(lambda: any("executed" in json.dumps(c["blocks"]) for c in _cards(sandbox)))
            assert pagerduty.received == []  # only escalate pages
        finally:
            proc.terminate()
            out, _ = proc.communicate(timeout=30)
    assert f"remediate: executor webhook (escalate -> pagerduty) at {hook.url}" in " ".join(out.split())
