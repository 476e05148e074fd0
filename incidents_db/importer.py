"""Streaming import of `remediate.incident/v1` JSON Lines into the store.

Lines are read one at a time and validated; valid incidents are written in batches, one transaction per
batch, so every incident is all-or-nothing and memory stays flat whatever the file size. An id already
in the store is skipped (idempotent); a bad line is refused with its line number and the broken rule.
After each commit `on_commit` is told how far the store is durable, so a caller can report progress
that survives a crash.

Large imports parse on other cores: after the first `PARALLEL_AFTER` lines, chunks of lines go to
worker processes that validate them and build the store rows, while this process dedupes ids and a
writer thread inserts (COPY on PostgreSQL, executemany on SQLite). Results come back in file order,
so line numbers, refusals and the durable-progress reports are the same as parsing in one process.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from queue import Full, Queue
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from pydantic_core import to_json

from incidents_db.models import utcnow
from incidents_db.perf import in_workers, relaxed_gc
from incidents_db.schema import EVENT_MODELS, IncidentRecord, format_error, parse_line
from incidents_db.service import EVENT_COLUMNS, existing_ids

DEFAULT_BATCH = 500
PARALLEL_AFTER = 2_000  # lines parsed before worker processes are started (they take ~1 s to come up)
MAX_WORKERS = 4
MAX_ERROR_CHARS = 300

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


@dataclass(frozen=True)
class Refusal:
    """A line that was not imported: its 1-based line number and the rule it broke."""

    line: int
    error: str


@dataclass(frozen=True)
class Progress:
    """What is durably in the store so far (sent after every committed batch)."""

    imported: int
    skipped_existing: int
    refused: int
    last_line: int
    bytes_read: int


@dataclass
class ImportReport:
    """The outcome of one import."""

    imported: int = 0
    skipped_existing: int = 0
    refused: list[Refusal] = field(default_factory=list)
    lines: int = 0

    def as_json(self) -> dict[str, Any]:
        """Return the report in the shape `remediate import --json` prints."""
        return {
            "imported": self.imported,
            "skipped_existing": self.skipped_existing,
            "refused": [{"line": r.line, "error": r.error} for r in self.refused],
        }


def _digest(line: bytes) -> bytes:
    return hashlib.blake2b(line, digest_size=12).digest()


def _db_reason(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _sqlite_ts(value: datetime | None) -> str | None:
    # The text form SQLAlchemy's SQLite DateTime reads back: naive UTC with microseconds.
    if value is None:
        return None
    if value.utcoffset() == _ZERO:
        # Already UTC (the usual `Z`): dropping the "+00:00" tail saves two datetime copies.
        return value.isoformat(sep=" ", timespec="microseconds")[:26]
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _pg_ts(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


_ZERO = timedelta(0)


# Per event type, the keys that go to `payload` (everything of the event but at/type/service).
_PAYLOAD_KEYS: dict[str, tuple[str, ...]] = {
    name: tuple(k for k in model.model_fields if k not in EVENT_COLUMNS)
    for name, model in EVENT_MODELS.items()
}


def _encode(value: Any) -> str:
    # pydantic-core's Rust encoder: a third of the time of json.dumps for the same compact JSON (floats
    # may be spelled differently, e.g. 0.00001 for 1e-05, but parse back to the same value).
    return to_json(value).decode()


@dataclass(frozen=True)
class _Prepared:
    """One valid incident as the rows the store receives (built in the parsing thread)."""

    line: int
    id: str
    incident: tuple[Any, ...]
    events: list[tuple[Any, ...]]


@dataclass(frozen=True)
class _Item:
    """What parsing made of one non-blank line: store rows, or the rule it broke."""

    line: int
    end: int  # bytes read up to the end of this line
    id: str
    digest: bytes
    prepared: _Prepared | None
    refusal: Refusal | None


class _Rows:
    """Turns lines into store rows (validation, payloads, timestamps); picklable, so workers can run it.

    It runs in the parsing thread or a worker process, so the writer thread only talks to the
    database and the Python work of parsing overlaps with the driver's inserts.
    """

    def __init__(self, postgres: bool, source: str) -> None:
        self.postgres = postgres
        self.source = source

    @property
    def ts(self) -> Callable[[datetime | None], str | None]:
        """Return the timestamp formatter of the backend."""
        return _pg_ts if self.postgres else _sqlite_ts

    def parse(self, chunk: list[tuple[int, int, bytes]]) -> list[_Item]:
        """Validate and convert a chunk of (line number, end offset, stripped line) in order."""
        now = self.ts(utcnow())
        stamps: dict[datetime, str | None] = {}
        items = []
        for number, end, line in chunk:
            try:
                record = parse_line(line)
            except ValidationError as exc:
                refusal = Refusal(number, format_error(exc)[:MAX_ERROR_CHARS])
                items.append(_Item(number, end, "", b"", None, refusal))
                continue
            incident, events = self._rows(record, now, stamps)
            prepared = _Prepared(number, record.id, incident, events)
            items.append(_Item(number, end, record.id, _digest(line), prepared, None))
        return items

    def _rows(
        self, record: IncidentRecord, now: str | None, stamps: dict[datetime, str | None]
    ) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
        ts = self.ts
        root = record.root_cause
        incident = (
            record.id,
            record.title,
            record.severity,
            "resolved" if record.resolved_at is not None else "open",
            record.topology,
            _encode(list(record.services or ())),
            root.service if root else None,
            root.fault if root else None,
            self.source,
            ts(record.opened_at),
            ts(record.resolved_at),
            now,
            now,
        )
        events = []
        for seq, event in enumerate(record.events):
            # Validated values are plain JSON types (str, float, dict), so the fields go out as they are;
            # reading __dict__ skips model_dump, which costs more than the rest of the row.
            fields = event.__dict__
            payload = {k: fields[k] for k in _PAYLOAD_KEYS[event.type] if fields[k] is not None}
            # Events of an incident share few distinct times (alerts and metrics land together), so each
            # time is formatted once per batch.
            at = stamps.get(event.at)
            if at is None:
                at = stamps[event.at] = ts(event.at)
            events.append((record.id, seq, at, event.type, fields.get("service"), _encode(payload)))
        return incident, events


class _Writer:
    """Writes batches of prepared incidents; COPY on PostgreSQL, raw executemany on SQLite."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        # Inserts go through the driver's own cursor, so its errors arrive untranslated by SQLAlchemy.
        driver_error = getattr(engine.dialect.dbapi, "Error", None)
        self.refusals: tuple[type[Exception], ...] = (sa.exc.DBAPIError,) + (
            (driver_error,) if isinstance(driver_error, type) else ()
        )

    def write(self, batch: list[_Prepared], report: ImportReport) -> None:
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

    def _insert(self, conn: sa.Connection, batch: list[_Prepared]) -> tuple[int, int]:
        present = existing_ids(connection=conn, ids=[item.id for item in batch])
        incidents: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        for item in batch:
            if item.id in present:
                continue
            incidents.append(item.incident)
            events.extend(item.events)
        if incidents:
            raw = conn.connection.driver_connection
            if raw is None:  # pragma: no cover - a pooled connection always has its driver connection
                raise sa.exc.InvalidRequestError("connection has no driver connection")
            cursor = raw.cursor()
            try:
                if self.postgres:
                    _copy(cursor, "incidents", _INCIDENT_COLUMNS, incidents)
                    _copy(cursor, "incident_events", _EVENT_COLUMNS, events)
                else:
                    cursor.executemany(_insert_sql("incidents", _INCIDENT_COLUMNS), incidents)
                    cursor.executemany(_insert_sql("incident_events", _EVENT_COLUMNS), events)
            finally:
                cursor.close()
        return len(incidents), len(batch) - len(incidents)


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"


def _copy(cursor: Any, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


class _BackgroundWriter:
    """Runs `_Writer` in a thread so the database stores batch N while Python parses batch N + 1.

    Batches are written strictly in order, one at a time; `on_commit` is called from the writer thread
    after each commit. Both drivers release the GIL while the database works, so on two cores the
    parsing and the writing overlap. At most `depth` batches wait, which keeps memory flat.
    """

    def __init__(
        self,
        writer: _Writer,
        parsed: ImportReport,
        on_commit: Callable[[Progress], None] | None,
        depth: int = 2,
    ) -> None:
        self.writer = writer
        self.parsed = parsed
        self.stored = ImportReport()
        self.on_commit = on_commit
        self.queue: Queue[tuple[list[_Prepared], int, int] | None] = Queue(maxsize=depth)
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="import-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.failure is not None:
                continue  # keep draining so the producer never blocks
            batch, last_line, bytes_read = item
            try:
                if batch:
                    self.writer.write(batch, self.stored)
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
            except BaseException as exc:  # handed to the importing thread, which re-raises it
                self.failure = exc

    def submit(self, batch: list[_Prepared], last_line: int, bytes_read: int) -> None:
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


def _refresh_statistics(engine: sa.Engine) -> None:
    """Give PostgreSQL's planner fresh statistics after a bulk load.

    Until autovacuum gets to it, PostgreSQL plans against empty-table statistics, and mining right
    after a large import ran twice as slow (measured at 100k incidents: 10.0 s before, 4.8 s after an
    ANALYZE that itself took 0.2 s). SQLite needs nothing here.
    """
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as conn:
        conn.execute(sa.text("ANALYZE incidents"))
        conn.execute(sa.text("ANALYZE incident_events"))
        conn.commit()


def default_workers() -> int:
    """Return how many parsing processes a large import uses: one core is left for the database writes."""
    return max(1, min(MAX_WORKERS, (os.cpu_count() or 1) - 1))


def _chunks(lines: Iterable[bytes], size: int, counter: list[int]) -> Iterator[list[tuple[int, int, bytes]]]:
    """Yield the non-blank lines as chunks of (number, end offset, stripped line); count every line."""
    chunk: list[tuple[int, int, bytes]] = []
    bytes_read = 0
    for number, raw in enumerate(lines, start=1):
        bytes_read += len(raw)
        counter[0], counter[1] = number, bytes_read
        line = raw.strip()
        if line:
            chunk.append((number, bytes_read, line))
            if len(chunk) >= size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _parsed_chunks(
    rows: _Rows, chunks: Iterator[list[tuple[int, int, bytes]]], workers: int, parallel_after: int
) -> Iterator[list[_Item]]:
    """Parse chunks in order: here at first, in worker processes once the import proves large.

    Small imports never start a process. After ``parallel_after`` lines the workers are started in the
    background while this process goes on parsing; once they are up, chunks go to them and this process
    only dedupes and hands rows to the writer.
    """
    done = 0
    for chunk in chunks:
        yield rows.parse(chunk)
        done += len(chunk)
        if workers > 0 and done >= parallel_after:
            break
    else:
        return
    upcoming = next(chunks, None)
    if upcoming is None:
        return  # the file ended with the last chunk parsed here: no process to start
    broken = RuntimeError(
        "an import worker process died (out of memory?); run again with --workers 0 to parse in one process"
    )
    yield from in_workers(
        itertools.chain([upcoming], chunks), rows.parse, rows.parse, workers=workers, broken=broken
    )


def import_lines(
    *,
    engine: sa.Engine,
    lines: Iterable[bytes],
    batch_size: int = DEFAULT_BATCH,
    source: str = "import",
    on_commit: Callable[[Progress], None] | None = None,
    workers: int | None = None,
    parallel_after: int = PARALLEL_AFTER,
) -> ImportReport:
    """Import JSON Lines into the store behind `engine` (whose schema must be current).

    Args:
        engine: the store.
        lines: the file's lines as bytes (a binary file object works), read once, in order.
        batch_size: incidents per transaction.
        source: value of `incidents.source` for the new rows.
        on_commit: called after each committed batch with what is durably stored so far (from the
            writer thread; every valid incident up to `Progress.last_line` is committed).
        workers: parsing processes once the import is large (None: `default_workers()`; 0: parse
            in this process only).
        parallel_after: lines parsed in this process before the workers take over.

    Returns:
        How many incidents were imported, skipped because their id exists, and each refused line.
    """
    parsed = ImportReport()
    rows = _Rows(engine.dialect.name == "postgresql", source)
    writer = _BackgroundWriter(_Writer(engine), parsed, on_commit)
    seen: dict[str, tuple[int, bytes]] = {}
    batch: list[_Prepared] = []
    counter = [0, 0]  # lines read, bytes read
    chunks = _chunks(lines, batch_size, counter)
    n_workers = default_workers() if workers is None else max(0, workers)
    try:
        with relaxed_gc():
            for items in _parsed_chunks(rows, chunks, n_workers, parallel_after):
                for item in items:
                    if item.refusal is not None:
                        parsed.refused.append(item.refusal)
                        continue
                    earlier = seen.get(item.id)
                    if earlier is not None:
                        if earlier[1] == item.digest:
                            parsed.skipped_existing += 1
                        else:
                            parsed.refused.append(
                                Refusal(
                                    item.line,
                                    f"id: duplicate id {item.id!r}; line {earlier[0]} already holds a "
                                    "different incident with this id (ids must be unique)",
                                )
                            )
                        continue
                    seen[item.id] = (item.line, item.digest)
                    assert item.prepared is not None
                    batch.append(item.prepared)
                    if len(batch) >= batch_size:
                        writer.submit(batch, item.line, item.end)
                        batch = []
            writer.submit(batch, counter[0], counter[1])
            stored = writer.finish()
    except BaseException:
        writer.abandon()
        raise
    if stored.imported:
        _refresh_statistics(engine)
    return ImportReport(
        imported=stored.imported,
        skipped_existing=stored.skipped_existing + parsed.skipped_existing,
        refused=sorted(parsed.refused + stored.refused, key=lambda r: r.line),
        lines=counter[0],
    )
