"""The safety commands as a user runs them: real subprocesses on a real SQLite store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CAROL, ALICE = "U03C4D5E6", "U024BE7LH"


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "REMEDIATE_DATA_DIR": str(tmp_path),
        "REMEDIATE_DATABASE_URL": f"sqlite:///{tmp_path / 'r.sqlite'}",
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_freeze_rbac_and_audit_round_trip(tmp_path: Path) -> None:
    denied = run(tmp_path, "freeze", "on", "--user", ALICE)
    assert (
        denied.returncode == 1
        and "may not turn the freeze on" in denied.stderr
        and "Traceback" not in denied.stderr
    )
    assert run(tmp_path, "freeze", "on", "--user", CAROL, "--service", "frontend").returncode == 0
    check = run(
        tmp_path,
        "rbac",
        "check",
        "--user",
        ALICE,
        "--action",
        "restart_service",
        "--target",
        "frontend",
        "--json",
    )
    assert check.returncode == 1 and json.loads(check.stdout)["code"] == "freeze"
    other = run(
        tmp_path,
        "rbac",
        "check",
        "--user",
        ALICE,
        "--action",
        "restart_service",
        "--target",
        "checkoutservice",
    )
    assert other.returncode == 0 and "ALLOWED" in other.stdout and "who may approve" in other.stdout
    assert run(tmp_path, "freeze", "off", "--user", CAROL, "--service", "frontend").returncode == 0
    verify = run(tmp_path, "audit", "verify", "--json")
    assert verify.returncode == 0 and json.loads(verify.stdout)["checked"] == 3
    shown = json.loads(run(tmp_path, "audit", "show", "--json").stdout)
    assert [(e["event"], e["decision"]) for e in shown] == [
        ("freeze_on", "denied"),
        ("freeze_on", "allowed"),
        ("freeze_off", "allowed"),
    ]


def test_audit_verify_names_tampered_entry(tmp_path: Path) -> None:
    import sqlite3

    for _ in range(3):
        run(tmp_path, "freeze", "on", "--user", CAROL)
    with sqlite3.connect(tmp_path / "r.sqlite") as conn:
        conn.execute("UPDATE audit_log SET actor = 'U024BE7LH' WHERE seq = 2")
    out = run(tmp_path, "audit", "verify")
    assert out.returncode == 1 and "broken at entry 2" in out.stderr


@pytest.mark.parametrize("bad", ["runbooks.yaml"])
def test_playbooks_validate_reports_problems(tmp_path: Path, bad: str) -> None:
    assert run(tmp_path, "playbooks", "validate").returncode == 0
    user = tmp_path / "pb"
    user.mkdir()
    (user / bad).write_text(
        "version: 1\nrunbooks:\n  - {id: x, fault: x, description: x, when: {alerts_any: [A]}, steps: [{action: nope}]}\n"
    )
    out = run(tmp_path, "playbooks", "validate", str(user), "--json")
    assert out.returncode == 1
    problems = json.loads(out.stdout)["problems"]
    assert problems == [
        {"file": str(user / bad), "key": "runbooks.0.steps.0.action", "message": "unknown action 'nope'"}
    ]
