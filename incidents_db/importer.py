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

import itertools
import os
from collections.abc import Callable, Iterable, Iterator

import sqlalchemy as sa

from incidents_db.import_rows import ImportReport, Item, Prepared, Progress, Refusal, Rows
from incidents_db.import_writer import BackgroundWriter, Writer
from incidents_db.perf import in_workers, relaxed_gc

DEFAULT_BATCH = 500
PARALLEL_AFTER = 2_000  # lines parsed before worker processes are started (they take ~1 s to come up)
MAX_WORKERS = 4


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
    rows: Rows, chunks: Iterator[list[tuple[int, int, bytes]]], workers: int, parallel_after: int
) -> Iterator[list[Item]]:
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
    rows = Rows(engine.dialect.name == "postgresql", source)
    writer = BackgroundWriter(Writer(engine), parsed, on_commit)
    seen: dict[str, tuple[int, bytes]] = {}
    batch: list[Prepared] = []
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
