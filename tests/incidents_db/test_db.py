"""The schema: migrations reach head, match the models, and timestamps come back as aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from incidents_db import db
from incidents_db.errors import DatabaseUnavailableError, NaiveTimestampError
from incidents_db.models import Base, Incident


def test_upgrade_reaches_head_and_is_idempotent(db_url: str) -> None:
    assert db.current(db_url) is None
    assert db.upgrade(db_url) == db.head_revision()
    assert db.upgrade(db_url) == db.head_revision()
    assert db.current(db_url) == db.head_revision()


def test_migrations_match_models(db_url: str) -> None:
    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diff == []


def test_timestamps_round_trip_as_aware_utc(db_url: str) -> None:
    engine = db.open_store(db_url)
    factory = db.make_sessionmaker(engine)
    opened = datetime(2026, 3, 2, 12, 14, tzinfo=timezone(timedelta(hours=2)))
    with db.session_scope(factory) as session:
        session.add(Incident(id="INC-1", title="t", severity="sev2", status="open", opened_at=opened))
    with factory() as session:
        got = session.get(Incident, "INC-1")
        assert got is not None
        assert got.opened_at == opened
        assert got.opened_at.tzinfo is not None and got.opened_at.utcoffset() == timedelta(0)
        assert got.opened_at.hour == 10
    engine.dispose()


def test_naive_timestamp_is_refused(sqlite_url: str) -> None:
    engine = db.open_store(sqlite_url)
    factory = db.make_sessionmaker(engine)
    with pytest.raises(sa.exc.StatementError) as info, db.session_scope(factory) as session:
        session.add(Incident(id="INC-2", title="t", severity="sev2", opened_at=datetime(2026, 1, 1)))
    assert isinstance(info.value.orig, NaiveTimestampError)
    engine.dispose()


def test_sqlite_pragmas(sqlite_url: str) -> None:
    engine = db.open_store(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.SQLITE_BUSY_TIMEOUT_MS
    engine.dispose()


def test_unreachable_database_is_a_store_error() -> None:
    with pytest.raises(DatabaseUnavailableError, match="cannot open the store"):
        db.current("postgresql+psycopg://nobody@127.0.0.1:1/nothing")


def test_utc_constant_is_utc() -> None:
    assert datetime(2026, 1, 1, tzinfo=UTC).utcoffset() == timedelta(0)
