"""The incidents' write lock: serialises read-then-write units of work on the timeline across threads and replicas.

Incident ids (``INC-<n>``) and timeline ``seq`` numbers are allocated as one above the highest in the
store, and alert intake decides between joining and opening an incident by reading first. Two writers
doing that at once would pick the same number or open two incidents for one service. Taking this lock
first in the transaction makes such a unit of work run alone: on PostgreSQL a transaction-scoped
advisory lock, on SQLite ``BEGIN IMMEDIATE`` (SQLite has one writer anyway; immediate makes it the
first thing, so nothing is read before the lock is held).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

INCIDENTS_LOCK_KEY = 0x72656D6564  # "remed": the advisory lock id on PostgreSQL


def lock_incidents(*, db_session: Session) -> None:
    """Take the incidents' write lock for the rest of the transaction (call it before reading what you write).

    Taking it again in the same transaction is harmless. On SQLite a transaction that has already
    written holds the database's write lock, so nothing more is needed there.
    """
    connection = db_session.connection()
    if connection.dialect.name == "sqlite":
        raw = connection.connection.dbapi_connection
        if raw is not None and not getattr(raw, "in_transaction", True):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        return
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({INCIDENTS_LOCK_KEY})")
