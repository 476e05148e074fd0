"""Mining a large store in worker processes, a page each, collected in order.

A large store (more than `PARALLEL_AFTER` incidents to mine) is read and built in worker processes:
this process streams the headers and merges the pages' dataset columns, so the dataset is the same
as one process makes.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from itertools import groupby
from operator import itemgetter
from typing import Any

import sqlalchemy as sa

from incidents_db.dataset import PageBuilder, PageColumns
from incidents_db.errors import MiningError
from incidents_db.mining_reads import Header, Watermark, event_rows, header_pages
from incidents_db.perf import in_workers
from incidents_db.trajectories import EventRow, RewardConfig, Trajectory, build_trajectory
from playbooks.catalog import Catalog

MAX_WORKERS = 4


def build_page(
    headers: list[Header], rows: Sequence[EventRow], catalog: Catalog, reward: RewardConfig
) -> list[Trajectory]:
    """Build the trajectories of one page of headers from its event rows (sorted by incident id)."""
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
    page.add_all(t for t in trajectories if t.steps)
    return page.result()


def _mine_page(headers: list[Header]) -> PageColumns:
    """Read one page's events, build its trajectories and their dataset columns (in a worker process)."""
    engine: sa.Engine = _WORKER["engine"]
    with engine.connect() as conn:
        rows = event_rows(conn, [h.id for h in headers])
    return _columns(build_page(headers, rows, _WORKER["catalog"], _WORKER["reward"]), _WORKER["page"])


def default_workers() -> int:
    """Return how many processes mine a large store by default: none on fewer than 4 cores.

    Workers mine without the reader thread's overlap and pay for pickling and merging: on 2 cores they
    cost about twice the CPU for 10-15 % less wall time (benchmarks/bench_store.py), which a shared
    machine should not pay by default. From 4 cores on, one worker per core but one.
    """
    cores = os.cpu_count() or 1
    return 0 if cores < 4 else min(MAX_WORKERS, cores - 1)


def parallel_ok(engine: sa.Engine) -> bool:
    """Return whether worker processes can reach the store behind `engine`."""
    # Workers open their own connections: an in-memory SQLite store exists only in this process.
    return engine.dialect.name != "sqlite" or engine.url.database not in (None, "", ":memory:")


def pages_in_workers(
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
            for headers in header_pages(conn, since, page_size):
                order.append(headers)
                yield headers

        def mine_here(headers: list[Header]) -> PageColumns:
            rows = event_rows(conn, [h.id for h in headers])
            return _columns(build_page(headers, rows, catalog, reward), here)

        broken = MiningError("a mining worker process died (out of memory?); run again with --workers 0")
        for page in in_workers(
            pages(), _mine_page, mine_here, workers=workers, broken=broken,
            initializer=_start_worker, initargs=(url, catalog, reward), wait=wait,
        ):  # fmt: skip
            yield order.popleft(), page
