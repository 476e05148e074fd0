"""The newest metric snapshot per service, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from incidents_db.db import open_store
from incidents_db.models import Incident, IncidentEvent
from incidents_db.snapshots import keep_latest, latest, recent_metrics

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_newest_wins_and_queries_filter(db_url: str) -> None:
    engine = open_store(db_url)
    with Session(engine) as s:
        assert keep_latest(db_session=s, service="cart", at=T0, values={"cpu": 0.5}, now=T0)
        assert keep_latest(
            db_session=s, service="db", at=T0 - timedelta(minutes=20), values={"cpu": 0.1}, now=T0
        )
        s.commit()
        assert not keep_latest(
            db_session=s, service="cart", at=T0 - timedelta(seconds=1), values={"cpu": 9}, now=T0
        )
        assert keep_latest(
            db_session=s, service="cart", at=T0 + timedelta(seconds=1), values={"cpu": 0.7}, now=T0
        )
        s.commit()
    with Session(engine) as s:
        recent = latest(db_session=s, since=T0 - timedelta(minutes=5))
        assert [(r.service, r.values, r.at) for r in recent] == [
            ("cart", {"cpu": 0.7}, T0 + timedelta(seconds=1))
        ]
        assert [r.service for r in latest(db_session=s, since=T0 - timedelta(hours=1), services=["db"])] == [
            "db"
        ]


def test_recent_metrics_per_incident_and_service(db_url: str) -> None:
    engine = open_store(db_url)
    with Session(engine) as s:
        s.add(Incident(id="INC-1", title="t", severity="sev3", status="open", services=["cart"], source="slack",
                       opened_at=T0, created_at=T0, updated_at=T0))  # fmt: skip
        s.flush()
        for seq, (kind, service, at) in enumerate(
            [("metrics", "cart", T0), ("alert", "cart", T0 + timedelta(minutes=9)),
             ("metrics", "cart", T0 + timedelta(minutes=1)), ("metrics", "db", T0 + timedelta(minutes=2))]
        ):  # fmt: skip
            s.add(IncidentEvent(incident_id="INC-1", seq=seq, at=at, type=kind, service=service, payload={}))
        s.commit()
        found = recent_metrics(
            db_session=s, incident_ids=["INC-1", "INC-2"], since=T0 + timedelta(seconds=30)
        )
        assert found == {
            ("INC-1", "cart"): (T0 + timedelta(minutes=1), {}),
            ("INC-1", "db"): (T0 + timedelta(minutes=2), {}),
        }
        assert recent_metrics(db_session=s, incident_ids=["INC-1"], since=T0 + timedelta(minutes=3)) == {}
        assert recent_metrics(db_session=s, incident_ids=[], since=T0) == {}


def test_concurrent_first_snapshots_of_a_service_do_not_collide(db_url: str) -> None:
    import threading

    engine = open_store(db_url)
    barrier, errors = threading.Barrier(8), []

    def store(i: int) -> None:
        try:
            with Session(engine) as s:
                barrier.wait()
                keep_latest(
                    db_session=s, service="new", at=T0 + timedelta(seconds=i), values={"cpu": i}, now=T0
                )
                s.commit()
        except Exception as exc:  # collected: the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=store, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Session(engine) as s:
        [row] = latest(db_session=s, since=T0)
        assert (row.service, row.values) == ("new", {"cpu": 7})


def test_an_object_read_before_the_upsert_is_refreshed(db_url: str) -> None:
    from incidents_db.snapshots import ServiceSnapshot

    engine = open_store(db_url)
    with Session(engine) as s:
        keep_latest(db_session=s, service="cart", at=T0, values={"cpu": 0.5}, now=T0)
        s.commit()
        seen = s.get(ServiceSnapshot, "cart")
        assert seen is not None and seen.values == {"cpu": 0.5}
        keep_latest(db_session=s, service="cart", at=T0 + timedelta(seconds=5), values={"cpu": 0.9}, now=T0)
        assert seen.values == {"cpu": 0.9}
