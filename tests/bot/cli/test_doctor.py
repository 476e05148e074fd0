"""`remediate doctor` (a subprocess) against the Slack sandbox: a good set-up, then each common mistake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.demo.stack import demo_rbac_path
from bot.sandbox import SandboxOptions, SlackSandbox
from bot.sandbox.config import BOT_SCOPES, WorkspaceConfig


@pytest.fixture
def good_env(tmp_path: Path) -> dict[str, str]:
    """A set-up every check passes: migrated store, sandbox token, secrets, graph, webhook executor, RBAC."""
    store = f"sqlite:///{tmp_path / 'store.sqlite'}"
    env = {
        "REMEDIATE_DATA_DIR": str(tmp_path),
        "REMEDIATE_DATABASE_URL": store,
        "SLACK_BOT_TOKEN": "xoxb-sandbox-token",
        "SLACK_SIGNING_SECRET": "signing-secret",
        "REMEDIATE_ALERTS_TOKEN": "alerts-token",
        "REMEDIATE_TOPOLOGY": "online-boutique",
        "REMEDIATE_RBAC_CONFIG": str(demo_rbac_path()),  # the bot's own user has a role that requests
        "REMEDIATE_EXECUTOR": "webhook",
        "REMEDIATE_WEBHOOK_URL": "http://127.0.0.1:9/automation",
        "REMEDIATE_WEBHOOK_SECRET": "hmac-secret",
    }
    upgraded = run(["db", "upgrade"], env)
    assert upgraded.returncode == 0, upgraded.stderr
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REMEDIATE_", "SLACK_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args],
        capture_output=True,
        text=True,
        env={**clean, "COLUMNS": "250", **env},
    )


def doctor(
    sandbox: SlackSandbox, env: dict[str, str], **changes: str
) -> tuple[int, dict[str, dict[str, Any]]]:
    """Run `remediate doctor --json`; return its exit status and the checks by name."""
    done = run(["doctor", "--json"], {**env, "SLACK_API_URL": sandbox.api_url, **changes})
    assert done.stdout.startswith("{"), done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] == (done.returncode == 0), done.stderr
    return done.returncode, {c["name"]: c for c in report["checks"]}


@pytest.fixture
def sandbox() -> Iterator[SlackSandbox]:
    with SlackSandbox(SandboxOptions()) as running:
        yield running


def test_a_good_set_up_is_all_ok(sandbox: SlackSandbox, good_env: dict[str, str]) -> None:
    code, checks = doctor(sandbox, good_env)
    assert code == 0
    assert {name: c["status"] for name, c in checks.items() if c["status"] != "OK"} == {}
    assert list(checks) == [
        "settings", "store", "slack token", "slack scopes", "incident channel", "signing secret",
        "alerts token", "topology", "executor", "rbac", "bot may request", "policy", "clock",
    ]  # fmt: skip
    assert (
        "U0REMBOT01" in checks["slack token"]["detail"]
        and "is a member" in checks["incident channel"]["detail"]
    )
    text = run(["doctor"], {**good_env, "SLACK_API_URL": sandbox.api_url})
    assert text.returncode == 0 and len(text.stdout.strip().splitlines()) == len(checks) + 1
    assert all(line.split()[0] == "OK" for line in text.stdout.strip().splitlines()[:-1])


def failed(checks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: c for name, c in checks.items() if c["status"] == "FAIL"}


def test_a_bad_token_fails_with_where_to_get_a_good_one(
    sandbox: SlackSandbox, good_env: dict[str, str]
) -> None:
    code, checks = doctor(sandbox, good_env, SLACK_BOT_TOKEN="xoxb-revoked-long-ago")
    assert code == 1 and list(failed(checks)) == ["slack token"]
    token = checks["slack token"]
    assert "invalid_auth" in token["detail"] and "SLACK_BOT_TOKEN" in token["fix"] and "xoxb-" in token["fix"]
    assert checks["slack scopes"]["status"] == checks["incident channel"]["status"] == "SKIP"
    text = run(["doctor"], {**good_env, "SLACK_API_URL": sandbox.api_url, "SLACK_BOT_TOKEN": "xoxb-bad"})
    line = next(x for x in text.stdout.splitlines() if x.startswith("FAIL"))
    assert "slack token" in line and "fix: set SLACK_BOT_TOKEN" in line and text.returncode == 1


def test_a_missing_scope_is_named_with_where_to_add_it(good_env: dict[str, str]) -> None:
    scopes = tuple(s for s in BOT_SCOPES if s != "channels:history")
    with SlackSandbox(SandboxOptions(workspace=WorkspaceConfig(bot_scopes=scopes))) as narrow:
        code, checks = doctor(narrow, good_env)
    assert code == 1 and list(failed(checks)) == ["slack scopes"]
    assert checks["slack scopes"]["detail"] == "missing channels:history"
    assert (
        "Bot Token Scopes" in checks["slack scopes"]["fix"] and "reinstall" in checks["slack scopes"]["fix"]
    )


def test_incident_channels_need_channels_manage(good_env: dict[str, str]) -> None:
    scopes = tuple(s for s in BOT_SCOPES if s != "channels:manage")
    with SlackSandbox(SandboxOptions(workspace=WorkspaceConfig(bot_scopes=scopes))) as narrow:
        code, _ = doctor(narrow, good_env)
        assert code == 0  # off by default: not needed
        code, checks = doctor(narrow, good_env, REMEDIATE_INCIDENT_CHANNELS="on")
    assert code == 1 and checks["slack scopes"]["detail"] == "missing channels:manage"


def test_the_bot_outside_the_incident_channel_is_told_to_invite_it(
    sandbox: SlackSandbox, good_env: dict[str, str]
) -> None:
    code, checks = doctor(sandbox, good_env, REMEDIATE_INCIDENT_CHANNEL="random")
    assert code == 1 and list(failed(checks)) == ["incident channel"]
    assert "not a member" in checks["incident channel"]["detail"]
    assert checks["incident channel"]["fix"] == "type `/invite @remediate` in #random"
    code, checks = doctor(sandbox, good_env, REMEDIATE_INCIDENT_CHANNEL="war-room")
    assert code == 1 and "channel_not_found" in checks["incident channel"]["detail"]
    assert "REMEDIATE_INCIDENT_CHANNEL" in checks["incident channel"]["fix"]


def test_an_unreachable_database_fails_the_store_check(
    sandbox: SlackSandbox, good_env: dict[str, str]
) -> None:
    url = "postgresql+psycopg://remediate:secret@127.0.0.1:1/remediate"
    code, checks = doctor(sandbox, good_env, REMEDIATE_DATABASE_URL=url)
    assert code == 1 and "store" in failed(checks)
    assert "127.0.0.1:1" in checks["store"]["detail"] and "secret" not in checks["store"]["detail"]
    assert "REMEDIATE_DATABASE_URL" in checks["store"]["fix"]
    assert checks["slack token"]["status"] == "OK"  # the other checks still run


def test_a_broken_rbac_file_fails_naming_the_file(
    sandbox: SlackSandbox, good_env: dict[str, str], tmp_path: Path
) -> None:
    broken = tmp_path / "rbac.yaml"
    broken.write_text("version: 1\nusers:\n  U0REMBOT01: {name: remediate, roles: bot]\n")
    code, checks = doctor(sandbox, good_env, REMEDIATE_RBAC_CONFIG=str(broken))
    assert code == 1 and list(failed(checks)) == ["rbac"]
    assert str(broken) in checks["rbac"]["detail"] + checks["rbac"]["fix"]
    assert checks["bot may request"]["status"] == "SKIP"
    # a valid file without the bot's user: it may request nothing
    lonely = tmp_path / "lonely.yaml"
    lonely.write_text(
        "version: 1\nroles: {oncall: on call}\nusers: {U0ALICE001: {name: alice, roles: [oncall]}}\n"
    )
    code, checks = doctor(sandbox, good_env, REMEDIATE_RBAC_CONFIG=str(lonely))
    assert code == 1 and list(failed(checks)) == ["bot may request"]
    assert "U0REMBOT01" in checks["bot may request"]["fix"]


def test_a_misconfigured_executor_fails_with_its_reason(
    sandbox: SlackSandbox, good_env: dict[str, str]
) -> None:
    env = {k: v for k, v in good_env.items() if k != "REMEDIATE_WEBHOOK_URL"}
    code, checks = doctor(sandbox, env)
    assert code == 1 and list(failed(checks)) == ["executor"]
    assert "REMEDIATE_WEBHOOK_URL" in checks["executor"]["detail"]
    assert "docs/executors.md" in checks["executor"]["fix"]
    code, checks = doctor(sandbox, good_env, REMEDIATE_EXECUTOR="none")
    assert code == 0 and checks["executor"]["status"] == "WARN"


def test_settings_the_secrets_and_the_graph(sandbox: SlackSandbox, good_env: dict[str, str]) -> None:
    code, checks = doctor(sandbox, good_env, REMEDIATE_TOP_K="0")
    assert code == 1 and list(checks) == ["settings"] and "REMEDIATE_TOP_K" in checks["settings"]["detail"]
    env = {k: v for k, v in good_env.items() if k not in ("SLACK_SIGNING_SECRET", "REMEDIATE_ALERTS_TOKEN")}
    code, checks = doctor(sandbox, {k: v for k, v in env.items() if k != "REMEDIATE_TOPOLOGY"})
    assert code == 1 and list(failed(checks)) == ["signing secret", "alerts token", "topology"]
    assert "SLACK_SIGNING_SECRET" in checks["signing secret"]["fix"]
    assert "REMEDIATE_TOPOLOGY" in checks["topology"]["fix"]


def test_the_clock_check_tolerates_seconds_and_fails_past_five_minutes() -> None:
    from datetime import UTC, datetime, timedelta

    from bot.cli.doctor_slack import Answer, check_clock

    slack = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    answer = Answer(True, {"ok": True}, None, slack)
    assert check_clock(answer, slack + timedelta(seconds=3)).status == "OK"
    assert check_clock(answer, slack - timedelta(seconds=90)).status == "WARN"
    late = check_clock(answer, slack + timedelta(minutes=6))
    assert late.status == "FAIL" and "360 s ahead" in late.detail and "NTP" in late.fix
    assert check_clock(None).status == "SKIP"
