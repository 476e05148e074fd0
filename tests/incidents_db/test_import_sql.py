"""`import --sql` and `import --pagerduty`: a team's own tables on real PostgreSQL, MariaDB and SQLite, a PagerDuty export."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from incidents_db import exporter
from incidents_db.db import open_store
from incidents_db.errors import MappingError
from incidents_db.import_mapping import load_mapping
from incidents_db.import_pagerduty import read_pagerduty
from incidents_db.import_sql import import_records, read_sql, source_url
from tests.incidents_db.sql_sources import create_source, mariadb_url  # noqa: F401  (fixture)

SAMPLE = Path(__file__).parents[2] / "incidents_db" / "samples" / "sql-mapping.yaml"
PD_EXPORT = Path(__file__).parent / "pagerduty_export.json"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = open_store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    yield engine
    engine.dispose()


def exported(engine: sa.Engine) -> dict[str, dict]:
    out = io.StringIO()
    exporter.export_lines(engine=engine, out=out)
    return {r["id"]: r for r in map(json.loads, out.getvalue().splitlines())}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres),
                        pytest.param("mariadb", marks=pytest.mark.mariadb)])  # fmt: skip
def source(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A source database holding the team's tables, on each server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'source.sqlite'}"
    else:
        url = str(request.getfixturevalue("postgres_url" if request.param == "postgresql" else "mariadb_url"))
    create_source(url)
    return url


def test_tables_unlike_ours_import_with_validation_and_idempotency(source: str, store: sa.Engine) -> None:
    mapping = load_mapping(SAMPLE)
    report = import_records(engine=store, records=read_sql(source, mapping), source="sql")
    assert (report.imported, report.skipped_existing) == (2, 0)
    [refused] = report.refused  # the P9 ticket breaks the severity rule; the others still import
    assert refused.line == 3 and "'TKT-3'" in refused.error and "severity" in refused.error
    got = exported(store)
    one = got["TKT-1"]
    assert one["opened_at"] == "2026-03-01T09:00:00Z"  # 10:00 in Berlin
    assert one["resolved_at"] == "2026-03-01T09:30:00Z" and one["severity"] == "sev2"
    assert [e["type"] for e in one["events"]] == ["alert", "action", "note", "resolved"]
    alert, action, note = one["events"][:3]
    assert (alert["name"], alert["service"], alert["status"]) == (
        "HighErrorRate",
        "checkoutservice",
        "firing",
    )
    assert (action["action"], action["target"], action["actor"], action["outcome"]) == (
        "restart_service", "checkoutservice", "alice", "succeeded")  # fmt: skip
    assert note["text"] == "error rate back to normal"
    assert "resolved_at" not in got["TKT-2"] and got["TKT-2"]["services"] == ["cartservice"]
    again = import_records(engine=store, records=read_sql(source, mapping), source="sql")
    assert (again.imported, again.skipped_existing, len(again.refused)) == (0, 2, 1)


def write_mapping(tmp_path: Path, old: str, new: str) -> Path:
    path = tmp_path / "mapping.yaml"
    text = SAMPLE.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


@pytest.mark.parametrize(("old", "new", "named"), [
    ("    title: summary", "    title: sumary", "unknown column(s) 'sumary': the incidents query returns"),
    ("    actor: who", "    actor: operator", "events.columns: unknown column(s) 'operator'"),
])  # fmt: skip
def test_a_mapping_with_an_unknown_column_is_refused_naming_it(
    source: str, store: sa.Engine, tmp_path: Path, old: str, new: str, named: str
) -> None:
    mapping = load_mapping(write_mapping(tmp_path, old, new))
    with pytest.raises(MappingError, match=named.replace("(", r"\(").replace(")", r"\)")):
        import_records(engine=store, records=read_sql(source, mapping), source="sql")
    assert exported(store) == {}  # refused before anything was written


@pytest.mark.parametrize(("old", "new", "named"), [
    ("    title: summary", "    headline: summary", "incidents.columns: unknown field(s) headline"),
    ("format: remediate.sql-mapping/v1", "format: v2", "format"),
    ("    SELECT ticket_no", "    DELETE FROM tickets; SELECT ticket_no", "read-only SELECT"),
    ("    kind: epoch_s", "    kind: epoch_s\n    timezone: Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
    ("    id: ticket_no\n", "", "id must be mapped"),
])  # fmt: skip
def test_a_bad_mapping_file_is_refused_naming_the_key(tmp_path: Path, old: str, new: str, named: str) -> None:
    with pytest.raises(MappingError, match=named.replace("(", r"\(").replace(")", r"\)")) as caught:
        load_mapping(write_mapping(tmp_path, old, new))
    assert "mapping.yaml" in str(caught.value)


def test_only_sql_databases_we_ship_a_driver_for() -> None:
    assert source_url("mysql://u@h/db") == "mysql+pymysql://u@h/db"
    assert source_url("mariadb://u@h/db") == "mysql+pymysql://u@h/db"
    assert source_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(MappingError, match="expected a postgresql://"):
        source_url("oracle://scott:tiger@h/db")


def test_an_unreachable_source_is_one_line_without_its_password(store: sa.Engine) -> None:
    mapping = load_mapping(SAMPLE)
    with pytest.raises(MappingError) as caught:
        list(read_sql("postgresql://me:hunter2@127.0.0.1:1/nowhere", mapping))
    assert "hunter2" not in str(caught.value) and "127.0.0.1" in str(caught.value)


def test_a_pagerduty_export_imports_with_its_log_entries(store: sa.Engine) -> None:
    report = import_records(engine=store, records=read_pagerduty(PD_EXPORT), source="pagerduty")
    assert (report.imported, report.skipped_existing) == (2, 0) and report.refused == []
    got = exported(store)
    first = got["PD-Q1ABC"]
    assert first["severity"] == "sev1" and first["services"] == ["checkout-api"]
    assert first["resolved_at"] == "2026-02-10T08:40:00Z"
    assert [e["type"] for e in first["events"]] == ["alert", "note", "note", "resolved"]
    assert first["events"][1]["actor"] == "Alice Ops" and "Acknowledged" in first["events"][1]["text"]
    second = got["PD-Q2DEF"]
    assert second["severity"] == "sev3" and "resolved_at" not in second  # low urgency, still open
    assert [e["type"] for e in second["events"]] == ["alert"]  # its log entry came in the top-level list
    again = import_records(engine=store, records=read_pagerduty(PD_EXPORT), source="pagerduty")
    assert (again.imported, again.skipped_existing) == (0, 2)


def test_a_broken_pagerduty_export_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "pd.json"
    bad.write_text('{"incidents": 3}', encoding="utf-8")
    with pytest.raises(MappingError, match="expected a list of incidents"):
        list(read_pagerduty(bad))
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(MappingError, match="PagerDuty export"):
        list(read_pagerduty(bad))
