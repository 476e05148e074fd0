"""Fuzzing import lines: any line -> a record or a one-line refusal naming the field; good lines still import.

docs/incident-format.md promises: each incident is all or nothing, a bad line is refused with its line
number and the rule, every other line still imports, and the store's copy is never overwritten.
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from incidents_db import db, import_rows, import_writer, importer
from incidents_db.models import Incident, IncidentEvent
from incidents_db.schema import IncidentRecord, format_error, parse_line
from tests.fuzz import JSON_VALUES, examples, mutated
from tests.incidents_db.factories import incident, line

FUZZ = settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
_ids = itertools.count(1)
EVENTS = len(incident()["events"])


def raw_lines() -> st.SearchStrategy[bytes]:
    """One line: a mutated valid record, any JSON value, or raw bytes (no newline inside)."""
    as_json = st.one_of(mutated(incident("INC-FUZZ"), max_changes=3), JSON_VALUES).map(
        lambda d: json.dumps(d, allow_nan=True, ensure_ascii=False).encode("utf-8")
    )
    return st.one_of(as_json, st.binary(max_size=80).map(lambda b: b.replace(b"\n", b" ")))


def assert_names_the_problem(error: str) -> None:
    """A refusal is one line, `field: what was wrong` (or says the line is not JSON / not an object)."""
    assert error and "\n" not in error, error
    assert ": " in error or error.startswith("expected a JSON object"), error


@FUZZ
@given(raw_lines())
def test_any_line_is_a_record_or_one_line_naming_the_field(raw: bytes) -> None:
    try:
        record = parse_line(raw)
    except ValidationError as exc:
        assert_names_the_problem(format_error(exc))
    else:
        assert isinstance(record, IncidentRecord)


@pytest.fixture
def engine(migrated_db_url: str) -> Iterator[sa.Engine]:
    store = db.open_store(migrated_db_url)
    yield store
    store.dispose()


def stored(engine: sa.Engine) -> dict[str, int]:
    """Every incident id in the store with its number of events."""
    with engine.connect() as conn:
        counts = dict(
            conn.execute(
                sa.select(IncidentEvent.incident_id, sa.func.count()).group_by(IncidentEvent.incident_id)
            ).all()
        )
        return {i: int(counts.get(i, 0)) for i in conn.execute(sa.select(Incident.id)).scalars()}


@FUZZ
@given(st.lists(st.one_of(st.just(b"GOOD"), raw_lines()), min_size=1, max_size=6))
def test_a_file_with_bad_lines_imports_the_good_ones_and_loses_nothing(
    engine: sa.Engine, plan: list[bytes]
) -> None:
    before = stored(engine)
    good: dict[int, str] = {}
    lines: list[bytes] = []
    for number, raw in enumerate(plan, start=1):
        if raw == b"GOOD":
            good[number] = f"INC-GOOD-{next(_ids)}"
            raw = line(incident(good[number])).encode("utf-8")
        lines.append(raw + b"\n")
    report = importer.import_lines(engine=engine, lines=io.BytesIO(b"".join(lines)), workers=0)
    after = stored(engine)
    for refusal in report.refused:
        assert_names_the_problem(refusal.error)
        assert refusal.line not in good, (refusal, lines[refusal.line - 1])
    assert all(after.get(i) == EVENTS for i in good.values()), report
    assert all(after.get(i) == n for i, n in before.items()), "an incident already stored changed"
    counted = report.imported + report.skipped_existing + len(report.refused)
    assert counted == sum(1 for raw in lines if raw.strip()), report
    assert len(after) == len(before) + report.imported


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": "a\x00b"}, "title"),  # PostgreSQL: a DataError escaped the import
        ({"root_cause": {"service": "db\x00", "fault": "x"}}, "root_cause.service"),
    ],
)
def test_nul_in_a_stored_text_is_refused_naming_the_field(
    engine: sa.Engine, change: dict[str, Any], field: str
) -> None:
    body = line(incident("INC-NUL", **change)) + "\n" + line(incident("INC-AFTER")) + "\n"
    report = importer.import_lines(engine=engine, lines=io.BytesIO(body.encode()), workers=0)
    assert [(r.line, r.error.split(":")[0]) for r in report.refused] == [(1, field)]
    assert set(stored(engine)) == {"INC-AFTER"}


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('"value": 0.12', '"value": NaN', "events[2].value"),
        ('"cpu": 0.41', '"cpu": 1e400', "events[3].values.cpu"),
        ('"params": {}', '"params": {"n": -Infinity}', "events[4].params"),
    ],
)
def test_non_finite_numbers_are_refused_naming_the_field(
    engine: sa.Engine, old: str, new: str, field: str
) -> None:
    # PostgreSQL's json type refused NaN/Infinity at COPY and the whole import failed; SQLite stored it.
    bad = line(incident("INC-NAN")).replace(old, new, 1)
    body = bad + "\n" + line(incident("INC-AFTER")) + "\n"
    report = importer.import_lines(engine=engine, lines=io.BytesIO(body.encode()), workers=0)
    assert [(r.line, r.error.split(":")[0]) for r in report.refused] == [(1, field)]
    assert set(stored(engine)) == {"INC-AFTER"}


def test_a_database_refusal_through_the_driver_refuses_one_incident(engine: sa.Engine) -> None:
    # The writer inserts through the driver's cursor, so the database's refusal arrives as the driver's
    # own error (sqlite3 / psycopg), which escaped the whole import. A row the database refuses (here:
    # an incident whose events collide with stored ones) must be refused alone, its neighbours imported.
    rows = import_rows.Rows(engine.dialect.name == "postgresql", "import")
    first, second = rows.parse(
        [(1, 0, line(incident("INC-1")).encode()), (2, 0, line(incident("INC-2")).encode())]
    )
    assert first.prepared is not None and second.prepared is not None
    clash = import_rows.Prepared(3, "INC-3", ("INC-3", *first.prepared.incident[1:]), first.prepared.events)
    report = import_rows.ImportReport()
    import_writer.Writer(engine).write([first.prepared, clash, second.prepared], report)
    assert report.imported == 2
    assert [r.line for r in report.refused] == [3] and "the store refused incident 'INC-3'" in report.refused[
        0
    ].error
    assert stored(engine) == {"INC-1": EVENTS, "INC-2": EVENTS}
