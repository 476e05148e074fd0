"""Mining's reads: the watermark, the paged header and event queries, and the reader thread.

Reads are batched (a page of incidents, then all their events in one query read as the driver's plain
tuples, alert/action timestamps converted to epoch seconds in SQL, JSON payloads parsed only for the
events a step needs), so mining streams at tens of thousands of incidents per second with flat
memory. A watermark in `mining_state` makes repeated runs incremental.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from queue import Empty, Queue
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from incidents_db.models import MiningState
from incidents_db.service import EVENTS, INCIDENTS

WATERMARK_KEY = "trajectories.watermark"
MINED_EVENT_TYPES = ("alert", "metrics", "action")


@dataclass(frozen=True)
class Watermark:
    """The last incident mined, in (updated_at, id) order."""

    updated_at: datetime
    incident_id: str


def _epoch(column: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[float]:
    # Converting in SQL keeps datetime parsing out of the Python loop.
    if dialect == "sqlite":
        # Whole seconds from strftime plus the ".ffffff" tail: exact, unlike julianday arithmetic.
        whole = sa.cast(sa.func.strftime("%s", column), sa.Integer)
        fraction = sa.cast(sa.func.substr(column, 20), sa.Float)
        return sa.type_coerce(whole + fraction, sa.Float)
    return sa.type_coerce(sa.cast(sa.extract("epoch", column), sa.Float(precision=53)), sa.Float)


def read_watermark(*, connection: sa.Connection) -> Watermark | None:
    """Return where the last mining run stopped (None before the first run)."""
    value = connection.execute(
        sa.select(MiningState.value).where(MiningState.key == WATERMARK_KEY)
    ).scalar_one_or_none()
    if value is None:
        return None
    data = json.loads(value)
    return Watermark(datetime.fromisoformat(data["updated_at"]).astimezone(UTC), data["incident_id"])


def write_watermark(*, connection: sa.Connection, watermark: Watermark) -> None:
    """Store where this mining run stopped."""
    value = json.dumps({"updated_at": watermark.updated_at.isoformat(), "incident_id": watermark.incident_id})
    table = sa.table("mining_state", sa.column("key"), sa.column("value"))
    updated = connection.execute(table.update().where(table.c.key == WATERMARK_KEY).values(value=value))
    if updated.rowcount == 0:
        connection.execute(table.insert().values(key=WATERMARK_KEY, value=value))


Page = tuple[list[Any], Sequence[Any]]


class Header(NamedTuple):
    """What mining reads of one incident (a plain tuple, so pages can go to worker processes)."""

    id: str
    severity: str
    root_cause_service: str | None
    root_cause_fault: str | None
    updated_at: datetime
    opened_s: float
    resolved_s: float | None


def headers_query(dialect: str, since: Watermark | None) -> sa.Select[Any]:
    """Return the query of the resolved incidents changed after `since`, in (updated_at, id) order."""
    query = (
        sa.select(
            INCIDENTS.c.id,
            INCIDENTS.c.severity,
            INCIDENTS.c.root_cause_service,
            INCIDENTS.c.root_cause_fault,
            # As the driver returns it (text on SQLite): `_aware_utc` converts it, several times
            # cheaper than SQLAlchemy's result processing of the column's type.
            sa.type_coerce(INCIDENTS.c.updated_at, sa.Text if dialect == "sqlite" else sa.TIMESTAMP),
            _epoch(INCIDENTS.c.opened_at, dialect).label("opened_s"),
            _epoch(INCIDENTS.c.resolved_at, dialect).label("resolved_s"),
        )
        .where(INCIDENTS.c.status == "resolved", INCIDENTS.c.resolved_at.is_not(None))
        .order_by(INCIDENTS.c.updated_at, INCIDENTS.c.id)
    )
    if since is not None:
        query = query.where(
            sa.or_(
                INCIDENTS.c.updated_at > since.updated_at,
                sa.and_(INCIDENTS.c.updated_at == since.updated_at, INCIDENTS.c.id > since.incident_id),
            )
        )
    return query


def _ids_param(dialect: str) -> sa.ColumnElement[bool]:
    """Return `incident_id` in the page's ids, as ONE parameter: a text array, or JSON text on SQLite.

    One parameter keeps the statement's text the same for every page (compiled once, see
    `_event_sql`); 2,000 bound parameters a page cost more client CPU to compile and adapt than the
    PostgreSQL server spends reading the rows.
    """
    if dialect == "postgresql":
        return EVENTS.c.incident_id == sa.any_(sa.bindparam("ids", [], type_=postgresql.ARRAY(sa.Text)))
    each: sa.Select[Any] = sa.select(sa.column("value")).select_from(
        sa.func.json_each(sa.bindparam("ids", "[]", type_=sa.Text))
    )
    return EVENTS.c.incident_id.in_(each.scalar_subquery())


def events_query(dialect: str) -> sa.Select[Any]:
    """Return the query of the mined events of the incidents in parameter `ids`, in timeline order."""
    # Raw payload text (no JSON decoding by the driver): only the events a step needs get parsed.
    payload = sa.cast(EVENTS.c.payload, sa.Text) if dialect == "postgresql" else EVENTS.c.payload
    return (
        sa.select(
            EVENTS.c.incident_id,
            # A metrics row's time is never used (only its order): skip the conversion for them.
            sa.case(
                (EVENTS.c.type == "metrics", sa.literal_column("0.0")),
                else_=_epoch(EVENTS.c.at, dialect),
            ),
            EVENTS.c.type,
            EVENTS.c.service,
            sa.type_coerce(payload, sa.Text),
        )
        .where(_ids_param(dialect), EVENTS.c.type.in_(MINED_EVENT_TYPES))
        .order_by(EVENTS.c.incident_id, EVENTS.c.seq)
    )


# On PostgreSQL a page's events are read by walking the (incident_id, seq) unique index: it returns them
# already in the query's order, so there is no sort. Left to itself the planner, costing index reads as
# random disk reads, picks a bitmap scan and a sort that spills to disk, or a parallel scan of the whole
# table for every page (which grows with the store): about 3x the server CPU, measured at 20k incidents.
# SET LOCAL: only for this read's transaction (the header cursor's plan is made before it).
_PG_EVENT_SCAN = ("SET LOCAL enable_seqscan = off", "SET LOCAL enable_bitmapscan = off")
# dialect name -> the events statement's text and its parameters but `ids` (the same for every page)
_EVENT_SQL: dict[str, tuple[str, dict[str, Any], tuple[str, ...] | None]] = {}


def _event_statement(dialect: sa.Dialect) -> tuple[str, dict[str, Any], tuple[str, ...] | None]:
    found = _EVENT_SQL.get(dialect.name)
    if found is None:
        compiled = events_query(dialect.name).compile(
            dialect=dialect, compile_kwargs={"render_postcompile": True}
        )
        order = tuple(compiled.positiontup or ()) if compiled.positional else None
        found = _EVENT_SQL[dialect.name] = (str(compiled), dict(compiled.params), order)
    return found


def event_rows(conn: sa.Connection, ids: list[str]) -> list[tuple[Any, ...]]:
    """Return the mined events of incidents `ids` as plain tuples, in timeline order per incident.

    Run on the driver's own cursor: the selected columns need no result processing (text and
    floats), so skipping SQLAlchemy's `Row` construction saves about a third of the read's CPU for
    ~15 rows per incident.
    """
    postgres = conn.dialect.name == "postgresql"
    sql, constants, order = _event_statement(conn.dialect)
    values = {**constants, "ids": ids if postgres else json.dumps(ids)}
    params: Any = values if order is None else tuple(values[name] for name in order)
    cursor = conn.connection.cursor()
    try:
        if postgres:
            for statement in _PG_EVENT_SCAN:
                cursor.execute(statement)
        cursor.execute(sql, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def header_pages(conn: sa.Connection, since: Watermark | None, page_size: int) -> Iterator[list[Header]]:
    """Yield the headers of the incidents to mine, a page at a time, in (updated_at, id) order."""
    query = headers_query(conn.dialect.name, since)
    # One sorted, streamed read of the headers (a server-side cursor on PostgreSQL): re-querying
    # page by page would rescan and re-sort the whole table for every page.
    result = conn.execution_options(stream_results=True, yield_per=page_size).execute(query)
    for page in result.partitions():
        yield [Header(i, sev, svc, fault, _aware_utc(at), o, r) for i, sev, svc, fault, at, o, r in page]


def _aware_utc(value: datetime | str) -> datetime:
    """Return a stored `updated_at` as timezone-aware UTC (SQLite hands back naive UTC text)."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def pages(engine: sa.Engine, since: Watermark | None, page_size: int) -> Iterator[Page]:
    """Yield (incident headers, their mined events) one page at a time, in (updated_at, id) order."""
    with engine.connect() as conn:
        for headers in header_pages(conn, since, page_size):
            yield headers, event_rows(conn, [h.id for h in headers])


def prefetched(pages: Iterator[Page], depth: int = 2) -> Iterator[Page]:
    """Read pages in a background thread so the database works while Python builds trajectories.

    Both drivers release the GIL while the database executes and transfers rows, so on two cores the
    reads overlap the (pure Python) step building. At most `depth` pages wait, keeping memory flat.
    """
    queue: Queue[tuple[str, Any]] = Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for page in pages:
                if stop.is_set():
                    return
                queue.put(("page", page))
            queue.put(("end", None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            queue.put(("error", exc))

    worker = threading.Thread(target=produce, name="mining-reader", daemon=True)
    worker.start()
    try:
        while True:
            kind, item = queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            try:
                queue.get_nowait()
            except Empty:
                worker.join(timeout=0.05)
