"""`remediate demo` keeps its own data directory and never writes into the default store (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect


def remediate(args: list[str], data_dir: Path, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REMEDIATE_DATA_DIR": str(data_dir), "COLUMNS": "200", **env_extra}
    for name in ("REMEDIATE_DATABASE_URL", "REMEDIATE_CONFIG"):
        if name not in env_extra:
            env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args], capture_output=True, text=True, env=env
    )


def incidents(data_dir: Path, *extra: str) -> list[dict[str, Any]]:
    done = remediate([*extra, "incidents", "list", "--json", "--limit", "1000"], data_dir)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def test_demo_writes_only_its_own_directory_and_history_is_all_resolved(tmp_path: Path) -> None:
    done = remediate(["demo", "--no-serve", "--history-incidents", "3"], tmp_path)
    assert done.returncode == 0, done.stderr
    demo_dir = tmp_path / "demo"
    assert f"data directory: {demo_dir}" in done.stdout
    assert (demo_dir / "remediate.sqlite").is_file()
    assert not (tmp_path / "remediate.sqlite").exists()
    assert all(p == demo_dir for p in tmp_path.iterdir()), list(tmp_path.iterdir())
    # the default store, as `remediate incidents list` (and `serve`) open it, holds no demo incident
    assert incidents(tmp_path) == []
    # the demo's store holds the sample and simulated history, every incident resolved
    demo_rows = incidents(tmp_path, "--database-url", f"sqlite:///{demo_dir / 'remediate.sqlite'}")
    assert len(demo_rows) == 33
    assert {r["status"] for r in demo_rows} == {"resolved"}


def test_demo_ignores_the_configured_store_and_reset_starts_afresh(tmp_path: Path) -> None:
    real = tmp_path / "real.sqlite"
    url = f"sqlite:///{real}"
    assert remediate(["db", "upgrade"], tmp_path, REMEDIATE_DATABASE_URL=url).returncode == 0
    first = remediate(
        ["demo", "--no-serve", "--history-incidents", "0"], tmp_path, REMEDIATE_DATABASE_URL=url
    )
    assert first.returncode == 0, first.stderr
    assert "imported 30, skipped 0" in first.stdout
    assert incidents(tmp_path, "--database-url", url) == []  # the configured store stays as it was
    marker = tmp_path / "demo" / "left-over"
    marker.write_text("from an earlier run")
    again = remediate(["demo", "--no-serve", "--history-incidents", "0", "--reset"], tmp_path)
    assert again.returncode == 0, again.stderr
    assert "imported 30, skipped 0" in again.stdout and not marker.exists()


def test_demo_store_option_names_where_the_incidents_go(tmp_path: Path) -> None:
    chosen = tmp_path / "chosen.sqlite"
    done = remediate(
        ["demo", "--no-serve", "--history-incidents", "0", "--store", f"sqlite:///{chosen}"], tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "(--store)" in done.stdout
    assert "incidents" in inspect(create_engine(f"sqlite:///{chosen}")).get_table_names()
    assert len(incidents(tmp_path, "--database-url", f"sqlite:///{chosen}")) == 30
    assert not (tmp_path / "demo" / "remediate.sqlite").exists()
