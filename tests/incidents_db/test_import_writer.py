"""The import writer's group commits: batches written together report and refuse as one by one."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from incidents_db import db
from incidents_db.import_rows import ImportReport, Prepared, Progress, Rows
from incidents_db.import_writer import BackgroundWriter, Writer
from incidents_db.models import Incident
from tests.incidents_db.factories import incident, line


@pytest.fixture
def engine(migrated_db_url: str) -> Iterator[sa.Engine]:
    store = db.open_store(migrated_db_url)
    yield store
    store.dispose()


def prepared(engine: sa.Engine, *ids: str) -> list[Prepared]:
    rows = Rows(engine.dialect.name == "postgresql", "import")
    items = rows.parse([(n, 0, line(incident(i)).encode()) for n, i in enumerate(ids, start=1)])
    return [item.prepared for item in items if item.prepared is not None]


def broken(item: Prepared) -> Prepared:
    """The same incident with every event twice: the store's unique (incident_id, seq) refuses it."""
    return dataclasses.replace(item, events=item.events + item.events)  # type: ignore[operator]


def stored_ids(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(Incident.id)).scalars())


def test_a_refused_group_is_written_batch_by_batch(engine: sa.Engine) -> None:
    first = prepared(engine, "INC-G-1")
    second = prepared(engine, "INC-G-2", "INC-G-3")
    second[0] = broken(second[0])
    reports = Writer(engine).write_group([first, second])
    assert [r.imported for r in reports] == [1, 1]
    assert not reports[0].refused and [r.line for r in reports[1].refused] == [1]
    assert "INC-G-2" in reports[1].refused[0].error
    assert stored_ids(engine) == {"INC-G-1", "INC-G-3"}


def test_batches_waiting_are_committed_together_and_reported_one_by_one(engine: sa.Engine) -> None:
    writer = Writer(engine)
    groups: list[int] = []
    entered, release = threading.Event(), threading.Event()
    original = writer.write_group

    def write_group(batches: list[list[Prepared]]) -> list[ImportReport]:
        groups.append(len(batches))
        entered.set()
        assert release.wait(timeout=60)  # hold the first batch until the others wait in the queue
        return original(batches)

    writer.write_group = write_group  # type: ignore[method-assign]
    reports: list[Progress] = []
    background = BackgroundWriter(writer, ImportReport(), reports.append, depth=4, group=4)
    background.submit(prepared(engine, "INC-W-0"), last_line=1, bytes_read=10)
    assert entered.wait(timeout=60)
    for n in range(1, 4):
        background.submit(prepared(engine, f"INC-W-{n}"), last_line=n + 1, bytes_read=10 * (n + 1))
    release.set()
    stored = background.finish()
    assert groups == [1, 3]
    assert stored.imported == 4 and not stored.refused
    assert [(p.imported, p.last_line) for p in reports] == [(1, 1), (2, 2), (3, 3), (4, 4)]
    assert stored_ids(engine) == {f"INC-W-{n}" for n in range(4)}
