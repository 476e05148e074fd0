"""A team's own incident tables in shapes unlike ours, created in a real database for the SQL import tests.

One table of tickets (priority P1..P4, opening time as a naive Berlin-local timestamp, closing time in
epoch milliseconds, state OPEN/CLOSED) and one of log entries (kinds ALRT/FIX/MEMO/CLOSE, epoch seconds,
results OK/ERR), as `incidents_db/samples/sql-mapping.yaml` reads them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

DEFAULT_MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/"


def _s(at: str) -> int:
    return int(datetime.fromisoformat(at).replace(tzinfo=UTC).timestamp())


TICKETS = [
    (
        1,
        "Checkout 5xx",
        "P2",
        "2026-03-01 10:00:00",
        _s("2026-03-01T09:30:00") * 1000,
        "CLOSED",
        "checkoutservice",
    ),
    (2, "Cart latency", "P3", "2026-03-02 14:00:00", None, "OPEN", "cartservice"),
    (3, "Bad priority", "P9", "2026-03-03 08:00:00", None, "OPEN", "frontend"),
]
LOG = [
    (1, "ALRT", _s("2026-03-01T09:01:00"), "checkoutservice", None, None, None, "HighErrorRate"),
    (1, "FIX", _s("2026-03-01T09:10:00"), "checkoutservice", "alice", "restart_service", "OK", None),
    (1, "MEMO", _s("2026-03-01T09:20:00"), None, "bob", None, None, "error rate back to normal"),
    (1, "CLOSE", _s("2026-03-01T09:30:00"), None, "bob", None, None, None),
    (2, "ALRT", _s("2026-03-02T13:05:00"), "cartservice", None, None, None, "HighLatency"),
]


def create_source(url: str) -> None:
    """Create and fill the tickets and ticket_log tables at ``url``."""
    engine = sa.create_engine(url)
    stamp = "DATETIME" if engine.dialect.name == "mysql" else "TIMESTAMP"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE tickets (ticket_no INTEGER PRIMARY KEY, summary VARCHAR(200), "
                             f"prio VARCHAR(4), opened {stamp} NULL, closed_ms BIGINT, state VARCHAR(8), "
                             "svc VARCHAR(100))"))  # fmt: skip
        conn.execute(sa.text("CREATE TABLE ticket_log (log_id INTEGER PRIMARY KEY, ticket_ref INTEGER, kind VARCHAR(8), "
                             "logged_s BIGINT, svc VARCHAR(100), who VARCHAR(50), what VARCHAR(100), "
                             "result VARCHAR(8), body TEXT)"))  # fmt: skip
        for row in TICKETS:
            conn.execute(sa.text("INSERT INTO tickets VALUES (:a, :b, :c, :d, :e, :f, :g)"),
                         dict(zip("abcdefg", (*row[:3], datetime.fromisoformat(row[3]), *row[4:]), strict=True)))  # fmt: skip
        for n, entry in enumerate(LOG, start=1):
            conn.execute(sa.text("INSERT INTO ticket_log VALUES (:n, :a, :b, :c, :d, :e, :f, :g, :h)"),
                         {"n": n, **dict(zip("abcdefgh", entry, strict=True))})  # fmt: skip
    engine.dispose()


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A freshly created, empty MariaDB/MySQL database, dropped after the test."""
    value = os.environ.get("REMEDIATE_TEST_MARIADB", DEFAULT_MARIADB_URL)
    if value.strip().lower() == "off":
        pytest.skip("MariaDB cases disabled by REMEDIATE_TEST_MARIADB=off")
    server = value if "://" in value else DEFAULT_MARIADB_URL
    name = f"remediate_t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(server)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE `{name}`"))
    except sa.exc.OperationalError as exc:  # fail loudly: MariaDB cases are never skipped silently
        pytest.fail(
            f"MariaDB at {server} is unreachable ({exc.orig}); start it (.ci/run does) or set "
            "REMEDIATE_TEST_MARIADB=off (or to a mysql+pymysql:// server URL)"
        )
    try:
        yield sa.engine.make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        engine.dispose()
