"""A new incident's lookups by index (migration 0019): its id and the open incident of its service.

Both must answer as the scans they replace did (`incidents.next_incident_id_scan`,
`incidents.open_for_service_scan`), on SQLite and on PostgreSQL: ids one above the highest numbered id,
imported ones included; the open incident of a service with the same pick among ties and the same
grouping window.
"""

from __future__ import annotations

import io
import random
import threading
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from incidents_db import db, importer, incidents
from incidents_db.models import Incident
from tests.incidents_db.factories import incident, line

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
# numbered ids count wherever they come from; others (and those past 18 digits) are ignored
ODD_IDS = ("PD-Q1W2E3", "INC-12a", "inc-99999", "INC-", "INC-+5", "INC- 7", "INC-0042", "INC-" + "9" * 19)


def _create(s: Session, service: str = "cart", now: datetime = T0) -> str:
    return incidents.create(
        db_session=s, title=f"{service} slow", services=[service], severity="sev2", source="alert", now=now
    ).id


def _import(engine: sa.Engine, ids: list[str]) -> None:
    text = "".join(line(incident(i)) + "\n" for i in ids)
    report = importer.import_lines(engine=engine, lines=io.BytesIO(text.encode()), batch_size=3)
    assert report.imported == len(ids), report


def test_ids_continue_above_imported_ids_and_ignore_unnumbered_ones(db_url: str) -> None:
    engine = db.open_store(db_url)
    try:
        _import(engine, ["PD-Q1W2E3", "INC-12a", "inc-99999"])
        with Session(engine) as s:
            assert incidents.next_incident_id(db_session=s) == "INC-1"
            assert [_create(s), _create(s)] == ["INC-1", "INC-2"]
            s.commit()
        _import(engine, ["INC-1234", "INC-17", *ODD_IDS[3:]])
        with Session(engine) as s:
            assert incidents.next_incident_id(db_session=s) == "INC-1235"
            assert _create(s) == "INC-1235"
            s.add(Incident(id="INC-2000", title="t", severity="sev3", status="resolved", opened_at=T0))
            s.flush()  # a row written by hand counts too: the database computes its number
            assert _create(s) == "INC-2001"
            s.commit()
            numbers = {i: n for i, n in s.execute(sa.select(Incident.id, Incident.number))}
        assert numbers["INC-0042"] == 42 and numbers["INC-2001"] == 2001
        assert all(
            numbers[i] is None for i in ("PD-Q1W2E3", "INC-12a", "inc-99999", "INC-", "INC-+5", "INC- 7")
        )
        assert numbers["INC-" + "9" * 19] is None  # past a BIGINT: ignored (the old scan counted it)
    finally:
        engine.dispose()


def test_ids_match_the_old_scan(db_url: str) -> None:
    engine = db.open_store(db_url)
    try:
        _import(engine, ["INC-7", "INC-0042", "PD-1", "INC-x9"])
        with Session(engine) as s:
            for _ in range(3):
                assert incidents.next_incident_id(db_session=s) == incidents.next_incident_id_scan(
                    db_session=s
                )
                _create(s)
            s.commit()
            assert incidents.next_incident_id(db_session=s) == "INC-46"
    finally:
        engine.dispose()


def test_concurrent_creations_get_distinct_ids(db_url: str) -> None:
    engine = db.open_store(db_url)
    per_thread, threads = 15, 2
    start = threading.Barrier(threads)
    made: list[list[str]] = [[] for _ in range(threads)]
    failures: list[BaseException] = []

    def work(k: int) -> None:
        try:
            start.wait(timeout=120)
            for _ in range(per_thread):
                with Session(engine) as s:  # one transaction per incident, as a delivery does
                    made[k].append(_create(s, service=f"svc-{k}"))
                    s.commit()
        except BaseException as exc:  # handed to the test thread
            failures.append(exc)

    try:
        workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=600)
        assert not failures, failures
        ids = [i for ids in made for i in ids]
        assert sorted(ids, key=lambda i: int(i[4:])) == [
            f"INC-{n}" for n in range(1, per_thread * threads + 1)
        ]
    finally:
        engine.dispose()


def test_the_migration_numbers_the_incidents_already_stored(db_url: str) -> None:
    assert db.upgrade(db_url, "0018") == "0018"
    engine = db.make_engine(db_url)
    try:
        ids = ["INC-3", "INC-0100", "PD-9", "INC-9z"]
        with engine.begin() as conn:
            conn.execute(
                sa.insert(Incident),
                [
                    {"id": i, "title": "t", "severity": "sev3", "status": "open", "services": ["svc"],
                     "source": "import", "opened_at": T0, "created_at": T0, "updated_at": T0}
                    for i in ids
                ],
            )  # fmt: skip
        assert db.upgrade(db_url) == db.head_revision()
        with Session(engine) as s:
            assert incidents.next_incident_id(db_session=s) == incidents.next_incident_id_scan(db_session=s)
            assert incidents.next_incident_id(db_session=s) == "INC-101"
    finally:
        engine.dispose()


def test_ties_go_to_the_first_created(db_url: str) -> None:
    engine = db.open_store(db_url)
    try:
        with Session(engine) as s:
            ids = [_create(s) for _ in range(5)]  # same service, opened and updated at the same instant
            s.commit()
            for pick in (incidents.open_for_service, incidents.open_for_service_scan):
                found = pick(db_session=s, service="cart")
                assert found is not None and found.id == ids[0]
    finally:
        engine.dispose()


def _seed_store(s: Session, rng: random.Random, services: list[str]) -> None:
    """About 150 incidents (under 200 open, as the old scan read): services, updates, ties and resolutions."""
    updates = [T0 + timedelta(minutes=m) for m in range(0, 240, 20)]  # few instants: many ties on updated_at
    for k in range(150):
        # unique opening times, so a tie on the update goes to the later opened, on both backends
        iid = _create(s, service=rng.choice(services), now=T0 - timedelta(minutes=k * 7 % 1049))
        for _ in range(rng.randint(0, 3)):
            incidents.append(
                db_session=s,
                incident_id=iid,
                type_="alert",
                at=rng.choice(updates),
                service=rng.choice(services),
            )
        if rng.random() < 0.3:
            incidents.append(
                db_session=s, incident_id=iid, type_="note", at=rng.choice(updates), text="context"
            )
        if rng.random() < 0.35:
            incidents.resolve(db_session=s, incident_id=iid, actor="U1", now=rng.choice(updates))
    s.commit()


def test_the_open_incident_of_a_service_is_the_one_the_scan_picked(db_url: str) -> None:
    engine = db.open_store(db_url)
    rng = random.Random(18)
    services = [*(f"svc-{i}" for i in range(11)), "Zahlungsdienst-ü"]  # JSON escapes it: still found in SQL
    try:
        with Session(engine) as s:
            _seed_store(s, rng, services)
            checked = 0
            for service in [*services, "never-seen"]:
                for since in (None, *(T0 + timedelta(minutes=m) for m in (-30, 60, 150, 230, 300))):
                    got = incidents.open_for_service(db_session=s, service=service, since=since)
                    old = incidents.open_for_service_scan(db_session=s, service=service, since=since)
                    assert (got and got.id) == (old and old.id), (service, since)
                    checked += got is not None
            assert checked > 20  # the window and the store left both answers often
    finally:
        engine.dispose()
