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


def run_on(url: str, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI on the store at ``url`` with extra ``REMEDIATE_*`` variables."""
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "REMEDIATE_DATA_DIR": str(tmp_path), "REMEDIATE_DATABASE_URL": url, **env},
        timeout=120,
        check=False,
    )


def test_audit_publish_and_verify_against_the_published_head(db_url: str, tmp_path: Path) -> None:
    import sqlalchemy as sa

    from incidents_db.db import make_engine, make_sessionmaker, upgrade
    from remediation.audit.service import append

    heads = tmp_path / "heads.jsonl"
    upgrade(db_url)
    engine = make_engine(db_url)
    with make_sessionmaker(engine)() as session:
        for i in range(3):
            append(db_session=session, actor=CAROL, event="freeze_on", decision="allowed", reason=str(i))
        session.commit()
    nowhere = run_on(db_url, tmp_path, "audit", "publish")
    assert nowhere.returncode == 1 and "REMEDIATE_AUDIT_HEAD_FILE" in nowhere.stderr
    first = run_on(db_url, tmp_path, "audit", "publish", "--json", REMEDIATE_AUDIT_HEAD_FILE=str(heads))
    assert first.returncode == 0, first.stderr
    head = json.loads(first.stdout)["head"]
    assert head["seq"] == 3 and json.loads(heads.read_text()) == head

    ok = run_on(db_url, tmp_path, "audit", "verify", "--head-file", str(heads))
    assert ok.returncode == 0 and "audit log OK: 3 entries" in ok.stdout and head["hash"] in ok.stdout
    by_hash = run_on(db_url, tmp_path, "audit", "verify", "--expect-head", f"3:{head['hash']}")
    assert by_hash.returncode == 0 and "runs through 1 published head" in by_hash.stdout

    # the database admin cuts entry 3 and points the head row at entry 2
    with engine.begin() as conn:
        survivor = conn.execute(sa.text("SELECT hash FROM audit_log WHERE seq = 2")).scalar_one()
        conn.execute(sa.text("DELETE FROM audit_log WHERE seq = 3"))
        conn.execute(sa.text("UPDATE audit_head SET seq = 2, hash = :h WHERE id = 1"), {"h": survivor})
    assert run_on(db_url, tmp_path, "audit", "verify").returncode == 0  # the store alone cannot tell
    caught = run_on(db_url, tmp_path, "audit", "verify", "--expect-head", head["hash"])
    assert caught.returncode == 1 and "Traceback" not in caught.stderr
    assert len(caught.stderr.strip().splitlines()) == 1, caught.stderr
    assert "broken at entry 3" in caught.stderr and "no entry has the published head hash" in caught.stderr
    named = run_on(db_url, tmp_path, "audit", "verify", "--head-file", str(heads), "--json")
    verdict = json.loads(named.stdout)
    assert named.returncode == 1 and "broken at entry 3" in named.stderr
    assert verdict["ok"] is False and "entries 3..3 are missing" in verdict["problem"]
    refused = run_on(db_url, tmp_path, "audit", "publish", REMEDIATE_AUDIT_HEAD_FILE=str(heads))
    assert refused.returncode == 1 and "not published" in refused.stderr
    assert heads.read_text().count("\n") == 1  # the cut head is never published

    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_head"))
    engine.dispose()
    headless = run_on(db_url, tmp_path, "audit", "verify")
    assert headless.returncode == 1 and "audit_head row is missing" in headless.stderr
    bad = run_on(db_url, tmp_path, "audit", "verify", "--expect-head", "nope")
    assert bad.returncode == 1 and "expected a 64-digit sha256 hex hash" in bad.stderr
