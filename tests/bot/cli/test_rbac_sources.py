"""`remediate rbac check` names where each role came from, with the Slack sandbox as the user groups' source."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bot.sandbox import SlackSandbox
from tests.bot.sandbox.conftest import control

ALICE, CAROL = "U0ALICE001", "U0CAROL003"
RBAC = f"""
version: 1
policy_version: rbac-sources-1
roles: {{oncall: on call, sre-lead: leads}}
users:
  {CAROL}: {{name: carol, roles: [sre-lead]}}
groups:
  oncall: {{slack_usergroup: S0ONCALL01, roles: [oncall]}}
teams:
  shop: {{groups: [oncall], services: [checkoutservice]}}
policies:
  - {{name: oncall-owned, roles: [oncall], services: [owned], request: [low, medium], approve: [low, medium]}}
  - {{name: leads, roles: [sre-lead], services: ["*"], request: [low, medium, high, critical], approve: [low, medium, high, critical]}}
"""


def check(tmp_path: Path, sandbox: SlackSandbox, user: str, *extra: str) -> subprocess.CompletedProcess[str]:
    rbac = tmp_path / "rbac.yaml"
    rbac.write_text(RBAC, encoding="utf-8")
    env = {
        **os.environ,
        "REMEDIATE_DATA_DIR": str(tmp_path),
        "REMEDIATE_DATABASE_URL": f"sqlite:///{tmp_path / 'r.sqlite'}",
        "REMEDIATE_RBAC_CONFIG": str(rbac),
        "SLACK_BOT_TOKEN": sandbox.bot_token,
        "SLACK_API_URL": sandbox.api_url,
    }
    args = [
        "rbac",
        "check",
        "--user",
        user,
        "--action",
        "restart_service",
        "--target",
        "checkoutservice",
        *extra,
    ]
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_rbac_check_names_the_user_group_and_its_freshness(tmp_path: Path) -> None:
    with SlackSandbox() as sandbox:
        done = check(tmp_path, sandbox, ALICE)
        assert done.returncode == 0, done.stderr
        assert "ALLOWED" in done.stdout
        assert "role oncall: from group oncall: Slack user group S0ONCALL01 (as of " in done.stdout
        lead = json.loads(check(tmp_path, sandbox, CAROL, "--json").stdout)
        assert lead["roles"] == [{"role": "sre-lead", "via": "file user entry", "stale": False}]
        assert lead["sources"]["oncall"]["members"] == ["U0ALICE001", "U0BOB00002"]
        control(sandbox, "faults", {"method": "usergroups.users.list", "kind": "server_error", "count": 5})
        failed = check(tmp_path, sandbox, ALICE)
        assert failed.returncode == 1  # an unreachable source grants nothing
        assert "group oncall: Slack user group S0ONCALL01 unreachable" in failed.stdout
