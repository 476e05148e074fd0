"""Shared fixtures: real databases (a SQLite file and a fresh PostgreSQL database per test, empty or migrated)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.schema_copies import SchemaCopies

DEFAULT_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

# One torch thread in the test processes and every command they start (set before anything imports torch;
# the environment passes it on). The tests run two workers, each starting commands, on a few cores: torch's
# own thread pool per process spun on the shared cores, about 3x the CPU of a one-thread run of
# `train --quick`. The shipped bundle is built on one thread too (remediation/registry/bundle.py).
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile` hands out the longest files first (see tests/scheduling.py); other modes as xdist does."""
    if config.getoption("dist") != "loadfile":
        return None
    from tests.scheduling import SlowFirstScheduling

    return SlowFirstScheduling(config, log)


def postgres_admin_url() -> str | None:
    """Return the PostgreSQL URL tests connect to, or None when REMEDIATE_TEST_POSTGRES_URL=off."""
    value = os.environ.get("REMEDIATE_TEST_POSTGRES_URL", DEFAULT_PG_ADMIN_URL)
    return None if value.strip().lower() == "off" else value


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file URL in the test's temporary directory (empty, no schema)."""
    return f"sqlite:///{tmp_path / 'remediate-test.sqlite'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A freshly created, empty PostgreSQL database, dropped after the test."""
    admin = postgres_admin_url()
    if admin is None:
        pytest.skip("PostgreSQL cases disabled by REMEDIATE_TEST_POSTGRES_URL=off")
    name = f"remediate_t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:  # fail loudly: PostgreSQL cases are never skipped silently
        pytest.fail(
            f"PostgreSQL at {admin} is unreachable ({exc.orig}); start it or set REMEDIATE_TEST_POSTGRES_URL=off"
        )
    url = sa.engine.make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty database URL, once for SQLite and once for PostgreSQL."""
    fixture = "postgres_url" if request.param == "postgresql" else "sqlite_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture(scope="session")
def schema_copies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SchemaCopies]:
    copies = SchemaCopies(tmp_path_factory.mktemp("schema"))
    yield copies
    copies.close()


@pytest.fixture
def migrated_sqlite_url(sqlite_url: str, schema_copies: SchemaCopies) -> str:
    """``sqlite_url``, its file at the newest schema (a copy of one migrated for this test process)."""
    schema_copies.fill_sqlite(sqlite_url)
    return sqlite_url


@pytest.fixture
def migrated_db_url(db_url: str, schema_copies: SchemaCopies) -> str:
    """``db_url`` (SQLite, then PostgreSQL), its database at the newest schema (a copy of a migrated one)."""
    if db_url.startswith("sqlite"):
        schema_copies.fill_sqlite(db_url)
    else:
        schema_copies.fill_postgres(str(postgres_admin_url()), db_url)
    return db_url
