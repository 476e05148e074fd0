"""`remediate import --sql` and `--pagerduty` as a user runs them: real subprocesses, a SQLite source and store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.incidents_db.sql_sources import create_source

ROOT = Path(__file__).parents[3]
SAMPLE = ROOT / "incidents_db" / "samples" / "sql-mapping.yaml"
PD_EXPORT = ROOT / "tests" / "incidents_db" / "pagerduty_export.json"


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REMEDIATE_DATA_DIR": str(tmp_path),
           "REMEDIATE_DATABASE_URL": f"sqlite:///{tmp_path / 'store.sqlite'}"}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "bot.cli.main", "import", *args], capture_output=True, text=True,
                          env=env, timeout=120, check=False)  # fmt: skip


def test_import_sql_reports_like_a_json_lines_import(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tickets.sqlite'}"
    create_source(url)
    first = run(tmp_path, "--sql", url, "--mapping", str(SAMPLE), "--json")
    assert first.returncode == 1, first.stderr  # one ticket refused: exit 1, the rest imported
    report = json.loads(first.stdout)
    assert report["imported"] == 2 and report["refused"][0]["line"] == 3
    assert "TKT-3" in report["refused"][0]["error"]
    again = run(tmp_path, "--sql", url, "--mapping", str(SAMPLE))
    assert "imported 0, skipped 2 already in the store, refused 1" in again.stdout


def test_import_sql_refuses_an_unknown_column_and_bad_combinations(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tickets.sqlite'}"
    create_source(url)
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        SAMPLE.read_text(encoding="utf-8").replace("title: summary", "title: subject"), "utf-8"
    )
    bad = run(tmp_path, "--sql", url, "--mapping", str(mapping))
    assert (
        bad.returncode == 1 and "unknown column(s) 'subject'" in bad.stderr and "Traceback" not in bad.stderr
    )
    alone = run(tmp_path, "--sql", url)
    assert alone.returncode == 1 and "exactly one source" in alone.stderr
    both = run(tmp_path, "history.jsonl", "--pagerduty", str(PD_EXPORT))
    assert both.returncode == 1 and "exactly one source" in both.stderr


def test_import_pagerduty(tmp_path: Path) -> None:
    done = run(tmp_path, "--pagerduty", str(PD_EXPORT), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"imported": 2, "skipped_existing": 0, "refused": []}
