"""`remediate train` and `remediate policy ...` as a user runs them: real subprocesses, a real SQLite store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "REMEDIATE_DATA_DIR": str(home),
        "REMEDIATE_DATABASE_URL": f"sqlite:///{home / 'store.sqlite'}",
    }
    return subprocess.run([sys.executable, "-m", "bot.cli.main", *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)  # fmt: skip


def ok_json(home: Path, *args: str) -> Any:
    proc = run(home, *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def refused(home: Path, *args: str) -> str:
    """Run a command that must be refused: exit 1, a one-line message, no traceback."""
    proc = run(home, *args)
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with two quick policies trained through the CLI."""
    path = tmp_path_factory.mktemp("cli")
    for seed in ("1", "2"):
        ok_json(
            path, "train", "--quick", "--iterations", "2", "--minutes", "60", "--seed", seed
        )  # iterations bind
    return path


def test_train_registers_candidates_with_verified_artifacts(home: Path) -> None:
    rows = ok_json(home, "policy", "list")
    assert len(rows) == 2 and {r["status"] for r in rows} == {"candidate"}
    first, second = sorted(rows, key=lambda r: r["created_at"])
    assert first["version"] != second["version"] and first["version"].endswith("-s1")
    meta = json.loads((Path(first["path"]) / "artifact.json").read_text())
    assert meta["sha256"] == first["sha256"] and meta["version"] == first["version"]
    shown = ok_json(home, "policy", "show", first["version"])
    assert shown["config"]["seed"] == 1 and shown["config"]["hidden"] == 32
    assert shown["metrics"]["iterations"] == 2
    assert (home / "runs").is_dir() and list((home / "runs").glob("*/metrics.jsonl"))


def test_policy_life_cycle_shadow_promote_rollback(home: Path) -> None:
    first, second = (
        r["version"] for r in sorted(ok_json(home, "policy", "list"), key=lambda r: r["created_at"])
    )
    assert "no promoted policy" in refused(home, "policy", "rollback")
    assert ok_json(home, "policy", "shadow", second)["status"] == "shadow"
    assert ok_json(home, "policy", "promote", first, "--force")["status"] == "promoted"
    assert ok_json(home, "policy", "promote", second, "--force")["status"] == "promoted"
    assert "roll back first" in refused(home, "policy", "shadow", second)
    assert ok_json(home, "policy", "rollback")["version"] == first
    statuses = {r["version"]: r["status"] for r in ok_json(home, "policy", "list")}
    assert statuses == {first: "promoted", second: "retired"}
    assert "no policy version 'policy-nope'" in refused(home, "policy", "show", "policy-nope")
    assert "no policy version 'policy-nope'" in refused(home, "policy", "promote", "policy-nope", "--force")


def test_promotion_gate_refuses_a_weak_policy(home: Path) -> None:
    # two PPO iterations of a tiny network do not beat the runbook on a held-out topology
    version = sorted(ok_json(home, "policy", "list"), key=lambda r: r["created_at"])[1]["version"]
    line = refused(home, "policy", "promote", version, "--episodes", "8")
    assert "failed the promotion gate" in line and "--force" in line


def test_tampered_artifact_is_refused_everywhere(home: Path) -> None:
    row = sorted(ok_json(home, "policy", "list"), key=lambda r: r["created_at"])[0]
    weights = Path(row["path"]) / "policy.pt"
    original = weights.read_bytes()
    try:
        weights.write_bytes(original + b"\0")
        for args in (("policy", "promote", row["version"], "--force"), ("policy", "shadow", row["version"]),
                     ("eval", "--topology", "hotel-reservation", "--episodes", "2", "--policy", row["version"])):  # fmt: skip
            line = refused(home, *args)
            assert "SHA-256" in line and "refusing to load" in line
    finally:
        weights.write_bytes(original)


def test_train_refuses_bad_input(tmp_path: Path) -> None:
    both = refused(tmp_path, "train", "--history", str(tmp_path / "missing.jsonl"), "--from-store")
    assert "not both" in both
    assert "no such file" in refused(tmp_path, "train", "--history", str(tmp_path / "missing.jsonl"))
    assert "--history-topology" in refused(
        tmp_path, "train", "--quick", "--history-topology", "no-such-graph"
    )
