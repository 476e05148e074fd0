"""Writing parsed incidents to the store: COPY on PostgreSQL, executemany on SQLite, in a thread.

Each batch is written in one transaction (with the batches that were already waiting, when the
database is the slower side: one commit for up to four), so every incident is all-or-nothing; an id
already in the store is skipped. When a batch fails, its incidents are retried one by one so one bad
incident refuses alone.

On PostgreSQL, where the importing role may set `session_replication_role`, each batch transaction
runs with it set to `replica` (SET LOCAL, so it ends with the transaction), which skips the foreign
key's per-row check of `incident_events.incident_id` (more than half of the server's CPU in a COPY
of a timeline, measured). The check cannot fail there: a batch only writes the events of incidents
it inserted itself, earlier in the same transaction, which no other session can see or delete before
the commit. Indexes and unique constraints are still maintained and checked. This is how
`pg_restore --disable-triggers` loads data; the store has no triggers of its own to skip.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from queue import Empty, Full, Queue
from typing import Any

import sqlalchemy as sa

from incidents_db.import_rows import ImportReport, Prepared, Progress, Refusal
from incidents_db.service import existing_ids

_INCIDENT_COLUMNS = (
    "id",
    "title",
    "severity",
    "status",
    "topology",
    "services",
    "root_cause_service",
    "root_cause_fault",
    "source",
    "opened_at",
    "resolved_at",
    "created_at",
    "updated_at",
)
_EVENT_COLUMNS = ("incident_id", "seq", "at", "type", "service", "payload")


def _db_reason(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class Writer:
    """Writes batches of prepared incidents; COPY on PostgreSQL, raw executemany on SQLite."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        # Inserts go through the driver's own cursor, so its errors arrive untranslated by SQLAlchemy.
        driver_error = getattr(engine.dialect.dbapi, "Error", None)
        self.refusals: tuple[type[Exception], ...] = (sa.exc.DBAPIError,) + (
            (driver_error,) if isinstance(driver_error, type) else ()
        )
        self.replica_role: bool | None = None  # may batches skip the foreign key's row checks (asked once)

    def write(self, batch: list[Prepared], report: ImportReport) -> None:
        """Insert the batch's new incidents in one transaction, or one by one when that fails."""
        try:
            with self.engine.begin() as conn:
                imported, skipped = self._insert(conn, batch)
        except self.refusals:
            # One bad incident (e.g. a value too long for a column, or a concurrent import of the same
            # id) must not take its neighbours down: retry each incident in its own transaction.
            for item in batch:
                try:
                    with self.engine.begin() as conn:
                        one_imported, one_skipped = self._insert(conn, [item])
                except self.refusals as exc:
                    report.refused.append(
                        Refusal(item.line, f"the store refused incident {item.id!r}: {_db_reason(exc)}")
                    )
                    continue
                report.imported += one_imported
                report.skipped_existing += one_skipped
            return
        report.imported += imported
        report.skipped_existing += skipped

    def write_group(self, batches: list[list[Prepared]]) -> list[ImportReport]:
        """Insert several batches in ONE transaction; return what each batch stored, in order.

        One commit instead of one a batch: on PostgreSQL each commit waits for its WAL flush (measured
        about 55 ms on this shared machine, up to a fifth of a 100k import's wall time at 500 a batch).
        Each batch is still all or nothing, and nothing of the group is reported before its commit. When
        the database refuses the group, each batch is written on its own (`write`, which retries one
        incident at a time), so refusals and counts are those of writing the batches one by one.
        """
        stored = [ImportReport() for _ in batches]
        if len(batches) == 1:
            self.write(batches[0], stored[0])
            return stored
        try:
            with self.engine.begin() as conn:
                counts = [self._insert(conn, batch) for batch in batches]
        except self.refusals:
            for batch, report in zip(batches, stored, strict=True):
                self.write(batch, report)
            return stored
        return [ImportReport(imported=imported, skipped_existing=skipped) for imported, skipped in counts]

    def _insert(self, conn: sa.Connection, batch: list[Prepared]) -> tuple[int, int]:
        present = existing_ids(connection=conn, ids=[item.id for item in batch])
        incidents: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        copied: list[bytes] = []  # events that come as COPY lines already (PostgreSQL)
        for item in batch:
            if item.id in present:
                continue
            incidents.append(item.incident)
            if isinstance(item.events, bytes):
                copied.append(item.events)
            else:
                events.extend(item.events)
        if incidents:
            raw = conn.connection.driver_connection
            if raw is None:  # pragma: no cover - a pooled connection always has its driver connection
                raise sa.exc.InvalidRequestError("connection has no driver connection")
            cursor = raw.cursor()
            try:
                if self.postgres:
                    if self._may_skip_fk_checks(cursor):
                        cursor.execute("SET LOCAL session_replication_role = replica")
                    _copy(cursor, "incidents", _INCIDENT_COLUMNS, incidents)
                    _copy(cursor, "incident_events", _EVENT_COLUMNS, events, copied)
                else:
                    cursor.executemany(_insert_sql("incidents", _INCIDENT_COLUMNS), incidents)
                    cursor.executemany(_insert_sql("incident_events", _EVENT_COLUMNS), events)
            finally:
                cursor.close()
        return len(incidents), len(batch) - len(incidents)

    def _may_skip_fk_checks(self, cursor: Any) -> bool:
        """Return whether this role may set `session_replication_role` (asked on the first batch)."""
        if self.replica_role is None:
            if cursor.connection.info.server_version >= 150000:
                cursor.execute("SELECT has_parameter_privilege('session_replication_role', 'SET')")
            else:  # before PostgreSQL 15 only a superuser may set it
                cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            row = cursor.fetchone()
            self.replica_role = bool(row and row[0])
        return self.replica_role


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"


def _copy(
    cursor: Any,
    table: str,
    columns: tuple[str, ...],
    rows: list[tuple[Any, ...]],
    lines: Sequence[bytes] = (),
) -> None:
    """COPY `rows` and `lines` (rows already in COPY's text format) into `table`, in one statement."""
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
        if lines:
            copy.write(b"".join(lines))


class BackgroundWriter:
    """Runs `Writer` in a thread so the database stores batch N while Python parses batch N + 1.

    Batches are written strictly in order; `on_commit` is called from the writer thread for each batch
    once the transaction holding it has committed. Batches that are already waiting when the writer
    gets to them (up to `group`) are committed together (`Writer.write_group`). Both drivers release
    the GIL while the database works, so on two cores the parsing and the writing overlap. At most
    `depth` batches wait, which keeps memory flat.
    """

    def __init__(
        self,
        writer: Writer,
        parsed: ImportReport,
        on_commit: Callable[[Progress], None] | None,
        depth: int = 4,
        group: int = 4,
    ) -> None:
        self.writer = writer
        self.parsed = parsed
        self.stored = ImportReport()
        self.on_commit = on_commit
        self.group = max(1, group)
        self.queue: Queue[tuple[list[Prepared], int, int] | None] = Queue(maxsize=depth)
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="import-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        ending = False
        while not ending and (item := self.queue.get()) is not None:
            group = [item]
            while len(group) < self.group:
                try:
                    more = self.queue.get_nowait()
                except Empty:
                    break
                if more is None:
                    ending = True
                    break
                group.append(more)
            if self.failure is not None:
                continue  # keep draining so the producer never blocks
            try:
                self._write(group)
            except BaseException as exc:  # handed to the importing thread, which re-raises it
                self.failure = exc

    def _write(self, group: list[tuple[list[Prepared], int, int]]) -> None:
        """Commit the group's batches together, then report each batch in order."""
        batches = [batch for batch, _, _ in group if batch]
        stored = iter(self.writer.write_group(batches) if batches else [])
        for batch, last_line, bytes_read in group:
            if batch:
                done = next(stored)
                self.stored.imported += done.imported
                self.stored.skipped_existing += done.skipped_existing
                self.stored.refused.extend(done.refused)
            if self.on_commit is not None:
                self.on_commit(
                    Progress(
                        self.stored.imported,
                        self.stored.skipped_existing + self.parsed.skipped_existing,
                        len(self.stored.refused) + len(self.parsed.refused),
                        last_line,
                        bytes_read,
                    )
                )

    def submit(self, batch: list[Prepared], last_line: int, bytes_read: int) -> None:
        """Queue a batch (or an empty one, to report progress) for writing."""
        self._check()
        self.queue.put((batch, last_line, bytes_read))

    def finish(self) -> ImportReport:
        """Wait until every queued batch is written and return what the writer stored."""
        self.queue.put(None)
        self.thread.join()
        self._check()
        return self.stored

    def abandon(self) -> None:
        """Stop the thread after the batch in flight (used when the importing thread fails)."""
        self.failure = self.failure or RuntimeError("import abandoned")
        while self.thread.is_alive():
            try:
                self.queue.put(None, timeout=0.1)
            except Full:
                continue
            self.thread.join()

    def _check(self) -> None:
        if self.failure is not None:
            raise self.failure
