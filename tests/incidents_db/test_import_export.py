"""Import, export and round trips on SQLite and PostgreSQL: every refusal path, idempotence, atomicity."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from incidents_db import db, exporter, import_rows, importer, service
from incidents_db.errors import IncidentNotFoundError
from incidents_db.models import Incident, IncidentEvent
from incidents_db.synthetic import generate_incidents
from tests.incidents_db.factories import incident, line, with_event


@pytest.fixture
def engine(migrated_db_url: str) -> Iterator[sa.Engine]:
    store = db.open_store(migrated_db_url)
    yield store
    store.dispose()


def run_import(engine: sa.Engine, text: str, batch_size: int = 500) -> import_rows.ImportReport:
    return importer.import_lines(engine=engine, lines=io.BytesIO(text.encode("utf-8")), batch_size=batch_size)


def ids_in_store(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(Incident.id)).scalars())


def events_of(engine: sa.Engine, incident_id: str) -> int:
    with engine.connect() as conn:
        query = (
            sa.select(sa.func.count())
            .select_from(IncidentEvent)
            .where(IncidentEvent.incident_id == incident_id)
        )
        return int(conn.execute(query).scalar_one())


def test_every_refusal_path_and_the_rest_still_imports(engine: sa.Engine) -> None:
    base = incident("INC-OK-1")
    lines = [
        line(base),  # 1 ok
        "",  # 2 blank: skipped, not refused
        "{not json",  # 3
        line(incident("INC-2", format="remediate.incident/v0")),  # 4
        line(incident("INC-3", opened_at="2026-03-02T10:14:00")),  # 5 zone-less
        line(incident("INC-4", resolved_at="2026-03-01T00:00:00Z")),  # 6 resolved before opened
        line(with_event(incident("INC-5"), 6, at="2026-03-02T09:00:00Z")),  # 7 out of order
        line(with_event(incident("INC-6"), 0, type="reboot")),  # 8 unknown event type
        line(incident("INC-7", severity="SEV1")),  # 9 bad enum
        line(incident("INC-8", title="")),  # 10 empty required string
        "   \t",  # 11 blank
        line(incident("INC-OK-2", title="Paiement refusé – 支払い ✅", vendor={"ignored": True})),  # 12 ok
        line(incident("INC-OK-1", title="a different incident, same id")),  # 13 duplicate, different
        line(base),  # 14 duplicate, identical: nothing new
    ]
    report = run_import(engine, "\n".join(lines) + "\n")
    assert report.imported == 2
    assert report.skipped_existing == 1
    refused = {r.line: r.error for r in report.refused}
    assert sorted(refused) == [3, 4, 5, 6, 7, 8, 9, 10, 13]
    assert "malformed JSON" in refused[3]
    assert "format: expected exactly" in refused[4]
    assert "no time zone" in refused[5]
    assert "before opened_at" in refused[6]
    assert "time order" in refused[7]
    assert "unknown event type 'reboot'" in refused[8]
    assert "severity" in refused[9]
    assert "title: must not be empty" in refused[10]
    assert "duplicate id 'INC-OK-1'" in refused[13] and "line 1" in refused[13]
    assert ids_in_store(engine) == {"INC-OK-1", "INC-OK-2"}
    with db.make_sessionmaker(engine)() as session:
        stored = service.get_record(db_session=session, incident_id="INC-OK-2")
    assert stored["title"] == "Paiement refusé – 支払い ✅"
    assert "vendor" not in stored
    assert len(stored["events"]) == len(base["events"])
    assert report.as_json()["refused"][0] == {"line": 3, "error": refused[3]}


def test_refused_incident_leaves_no_rows(engine: sa.Engine) -> None:
    bad = with_event(incident("INC-BAD"), 8, at="2026-03-02T10:00:00Z")
    report = run_import(engine, line(bad) + "\n")
    assert report.imported == 0 and len(report.refused) == 1
    assert ids_in_store(engine) == set()
    assert events_of(engine, "INC-BAD") == 0


def test_import_is_idempotent_by_id(engine: sa.Engine) -> None:
    text = "".join(line(r) + "\n" for r in generate_incidents(40, seed=5))
    first = run_import(engine, text, batch_size=7)
    assert (first.imported, first.skipped_existing, first.refused) == (40, 0, [])
    second = run_import(engine, text, batch_size=7)
    assert (second.imported, second.skipped_existing, second.refused) == (0, 40, [])
    more = "".join(line(r) + "\n" for r in generate_incidents(5, seed=6, first_number=100))
    third = run_import(engine, text + more)
    assert (third.imported, third.skipped_existing) == (5, 40)
    assert len(ids_in_store(engine)) == 45


def test_export_then_import_round_trips(engine: sa.Engine, tmp_path: Path) -> None:
    records = list(generate_incidents(25, seed=11, open_fraction=0.2))
    records.append(incident("INC-UNI", title="Ünïcode – ✅", root_cause=None, topology=None))
    records.append(incident("INC-OFFSET", opened_at="2026-03-02T12:14:00+02:00", resolved_at=None, events=[]))
    run_import(engine, "".join(line(r) + "\n" for r in records))
    first = io.StringIO()
    assert exporter.export_lines(engine=engine, out=first) == len(records)

    other = db.open_store(f"sqlite:///{tmp_path / 'second.sqlite'}")
    report = run_import(other, first.getvalue())
    assert (report.imported, report.refused) == (len(records), [])
    second = io.StringIO()
    exporter.export_lines(engine=other, out=second)
    other.dispose()
    assert second.getvalue() == first.getvalue()

    exported = {r["id"]: r for r in map(json.loads, first.getvalue().splitlines())}
    original = records[0]
    assert exported[original["id"]]["events"] == original["events"]
    assert exported[original["id"]]["root_cause"] == original["root_cause"]
    assert exported["INC-OFFSET"]["opened_at"] == "2026-03-02T10:14:00Z"
    assert "resolved_at" not in exported["INC-OFFSET"]
    assert "root_cause" not in exported["INC-UNI"]


def test_commit_reports_only_what_is_stored(engine: sa.Engine) -> None:
    records = list(generate_incidents(30, seed=2))
    text = "".join(line(r) + "\n" for r in records)
    seen: list[import_rows.Progress] = []

    def check(progress: import_rows.Progress) -> None:
        seen.append(progress)
        stored = ids_in_store(engine)
        assert all(r["id"] in stored for r in records[: progress.last_line])

    importer.import_lines(engine=engine, lines=io.BytesIO(text.encode()), batch_size=10, on_commit=check)
    assert [p.imported for p in seen] == [10, 20, 30, 30]


def test_incident_listing_and_show(engine: sa.Engine) -> None:
    run_import(engine, line(incident("INC-A")) + "\n" + line(incident("INC-B", resolved_at=None)) + "\n")
    with db.make_sessionmaker(engine)() as session:
        rows = service.list_incidents(db_session=session)
        assert {r.id for r in rows} == {"INC-A", "INC-B"}
        assert all(r.events == 9 for r in rows)
        assert [r.id for r in service.list_incidents(db_session=session, status="open")] == ["INC-B"]
        assert service.count_incidents(db_session=session, status="resolved") == 1
        with pytest.raises(IncidentNotFoundError, match="INC-Z"):
            service.get_record(db_session=session, incident_id="INC-Z")


def test_add_incident_single(engine: sa.Engine) -> None:
    from incidents_db.schema import parse_line

    record = parse_line(line(incident("INC-ONE")))
    factory = db.make_sessionmaker(engine)
    with db.session_scope(factory) as session:
        assert service.add_incident(db_session=session, record=record, source="slack") is True
    with db.session_scope(factory) as session:
        assert service.add_incident(db_session=session, record=record) is False
        stored = service.get_record(db_session=session, incident_id="INC-ONE")
    assert stored["events"] == incident("INC-ONE")["events"]


def test_worker_processes_import_exactly_what_one_process_does(engine: sa.Engine, tmp_path: Path) -> None:
    records = list(generate_incidents(60, seed=5, open_fraction=0.1))
    lines = [line(r) for r in records]
    lines.insert(13, "{not json")
    lines.insert(27, "")
    lines.insert(31, line(records[3]))  # the same incident again: skipped
    lines.insert(40, line({**records[4], "title": "another incident, same id"}))  # refused
    lines.insert(52, line(with_event(records[9], 0, type="nope")))  # refused (id of a later-valid one)
    text = "".join(f"{x}\n" for x in lines).encode()

    commits: list[import_rows.Progress] = []
    parallel = importer.import_lines(
        engine=engine,
        lines=io.BytesIO(text),
        batch_size=7,
        on_commit=commits.append,
        workers=1,
        parallel_after=10,
    )
    alone = db.open_store(f"sqlite:///{tmp_path / 'alone.sqlite'}")
    single = importer.import_lines(engine=alone, lines=io.BytesIO(text), batch_size=7, workers=0)
    assert parallel.as_json() == single.as_json()
    assert (parallel.imported, parallel.skipped_existing, [r.line for r in parallel.refused]) == (
        60,
        1,
        [14, 41, 53],
    )
    assert parallel.lines == single.lines == len(lines)
    assert [c.last_line for c in commits] == sorted(c.last_line for c in commits)
    assert commits[-1].last_line == len(lines) and commits[-1].imported == 60
    ours, theirs = io.StringIO(), io.StringIO()
    exporter.export_lines(engine=engine, out=ours)
    exporter.export_lines(engine=alone, out=theirs)
    alone.dispose()
    assert ours.getvalue() == theirs.getvalue()


def test_bulk_load_leaves_the_foreign_key_enforced(engine: sa.Engine) -> None:
    # On PostgreSQL a batch may skip the foreign key's row checks (SET LOCAL, its own transaction only):
    # afterwards every pooled connection still refuses an event of an incident that does not exist.
    report = run_import(
        engine, "\n".join(line(incident(f"INC-FK-{n}")) for n in range(5)) + "\n", batch_size=2
    )
    assert report.imported == 5 and events_of(engine, "INC-FK-4") > 0
    connections = [engine.connect() for _ in range(3)]
    try:
        for conn in connections:
            with pytest.raises(sa.exc.IntegrityError), conn.begin():
                if engine.dialect.name == "postgresql":
                    assert conn.execute(sa.text("SHOW session_replication_role")).scalar_one() == "origin"
                conn.execute(
                    sa.insert(IncidentEvent).values(
                        incident_id="INC-NOT-THERE", seq=0, at=sa.func.now(), type="note", payload={}
                    )
                )
    finally:
        for conn in connections:
            conn.close()


def test_text_with_copy_escapes_round_trips(engine: sa.Engine) -> None:
    # On PostgreSQL the events go to COPY as text-format lines built by the parser: a backslash, tab,
    # newline or carriage return in any text field must come back exactly as it went in.
    tricky = "a\\b\tc\nd\re \\N \\t"
    record = incident(r"INC-\N-1", title=tricky, services=[tricky])
    for event in record["events"]:
        if "service" in event:
            event["service"] = tricky
    record["events"].append({"at": "2026-03-02T10:41:00Z", "type": "note", "actor": tricky, "text": tricky})
    report = run_import(engine, line(record) + "\n")
    assert report.imported == 1 and not report.refused
    factory = db.make_sessionmaker(engine)
    with factory() as session:
        stored = service.get_record(db_session=session, incident_id=r"INC-\N-1")
    assert stored["title"] == tricky and stored["services"] == [tricky]
    assert [e.get("service") for e in stored["events"]] == [e.get("service") for e in record["events"]]
    assert stored["events"][-1]["text"] == tricky and stored["events"][-1]["actor"] == tricky


@pytest.mark.postgres
def test_a_role_that_may_not_skip_the_key_checks_imports_the_same(postgres_url: str) -> None:
    # A role without the right to set session_replication_role keeps the foreign key's row checks.
    db.open_store(postgres_url).dispose()
    role = f"remediate_t_{uuid.uuid4().hex[:12]}"
    owner = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with owner.connect() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(sa.text(f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{role}"'))
        conn.execute(sa.text(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "{role}"'))
    engine = db.make_engine(
        sa.engine.make_url(postgres_url)
        .set(username=role, password=None)
        .render_as_string(hide_password=False)
    )
    try:
        with engine.connect() as conn:
            allowed = conn.execute(
                sa.text("SELECT has_parameter_privilege('session_replication_role', 'SET')")
            )
            assert allowed.scalar_one() is False
        report = run_import(
            engine, "\n".join(line(incident(f"INC-R-{n}")) for n in range(3)) + "\n", batch_size=2
        )
        assert report.imported == 3 and not report.refused
        assert ids_in_store(engine) == {"INC-R-0", "INC-R-1", "INC-R-2"} and events_of(engine, "INC-R-2") > 0
    finally:
        engine.dispose()
        with owner.connect() as conn:
            conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
            conn.execute(sa.text(f'DROP ROLE "{role}"'))
        owner.dispose()
