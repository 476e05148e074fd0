"""The store commands as a user runs them: real subprocesses, exit codes 0/1/2, no tracebacks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from incidents_db.synthetic import generate_incidents
from tests.incidents_db.factories import incident, line


def cli(
    args: list[str], *, url: str, data_dir: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REMEDIATE_DATABASE_URL": url, "REMEDIATE_DATA_DIR": str(data_dir), "COLUMNS": "300"}
    env.pop("REMEDIATE_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def write_history(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(line(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_import_json_report_and_exit_status(db_url: str, tmp_path: Path) -> None:
    good = write_history(tmp_path / "good.jsonl", [incident("INC-1"), incident("INC-2", resolved_at=None)])
    first = cli(["import", str(good), "--json"], url=db_url, data_dir=tmp_path)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"imported": 2, "skipped_existing": 0, "refused": []}
    again = cli(["import", str(good), "--json"], url=db_url, data_dir=tmp_path)
    assert json.loads(again.stdout) == {"imported": 0, "skipped_existing": 2, "refused": []}

    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(line(incident("INC-3")) + "\n\n{broken\n", encoding="utf-8")
    bad = cli(["import", str(mixed), "--json"], url=db_url, data_dir=tmp_path)
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert report["imported"] == 1 and report["skipped_existing"] == 0
    assert [r["line"] for r in report["refused"]] == [3]
    assert report["refused"][0]["error"].startswith("malformed JSON")

    piped = cli(
        ["import", "-", "--json"], url=db_url, data_dir=tmp_path, stdin=line(incident("INC-4")) + "\n"
    )
    assert json.loads(piped.stdout)["imported"] == 1

    human = cli(["import", str(mixed)], url=db_url, data_dir=tmp_path)
    assert human.returncode == 1 and "line 3: malformed JSON" in human.stdout


def test_usage_errors_exit_2_and_unknown_ids_exit_1(sqlite_url: str, tmp_path: Path) -> None:
    missing = cli(["import", str(tmp_path / "nope.jsonl")], url=sqlite_url, data_dir=tmp_path)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert cli(["import"], url=sqlite_url, data_dir=tmp_path).returncode == 2
    assert cli(["mine", "--bogus"], url=sqlite_url, data_dir=tmp_path).returncode == 2
    unknown = cli(["incidents", "show", "INC-404"], url=sqlite_url, data_dir=tmp_path)
    assert unknown.returncode == 1 and "no incident 'INC-404'" in unknown.stderr
    down = cli(["db", "current"], url="postgresql+psycopg://nobody@127.0.0.1:1/x", data_dir=tmp_path)
    assert down.returncode == 1 and "cannot open the store" in down.stderr


def test_db_export_incidents_and_mine(db_url: str, tmp_path: Path) -> None:
    assert cli(["db", "upgrade"], url=db_url, data_dir=tmp_path).returncode == 0
    current = json.loads(cli(["db", "current", "--json"], url=db_url, data_dir=tmp_path).stdout)
    assert current["current"] == current["head"]
    history = write_history(tmp_path / "h.jsonl", list(generate_incidents(12, seed=3, open_fraction=0.0)))
    assert cli(["import", str(history)], url=db_url, data_dir=tmp_path).returncode == 0

    out = tmp_path / "export.jsonl"
    assert cli(["export", "--out", str(out)], url=db_url, data_dir=tmp_path).returncode == 0
    assert len(out.read_text(encoding="utf-8").splitlines()) == 12
    to_stdout = cli(["export"], url=db_url, data_dir=tmp_path)
    assert to_stdout.stdout == out.read_text(encoding="utf-8")

    listed = json.loads(cli(["incidents", "list", "--json"], url=db_url, data_dir=tmp_path).stdout)
    assert len(listed) == 12 and {"id", "severity", "status", "events"} <= set(listed[0])
    shown = json.loads(cli(["incidents", "show", "INC-5", "--json"], url=db_url, data_dir=tmp_path).stdout)
    assert shown["id"] == "INC-5" and shown["events"]
    assert "INC-5" in cli(["incidents", "show", "INC-5"], url=db_url, data_dir=tmp_path).stdout

    mined = cli(["mine", "--json", "--out", str(tmp_path / "ds")], url=db_url, data_dir=tmp_path)
    summary = json.loads(mined.stdout)
    assert list(summary) == ["incidents", "trajectories", "steps", "unmapped_actions", "out"]
    assert summary["incidents"] == 12 and Path(summary["out"]).is_file()
    again = json.loads(
        cli(["mine", "--json", "--out", str(tmp_path / "ds")], url=db_url, data_dir=tmp_path).stdout
    )
    assert again["incidents"] == 0
    full = json.loads(
        cli(["mine", "--json", "--full", "--out", str(tmp_path / "ds")], url=db_url, data_dir=tmp_path).stdout
    )
    assert full["incidents"] == 12


def test_demo_is_idempotent(tmp_path: Path) -> None:
    env = {**os.environ, "REMEDIATE_DATA_DIR": str(tmp_path)}
    env.pop("REMEDIATE_DATABASE_URL", None)
    env.pop("REMEDIATE_CONFIG", None)
    runs = [
        subprocess.run(
            [sys.executable, "-m", "bot.cli.main", "demo", "--no-serve", "--history-incidents", "0"],
            capture_output=True,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    assert "imported 30, skipped 0" in runs[0].stdout
    assert "imported 0, skipped 30" in runs[1].stdout
    assert (tmp_path / "demo" / "remediate.sqlite").is_file()  # the demo's own directory
    assert len(list((tmp_path / "demo" / "trajectories").glob("*.npz"))) == 1


@pytest.fixture(scope="module")
def big_history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    records = list(generate_incidents(6000, seed=77))
    path = tmp_path_factory.mktemp("big") / "big.jsonl"
    write_history(path, records)
    return path, [r["id"] for r in records]


def test_crash_mid_import_loses_nothing_reported(
    db_url: str, tmp_path: Path, big_history: tuple[Path, list[str]]
) -> None:
    path, ids = big_history
    env = {**os.environ, "REMEDIATE_DATABASE_URL": db_url, "REMEDIATE_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", "import", str(path), "--log-commits", "--batch-size", "100"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    reported: list[dict] = []
    for raw in proc.stderr:
        if raw.startswith("{"):
            reported.append(json.loads(raw))
        if len(reported) >= 3:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the import finished before it could be killed"
    last = reported[-1]
    assert last["committed"] == last["line"] >= 300
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        stored = set(conn.execute(sa.text("SELECT id FROM incidents")).scalars())
    engine.dispose()
    assert set(ids[: last["line"]]) <= stored
    assert len(stored) < len(ids)
    # Rerunning finishes the job without duplicates.
    resumed = cli(["import", str(path), "--json"], url=db_url, data_dir=tmp_path)
    report = json.loads(resumed.stdout)
    assert report["imported"] + report["skipped_existing"] == len(ids)
    assert report["skipped_existing"] == len(stored)
