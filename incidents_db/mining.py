"""Trajectory mining: resolved incidents -> raw trajectories (one step per action) -> `.npz` dataset.

A step is the moment someone acted. It records the alerts firing just before, the latest metrics per
service, the action (catalog id, or "unmapped" for one outside the catalog), the time until the next
step (or resolution), and a reward (see `RewardConfig` and docs/store.md for why each term exists).

Reads are batched (a page of incidents, then all their events in one query read as the driver's plain
tuples, alert/action timestamps converted to epoch seconds in SQL, JSON payloads parsed only for the
events a step needs), so mining streams at tens of thousands of incidents per second with flat
memory. A watermark in `mining_state` makes repeated runs incremental. A large store (more than
`PARALLEL_AFTER` incidents to mine) is read and built in worker processes, a page each, collected in
order: the dataset is the same as one process makes.
"""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from queue import Empty, Queue
from typing import Any, NamedTuple

import sqlalchemy as sa
from pydantic_core import from_json

from incidents_db.dataset import DATASET_FORMAT, UNMAPPED, DatasetBuilder, PageBuilder, PageColumns
from incidents_db.errors import StoreError
from incidents_db.models import MiningState, utcnow
from incidents_db.perf import in_workers, relaxed_gc
from incidents_db.schema import SEVERITIES, iso
from incidents_db.service import EVENTS, INCIDENTS
from playbooks.catalog import Catalog, builtin_catalog

WATERMARK_KEY = "trajectories.watermark"
PAGE = 2000
PARALLEL_AFTER = 10_000  # incidents to mine before worker processes are worth their start-up (~1 s)
MAX_WORKERS = 4
MINED_EVENT_TYPES = ("alert", "metrics", "action")


class MiningError(StoreError):
    """Mining could not write its dataset or read its state."""


@dataclass(frozen=True)
class RewardConfig:
    """The reward's constants (docs/store.md explains each term)."""

    impact_per_minute: tuple[float, float, float, float] = (4.0, 2.0, 1.0, 0.5)
    """Cost of one minute of user-facing impact for sev1..sev4."""
    wasted_action_penalty: float = 5.0
    """Extra cost of an action that failed or had no effect (risk and attention spent for nothing)."""
    resolution_bonus: float = 10.0
    """Credit to the step whose interval ends with the incident resolved."""


class Step(NamedTuple):
    """One decision point of a trajectory (a NamedTuple: built once per action, cheaper than a dataclass)."""

    at: float
    alerts: tuple[tuple[str, str], ...]
    metrics: dict[str, dict[str, float]]
    action: str
    action_name: str
    target: str | None
    outcome: str
    dt: float
    impact_minutes: float
    reward: float
    done: bool


class Trajectory(NamedTuple):
    """A resolved incident as a sequence of steps."""

    incident_id: str
    severity: str
    opened_at: float
    resolved_at: float
    root_service: str | None
    root_fault: str | None
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Watermark:
    """The last incident mined, in (updated_at, id) order."""

    updated_at: datetime
    incident_id: str


@dataclass(frozen=True)
class MiningSummary:
    """What one `mine` run did (the JSON summary)."""

    incidents: int
    trajectories: int
    steps: int
    unmapped_actions: int
    out: str

    def as_json(self) -> dict[str, Any]:
        """Return the summary in the shape `remediate mine --json` prints."""
        return asdict(self)


def _epoch(column: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[float]:
    # Converting in SQL keeps datetime parsing out of the Python loop.
    if dialect == "sqlite":
        # Whole seconds from strftime plus the ".ffffff" tail: exact, unlike julianday arithmetic.
        whole = sa.cast(sa.func.strftime("%s", column), sa.Integer)
        fraction = sa.cast(sa.func.substr(column, 20), sa.Float)
        return sa.type_coerce(whole + fraction, sa.Float)
    return sa.type_coerce(sa.cast(sa.extract("epoch", column), sa.Float(precision=53)), sa.Float)


def _overlap(segments: list[tuple[float, float]], start: float, end: float) -> float:
    total = 0.0
    for seg_start, seg_end in segments:
        lo, hi = max(seg_start, start), min(seg_end, end)
        if hi > lo:
            total += hi - lo
    return total


EventRow = tuple[str, float, str, str | None, str]
"""One mined event as read: (incident id, epoch seconds (0.0 for metrics rows: unused), type, service, payload JSON)."""


def build_trajectory(
    header: Any, events: Sequence[EventRow], catalog: Catalog, reward: RewardConfig
) -> Trajectory:
    """Turn one incident header and its event rows (in timeline order) into a trajectory."""
    opened, resolved = float(header.opened_s), float(header.resolved_s)
    active: dict[tuple[str, str], float] = {}
    latest: dict[str, str] = {}
    parsed: dict[str, dict[str, float]] = {}
    segments: list[tuple[float, float]] = []
    firing_since: float | None = None
    saw_alert = False
    firing: tuple[tuple[str, str], ...] | None = ()  # sorted `active`; None when it changed since
    raw_steps: list[
        tuple[float, tuple[tuple[str, str], ...], dict[str, dict[str, float]], dict[str, Any]]
    ] = []
    for _, at, kind, service, payload in events:
        if kind == "metrics":
            latest[service or ""] = payload
        elif kind == "alert":
            saw_alert = True
            alert = from_json(payload)
            key = (service or "", str(alert.get("name", "")))
            if alert.get("status") == "firing":
                if not active:
                    firing_since = at
                active[key] = at
                firing = None
            elif active.pop(key, None) is not None:
                firing = None
                if not active and firing_since is not None:
                    segments.append((firing_since, at))
                    firing_since = None
        elif kind == "action":
            metrics = {}
            for svc, raw in latest.items():
                values = parsed.get(raw)
                if values is None:
                    values = parsed[raw] = from_json(raw).get("values", {})
                metrics[svc] = values
            if firing is None:
                firing = tuple(sorted(active))
            raw_steps.append((at, firing, metrics, from_json(payload)))
    if firing_since is not None:
        segments.append((firing_since, max(resolved, firing_since)))
    if not saw_alert:
        # No alerts recorded: the whole open period counts as impact.
        segments = [(opened, resolved)]
    weight = reward.impact_per_minute[SEVERITIES.index(header.severity)]
    steps = []
    final = len(raw_steps) - 1
    for index, (at, alerts, metrics, action) in enumerate(raw_steps):
        last = index == final
        next_at = resolved if last else raw_steps[index + 1][0]
        next_at = max(next_at, at)
        impact = _overlap(segments, at, next_at) / 60.0
        outcome = str(action.get("outcome", "unknown"))
        value = -weight * impact
        if outcome in ("failed", "no_effect"):
            value -= reward.wasted_action_penalty
        if last:
            value += reward.resolution_bonus
        name = str(action.get("action", ""))
        steps.append(
            Step(
                at,
                alerts,
                metrics,
                name if name in catalog else UNMAPPED,
                name,
                action.get("target"),
                outcome,
                next_at - at,
                impact,
                value,
                last,
            )
        )
    return Trajectory(
        header.id,
        header.severity,
        opened,
        resolved,
        header.root_cause_service,
        header.root_cause_fault,
        tuple(steps),
    )


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


def _headers_query(dialect: str, since: Watermark | None) -> sa.Select[Any]:
    query = (
        sa.select(
            INCIDENTS.c.id,
            INCIDENTS.c.severity,
            INCIDENTS.c.root_cause_service,
            INCIDENTS.c.root_cause_fault,
            INCIDENTS.c.updated_at,
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


def _events_query(dialect: str, ids: list[str]) -> sa.Select[Any]:
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
        .where(EVENTS.c.incident_id.in_(ids), EVENTS.c.type.in_(MINED_EVENT_TYPES))
        .order_by(EVENTS.c.incident_id, EVENTS.c.seq)
    )


def _header_pages(conn: sa.Connection, since: Watermark | None, page_size: int) -> Iterator[list[Header]]:
    """Yield the headers of the incidents to mine, a page at a time, in (updated_at, id) order."""
    query = _headers_query(conn.dialect.name, since)
    # One sorted, streamed read of the headers (a server-side cursor on PostgreSQL): re-querying
    # page by page would rescan and re-sort the whole table for every page.
    result = conn.execution_options(stream_results=True, yield_per=page_size).execute(query)
    for page in result.partitions():
        yield [Header(*row) for row in page]


def _pages(engine: sa.Engine, since: Watermark | None, page_size: int) -> Iterator[Page]:
    """Yield (incident headers, their mined events) one page at a time, in (updated_at, id) order."""
    with engine.connect() as conn:
        for headers in _header_pages(conn, since, page_size):
            yield headers, _driver_rows(conn, _events_query(conn.dialect.name, [h.id for h in headers]))


def _driver_rows(conn: sa.Connection, query: sa.Select[Any]) -> list[tuple[Any, ...]]:
    """Run `query` on the driver's own cursor and return its plain tuples.

    The selected columns need no result processing (text and floats), so skipping SQLAlchemy's `Row`
    construction saves about a third of the read's CPU for ~15 rows per incident.
    """
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params: Any = compiled.params
    if compiled.positional:
        params = tuple(params[name] for name in compiled.positiontup or ())
    cursor = conn.connection.cursor()
    try:
        cursor.execute(str(compiled), params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _prefetched(pages: Iterator[Page], depth: int = 2) -> Iterator[Page]:
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


def _build_page(
    headers: list[Header], rows: Sequence[EventRow], catalog: Catalog, reward: RewardConfig
) -> list[Trajectory]:
    # Rows come sorted by incident id: groupby slices them in C, no per-row Python work.
    timelines = {incident_id: list(group) for incident_id, group in groupby(rows, itemgetter(0))}
    no_events: list[EventRow] = []
    return [build_trajectory(h, timelines.get(h.id, no_events), catalog, reward) for h in headers]


_WORKER: dict[str, Any] = {}


def _start_worker(url: str, catalog: Catalog, reward: RewardConfig) -> None:
    """Set up a mining worker process: its own engine on the store, the catalog and reward."""
    from incidents_db.db import make_engine

    action_index = {action_id: index for index, action_id in enumerate(catalog.ids)}
    _WORKER.update(engine=make_engine(url), catalog=catalog, reward=reward, page=PageBuilder(action_index))


def _columns(trajectories: list[Trajectory], page: PageBuilder) -> PageColumns:
    for trajectory in trajectories:
        if trajectory.steps:
            page.add(trajectory)
    return page.result()


def _mine_page(headers: list[Header]) -> PageColumns:
    """Read one page's events, build its trajectories and their dataset columns (in a worker process)."""
    engine: sa.Engine = _WORKER["engine"]
    with engine.connect() as conn:
        rows = _driver_rows(conn, _events_query(conn.dialect.name, [h.id for h in headers]))
    return _columns(_build_page(headers, rows, _WORKER["catalog"], _WORKER["reward"]), _WORKER["page"])


def default_workers() -> int:
    """Return how many processes mine a large store by default: none on fewer than 4 cores.

    Workers mine without the reader thread's overlap and pay for pickling and merging: on 2 cores they
    cost about twice the CPU for 10-15 % less wall time (benchmarks/bench_store.py), which a shared
    machine should not pay by default. From 4 cores on, one worker per core but one.
    """
    cores = os.cpu_count() or 1
    return 0 if cores < 4 else min(MAX_WORKERS, cores - 1)


def _parallel_ok(engine: sa.Engine) -> bool:
    # Workers open their own connections: an in-memory SQLite store exists only in this process.
    return engine.dialect.name != "sqlite" or engine.url.database not in (None, "", ":memory:")


def _pages_in_workers(
    engine: sa.Engine,
    since: Watermark | None,
    page_size: int,
    workers: int,
    catalog: Catalog,
    reward: RewardConfig,
    *,
    wait: bool = False,
) -> Iterator[tuple[list[Header], PageColumns]]:
    """Yield (headers, dataset columns) per page, in order, with the pages mined by worker processes.

    This process streams the headers and merges; each worker reads a page's events on its own
    connection, builds the trajectories and their columns (with page-local vocabularies, so the merge
    is a few array operations). Until the workers are up (they start in the background), pages are
    mined here. At most two pages per worker are in flight.
    """
    here = PageBuilder({action_id: index for index, action_id in enumerate(catalog.ids)})
    url = engine.url.render_as_string(hide_password=False)
    order: deque[list[Header]] = deque()  # pages handed out, in order: results come back in this order
    with engine.connect() as conn:

        def pages() -> Iterator[list[Header]]:
            for headers in _header_pages(conn, since, page_size):
                order.append(headers)
                yield headers

        def mine_here(headers: list[Header]) -> PageColumns:
            rows = _driver_rows(conn, _events_query(conn.dialect.name, [h.id for h in headers]))
            return _columns(_build_page(headers, rows, catalog, reward), here)

        broken = MiningError("a mining worker process died (out of memory?); run again with --workers 0")
        for page in in_workers(
            pages(), _mine_page, mine_here, workers=workers, broken=broken,
            initializer=_start_worker, initargs=(url, catalog, reward), wait=wait,
        ):  # fmt: skip
            yield order.popleft(), page


def iter_trajectories(
    *,
    engine: sa.Engine,
    since: Watermark | None = None,
    catalog: Catalog | None = None,
    reward: RewardConfig | None = None,
    page_size: int = PAGE,
) -> Iterator[tuple[Trajectory, Watermark]]:
    """Yield each resolved incident changed after `since` as a trajectory, with its watermark position.

    Incidents are read in (updated_at, id) order: `updated_at` moves both when an incident resolves
    and when history is imported, so late-imported old incidents are mined too.
    """
    catalog = catalog or builtin_catalog()
    reward = reward or RewardConfig()
    for headers, rows in _prefetched(_pages(engine, since, page_size)):
        for header, trajectory in zip(headers, _build_page(headers, rows, catalog, reward), strict=True):
            yield trajectory, Watermark(header.updated_at, header.id)


def _large(engine: sa.Engine, since: Watermark | None, threshold: int) -> bool:
    """Return whether more than ``threshold`` incidents wait to be mined (counts no further)."""
    with engine.connect() as conn:
        probe = _headers_query(conn.dialect.name, since).limit(threshold + 1).subquery()
        return int(conn.execute(sa.select(sa.func.count()).select_from(probe)).scalar_one()) > threshold


def mine(
    *,
    engine: sa.Engine,
    out_dir: Path,
    full: bool = False,
    catalog: Catalog | None = None,
    reward: RewardConfig | None = None,
    on_progress: Callable[[int], None] | None = None,
    workers: int | None = None,
    parallel_after: int = PARALLEL_AFTER,
    page_size: int = PAGE,
    _wait_for_workers: bool = False,
) -> MiningSummary:
    """Mine resolved incidents into `out_dir/trajectories-<stamp>.npz` and advance the watermark.

    Args:
        engine: the store (schema current).
        out_dir: where the dataset files go (created when missing).
        full: ignore the watermark and mine every resolved incident; older datasets in `out_dir` are
            removed once the new one is written, so the directory holds one consistent dataset.
        catalog: the action catalog that decides mapped vs unmapped (default: built-ins).
        reward: reward constants (default `RewardConfig()`).
        on_progress: called with the number of incidents mined so far, once per page.
        workers: processes that read and build pages of a large store (None: `default_workers()`;
            0: all in this process).
        parallel_after: incidents to mine above which the workers are used.
        page_size: incidents per page (a worker's unit of work, and how often progress is reported).
        _wait_for_workers: send every page to the workers, none to this process while they start
            (tests use it to be sure the workers' path ran).

    Returns:
        The summary; when nothing new was resolved no file is written and `out` is the directory.
    """
    catalog = catalog or builtin_catalog()
    reward = reward or RewardConfig()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MiningError(f"cannot create the output directory {out_dir}: {exc.strerror or exc}") from None
    with engine.connect() as conn:
        since = None if full else read_watermark(connection=conn)
    builder = DatasetBuilder(catalog)
    incidents = 0
    last: Watermark | None = None
    n_workers = default_workers() if workers is None else max(0, workers)
    parallel = n_workers > 0 and _parallel_ok(engine) and _large(engine, since, parallel_after)
    try:
        with relaxed_gc():
            if parallel:
                pages = _pages_in_workers(
                    engine, since, page_size, n_workers, catalog, reward, wait=_wait_for_workers
                )
                for headers, page in pages:
                    builder.merge(page)
                    incidents += len(headers)
                    last = Watermark(headers[-1].updated_at, headers[-1].id)
                    if on_progress is not None:
                        on_progress(incidents)
            else:
                for trajectory, position in iter_trajectories(
                    engine=engine, since=since, catalog=catalog, reward=reward, page_size=page_size
                ):
                    incidents += 1
                    last = position
                    if trajectory.steps:
                        builder.add(trajectory)
                    if incidents % page_size == 0:
                        builder.flush()
                        if on_progress is not None:
                            on_progress(incidents)
        if on_progress is not None:
            on_progress(incidents)
        if last is None:
            return MiningSummary(0, 0, 0, 0, str(out_dir))
        stamp = utcnow().strftime("%Y%m%dT%H%M%S%fZ")
        path = out_dir / f"trajectories-{stamp}.npz"
        meta = {
            "format": DATASET_FORMAT,
            "created_at": iso(utcnow()),
            "full": full,
            "since": None
            if since is None
            else {"updated_at": iso(since.updated_at), "id": since.incident_id},
            "reward": asdict(reward),
        }
        try:
            builder.finish(path, meta)
        except OSError as exc:
            raise MiningError(f"cannot write the dataset {path}: {exc.strerror or exc}") from None
    finally:
        builder.close()
    summary = MiningSummary(incidents, builder.trajectories, builder.steps, builder.unmapped, str(path))
    path.with_suffix(".json").write_text(
        json.dumps({**summary.as_json(), **meta}, indent=2) + "\n", encoding="utf-8"
    )
    with engine.begin() as conn:
        write_watermark(connection=conn, watermark=last)
    if full:
        for old in out_dir.glob("trajectories-*"):
            if old.stem != path.stem and old.suffix in (".npz", ".json"):
                old.unlink(missing_ok=True)
    return summary
