"""Leader election for scheduled jobs: exactly one process per database runs them.

On PostgreSQL the leader holds a session-level advisory lock (``pg_try_advisory_lock``) on a connection
of its own for as long as it lives; the others try again at each tick and take over when the leader's
connection goes (process ended, network cut: the server frees the lock). On SQLite one process runs the
jobs: the leader holds an exclusive ``flock`` on a file beside the database (``<db>.leader``); an
in-memory database has one process anyway.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import IO

import sqlalchemy as sa

from incidents_db.errors import StoreInUseError

LEADER_LOCK_KEY = 0x72656D6A6F62  # "remjob": the advisory lock id of the job leader
log = logging.getLogger("remediate.leader")


class Leadership:
    """Whether this process leads the scheduled jobs of the database behind ``engine``."""

    def __init__(self, engine: sa.Engine, *, key: int = LEADER_LOCK_KEY) -> None:
        """Prepare to compete for the lock (nothing is taken until `is_leader`)."""
        self.engine = engine
        self.key = key
        self._conn: sa.Connection | None = None
        self._file: IO[bytes] | None = None
        self._mutex = threading.Lock()

    def is_leader(self) -> bool:
        """Return True when this process holds (or now takes) the leader lock."""
        with self._mutex:
            if self.engine.dialect.name == "postgresql":
                return self._postgres()
            return self._sqlite()

    def _postgres(self) -> bool:
        if self._conn is not None:
            try:
                self._conn.exec_driver_sql("SELECT 1")
                return True
            except sa.exc.DBAPIError:  # the connection (and with it the lock) is gone: compete again
                log.warning("lost the job leader's connection; competing again")
                self._drop_connection()
        conn = self.engine.connect()
        try:
            held = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar())
            conn.commit()
        except sa.exc.DBAPIError:
            conn.close()
            raise
        if not held:
            conn.close()
            return False
        self._conn = conn
        return True

    def _sqlite(self) -> bool:
        if self._file is not None:
            return True
        database = self.engine.url.database
        if not database or database == ":memory:":
            return True
        handle = Path(f"{database}.leader").open("ab")  # noqa: SIM115  (held open while this process leads)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        self._file = handle
        return True

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sa.exc.DBAPIError):
                self._conn.close()
            self._conn = None

    def release(self) -> None:
        """Give the lead up (another process takes it at its next tick)."""
        with self._mutex:
            if self._conn is not None:
                try:
                    self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                    self._conn.commit()
                except sa.exc.DBAPIError:
                    pass
                self._drop_connection()
            if self._file is not None:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
                self._file.close()
                self._file = None


def hold_serving_lock(url: str) -> IO[bytes] | None:
    """Take the one serving process's lock of a SQLite file store (``<db>.serve.lock``); None elsewhere.

    SQLite serves from one process: a second ``serve`` on the same file is refused with the first's pid
    (several replicas need PostgreSQL). The lock is an exclusive ``flock`` held by the returned handle;
    the system frees it when the process ends, however it ends.
    """
    parsed = sa.engine.make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(f"{parsed.database}.serve.lock")
    handle = path.open("a+b")  # held open while this process serves
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().decode(errors="replace").strip() or "unknown"
        handle.close()
        raise StoreInUseError(
            f"another `remediate serve` (pid {holder}) already serves the SQLite store {parsed.database}; "
            "SQLite serves one process: stop that one, or use PostgreSQL (REMEDIATE_DATABASE_URL) to run "
            "several replicas (docs/operations.md)"
        ) from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n".encode())
    handle.flush()
    return handle
