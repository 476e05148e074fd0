"""`remediate jobs` and `remediate learning` as a user runs them: real subprocesses on a real SQLite store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {
        **os.environ,
        "REMEDIATE_DATA_DIR": str(tmp_path),
        "REMEDIATE_DATABASE_URL": f"sqlite:///{tmp_path / 'r.sqlite'}",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=300,
        check=False,
    )


def test_jobs_list_and_run_by_hand(tmp_path: Path) -> None:
    listed = run(tmp_path, "jobs", "list", "--json", REMEDIATE_JOBS_SCHEDULE='{"retrain": ""}')
    assert listed.returncode == 0, listed.stderr
    rows = {r["job"]: r for r in json.loads(listed.stdout)}
    assert list(rows) == ["mine", "retrain", "evaluate", "promote", "report", "watch"]
    assert rows["retrain"]["schedule"] == "off" and rows["mine"]["schedule"] == "*/30 * * * *"
    assert rows["mine"]["last_run"] is None
    mined = run(tmp_path, "jobs", "run", "mine", "--json")
    assert mined.returncode == 0 and json.loads(mined.stdout)["outcome"] == "succeeded"
    rows = {r["job"]: r for r in json.loads(run(tmp_path, "jobs", "list", "--json").stdout)}
    assert rows["mine"]["outcome"] == "succeeded" and rows["mine"]["last_run"]
    unknown = run(tmp_path, "jobs", "run", "nope")
    assert unknown.returncode == 1 and "no job 'nope'" in unknown.stderr and "Traceback" not in unknown.stderr
    bad = run(tmp_path, "jobs", "list", REMEDIATE_JOBS_SCHEDULE='{"mine": "every hour"}')
    assert bad.returncode != 0 and "REMEDIATE_JOBS_SCHEDULE" in bad.stderr and "crontab" in bad.stderr


def test_learning_freeze_stops_retrain_until_unfrozen(tmp_path: Path) -> None:
    status = json.loads(run(tmp_path, "learning", "status", "--json").stdout)
    assert status["frozen"] is False and status["live"]["promoted"] is None
    frozen = run(tmp_path, "learning", "freeze", "--user", "U1", "--reason", "looking at INC-7", "--json")
    assert frozen.returncode == 0 and json.loads(frozen.stdout)["reason"] == "looking at INC-7"
    skipped = json.loads(run(tmp_path, "jobs", "run", "retrain", "--json").stdout)
    assert skipped["outcome"] == "skipped" and "learning is frozen" in skipped["detail"]["reason"]
    human = run(tmp_path, "learning", "status")
    assert "FROZEN" in human.stdout and "U1" in human.stdout
    assert (
        json.loads(run(tmp_path, "learning", "unfreeze", "--user", "U1", "--json").stdout)["frozen"] is False
    )
    audit = run(tmp_path, "audit", "show", "--json")
    assert "learning_freeze" in audit.stdout and "learning_unfreeze" in audit.stdout
    missing = run(tmp_path, "learning", "harmful", "REQ-404", "--user", "U1", "--reason", "r")
    assert missing.returncode == 1 and "no approval request 'REQ-404'" in missing.stderr
