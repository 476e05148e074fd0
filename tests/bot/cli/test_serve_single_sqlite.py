"""SQLite serves one process: a second `remediate serve` on the same file is refused in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from incidents_db.leader import hold_serving_lock
from tests.bot.cli.test_serve_executors import _clean_env


def test_a_second_serve_on_one_sqlite_file_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    held = hold_serving_lock(sqlite_url)  # this process plays the first `serve`
    assert held is not None
    try:
        result = subprocess.run(
            [sys.executable, "-m", "bot.cli.main", "serve", "--port", "0"],
            env=_clean_env(tmp_path, sqlite_url),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        held.close()
    assert result.returncode == 1, result.stdout + result.stderr
    said = " ".join(result.stderr.split())
    assert "another `remediate serve`" in said and "SQLite serves one process" in said, said
    assert "Traceback" not in result.stderr + result.stdout


def test_postgresql_and_memory_stores_take_no_serving_lock(tmp_path: Path) -> None:
    assert hold_serving_lock("postgresql+psycopg://u@127.0.0.1/x") is None
    assert hold_serving_lock("sqlite://") is None
    first = hold_serving_lock(f"sqlite:///{tmp_path / 'a.db'}")
    assert first is not None
    first.close()  # released: the next process (or this one) takes it
    again = hold_serving_lock(f"sqlite:///{tmp_path / 'a.db'}")
    assert again is not None
    again.close()
