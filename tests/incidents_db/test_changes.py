"""Kept deploys and config changes, on both backends: stored once, and on a new incident's timeline in window."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from incidents_db import incidents
from incidents_db.changes import keep, kept_for, recent
from incidents_db.db import open_store
from incidents_db.schema import IncidentRecord

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
WINDOW = timedelta(hours=1)


def kept(
    s: Session, key: str, service: str, at: datetime, *, kind: str = "deploy", topology: str | None = None
) -> bool:
    return keep(
        db_session=s, key=key, service=service, kind=kind, at=at, now=at, keep_until=at + WINDOW,
        topology=topology, source="ci", details={"version": f"v-{key}"},
    )  # fmt: skip


def test_a_change_is_stored_once(db_url: str) -> None:
    engine = open_store(db_url)
    with Session(engine) as s:
        assert kept(s, "a", "cart", T0)
        assert not kept(s, "a", "cart", T0)  # the same delivery again
        s.commit()
        assert not kept(s, "a", "cart", T0 + timedelta(minutes=1))
        s.commit()
        assert [(c.key, c.service, c.details) for c in recent(db_session=s)] == [
            ("a", "cart", {"version": "v-a"})
        ]
        with pytest.raises(ValueError, match="kind must be one of deploy, config_change"):
            kept(s, "b", "cart", T0, kind="rollout")


def test_kept_for_takes_the_window_the_services_and_the_graph(db_url: str) -> None:
    engine = open_store(db_url)
    with Session(engine) as s:
        kept(s, "old", "cart", T0 - timedelta(hours=2))  # its window ended
        kept(s, "cart", "cart", T0 - timedelta(minutes=4))
        kept(s, "callee", "redis", T0 - timedelta(minutes=10), kind="config_change", topology="shop")
        kept(s, "other", "billing", T0 - timedelta(minutes=1))  # neither named nor on the graph
        kept(s, "later", "cart", T0 + timedelta(minutes=1))  # after now: not yet
        s.commit()
        found = kept_for(db_session=s, services=["cart"], topology="shop", now=T0)
        assert [c.key for c in found] == ["callee", "cart"]  # oldest first
        assert [c.key for c in kept_for(db_session=s, services=["cart"], topology=None, now=T0)] == ["cart"]
        assert kept_for(db_session=s, services=[], topology="elsewhere", now=T0) == []


def test_a_new_incident_starts_with_its_kept_changes_in_time_order(db_url: str) -> None:
    engine = open_store(db_url)
    with Session(engine) as s:
        kept(s, "cart", "cart", T0 - timedelta(minutes=4))
        kept(s, "callee", "redis", T0 - timedelta(minutes=10), kind="config_change", topology="shop")
        kept(s, "old", "cart", T0 - timedelta(hours=2))
        s.commit()
        incident = incidents.create(
            db_session=s,
            title="errors",
            services=["cart"],
            severity="sev2",
            source="alert",
            now=T0,
            topology="shop",
        )
        incidents.append(
            db_session=s, incident_id=incident.id, type_="alert", at=T0, service="cart", status="firing",
            name="HighErrorRate",
        )  # fmt: skip
        s.commit()
        record = incidents.record(db_session=s, incident_id=incident.id)
    assert [(e["type"], e["service"], e["at"]) for e in record["events"]] == [
        ("config_change", "redis", "2026-03-02T09:50:00Z"),
        ("deploy", "cart", "2026-03-02T09:56:00Z"),
        ("alert", "cart", "2026-03-02T10:00:00Z"),
    ]
    assert record["events"][1]["version"] == "v-cart" and record["events"][1]["source"] == "ci"
    assert record["services"] == ["cart"]  # a callee's change is context, not an affected service
    assert record["opened_at"] == "2026-03-02T10:00:00Z"
    IncidentRecord.model_validate_json(json.dumps(record))  # exported, it is valid history to import and mine
