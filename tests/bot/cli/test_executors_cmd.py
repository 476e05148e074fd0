"""`remediate executors check` as a real subprocess: dry runs per configured executor, refusals, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.remediation.executors.receivers import JsonReceiver


def _check(tmp_path: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REMEDIATE_", "KUBE"))}
    env.update({"REMEDIATE_DATA_DIR": str(tmp_path), "HOME": str(tmp_path), "COLUMNS": "1000", **env_extra})
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "executors", "check", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_dry_runs_webhook_and_pagerduty_and_sends_nothing(tmp_path: Path) -> None:
    hook, pagerduty = JsonReceiver("webhook", secret="s"), JsonReceiver("pagerduty")
    try:
        result = _check(
            tmp_path,
            "--json",
            "--target",
            "cartservice",
            REMEDIATE_EXECUTOR="webhook",
            REMEDIATE_WEBHOOK_URL=hook.url,
            REMEDIATE_WEBHOOK_SECRET="s",
            REMEDIATE_PAGERDUTY_ROUTING_KEY="pd-key-not-shown",
            REMEDIATE_PAGERDUTY_EVENTS_URL=pagerduty.url,
        )
    finally:
        hook.close()
        pagerduty.close()
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["executor"] == "webhook"
    rows = {row["executor"]: row for row in report["checks"]}
    assert rows["webhook"]["status"] == "dry_run" and rows["webhook"]["target"] == "cartservice"
    assert rows["webhook"]["detail"].startswith(f"would POST {hook.url}")
    assert rows["pagerduty"]["action"] == "escalate" and rows["pagerduty"]["used_for"] == "escalate"
    assert "pd-key-not-shown" not in result.stdout
    assert hook.received == [] and pagerduty.received == []


def test_check_table_says_advisory_with_none(tmp_path: Path) -> None:
    result = _check(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "advisory" in result.stdout and "approving records the decision and nothing runs" in result.stdout


def test_check_exits_1_and_names_the_refused_executor(tmp_path: Path) -> None:
    result = _check(
        tmp_path, REMEDIATE_EXECUTOR="kubernetes", REMEDIATE_KUBECONFIG=str(tmp_path / "none.yaml")
    )
    assert result.returncode == 1
    assert "refused" in result.stdout and "does not exist" in result.stdout
    assert "kubernetes cannot run actions" in result.stderr and "Traceback" not in result.stderr


def test_config_show_lists_executor_settings_with_secrets_masked(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REMEDIATE_"))}
    env.update(
        {
            "REMEDIATE_DATA_DIR": str(tmp_path),
            "REMEDIATE_EXECUTOR": "webhook",
            "REMEDIATE_WEBHOOK_URL": "https://bot:pw@hooks.example.com/run",
            "REMEDIATE_WEBHOOK_SECRET": "hook-secret",
            "REMEDIATE_PAGERDUTY_ROUTING_KEY": "routing-key-secret",
        }
    )
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "config", "show", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    shown = json.loads(result.stdout)
    assert shown["executor"] == "webhook" and shown["kube_namespace"] == "default"
    assert shown["webhook_secret"] == "***" and shown["pagerduty_routing_key"] == "***"
    assert shown["webhook_url"] == "https://bot:***@hooks.example.com/run"
    assert "hook-secret" not in result.stdout and "routing-key-secret" not in result.stdout
