"""Trajectory mining: resolved incidents -> trajectories (incidents_db/trajectories.py) -> `.npz` dataset.

Reads are paged and prefetched (incidents_db/mining_reads.py); a watermark in `mining_state` makes
repeated runs incremental. A large store (more than `PARALLEL_AFTER` incidents to mine) is read and
built in worker processes (incidents_db/mining_workers.py), a page each, collected in order: the
dataset is the same as one process makes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from incidents_db.dataset import DATASET_FORMAT, DatasetBuilder
from incidents_db.errors import MiningError
from incidents_db.mining_reads import (
    Watermark,
    headers_query,
    pages,
    prefetched,
    read_watermark,
    write_watermark,
)
from incidents_db.mining_workers import build_page, default_workers, pages_in_workers, parallel_ok
from incidents_db.models import utcnow
from incidents_db.perf import relaxed_gc
from incidents_db.schema import iso
from incidents_db.trajectories import RewardConfig, Trajectory
from playbooks.catalog import Catalog, builtin_catalog

PAGE = 2000
PARALLEL_AFTER = 10_000  # incidents to mine before worker processes are worth their start-up (~1 s)


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
    for headers, rows in prefetched(pages(engine, since, page_size)):
        for header, trajectory in zip(headers, build_page(headers, rows, catalog, reward), strict=True):
            yield trajectory, Watermark(header.updated_at, header.id)


def _large(engine: sa.Engine, since: Watermark | None, threshold: int) -> bool:
    """Return whether more than ``threshold`` incidents wait to be mined (counts no further)."""
    with engine.connect() as conn:
        probe = headers_query(conn.dialect.name, since).limit(threshold + 1).subquery()
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
    n_workers = default_workers() if workers is None else max(0, workers)
    parallel = n_workers > 0 and parallel_ok(engine) and _large(engine, since, parallel_after)
    try:
        with relaxed_gc():
            if parallel:
                incidents, last = _fill_in_workers(
                    builder,
                    engine,
                    since,
                    page_size,
                    n_workers,
                    catalog,
                    reward,
                    on_progress,
                    _wait_for_workers,
                )
            else:
                incidents, last = _fill_here(builder, engine, since, page_size, catalog, reward, on_progress)
        if on_progress is not None:
            on_progress(incidents)
        if last is None:
            return MiningSummary(0, 0, 0, 0, str(out_dir))
        path, meta = _write_dataset(builder, out_dir, since, full, reward)
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


def _fill_in_workers(
    builder: DatasetBuilder,
    engine: sa.Engine,
    since: Watermark | None,
    page_size: int,
    n_workers: int,
    catalog: Catalog,
    reward: RewardConfig,
    on_progress: Callable[[int], None] | None,
    wait: bool,
) -> tuple[int, Watermark | None]:
    """Merge the pages the worker processes mine; return the incidents mined and the last position."""
    incidents = 0
    last: Watermark | None = None
    for headers, page in pages_in_workers(engine, since, page_size, n_workers, catalog, reward, wait=wait):
        builder.merge(page)
        incidents += len(headers)
        last = Watermark(headers[-1].updated_at, headers[-1].id)
        if on_progress is not None:
            on_progress(incidents)
    return incidents, last


def _fill_here(
    builder: DatasetBuilder,
    engine: sa.Engine,
    since: Watermark | None,
    page_size: int,
    catalog: Catalog,
    reward: RewardConfig,
    on_progress: Callable[[int], None] | None,
) -> tuple[int, Watermark | None]:
    """Add every trajectory mined in this process; return the incidents mined and the last position."""
    incidents = 0
    last: Watermark | None = None
    # Page by page (one watermark a page, not one per incident as iter_trajectories yields them).
    for headers, rows in prefetched(pages(engine, since, page_size)):
        builder.add_all(t for t in build_page(headers, rows, catalog, reward) if t.steps)
        incidents += len(headers)
        last = Watermark(headers[-1].updated_at, headers[-1].id)
        if len(headers) == page_size:
            builder.flush()
            if on_progress is not None:
                on_progress(incidents)
    return incidents, last


def _write_dataset(
    builder: DatasetBuilder, out_dir: Path, since: Watermark | None, full: bool, reward: RewardConfig
) -> tuple[Path, dict[str, Any]]:
    """Write the `.npz` dataset with its metadata; return its path and the metadata."""
    stamp = utcnow().strftime("%Y%m%dT%H%M%S%fZ")
    path = out_dir / f"trajectories-{stamp}.npz"
    meta: dict[str, Any] = {
        "format": DATASET_FORMAT,
        "created_at": iso(utcnow()),
        "full": full,
        "since": None if since is None else {"updated_at": iso(since.updated_at), "id": since.incident_id},
        "reward": asdict(reward),
    }
    try:
        builder.finish(path, meta)
    except OSError as exc:
        raise MiningError(f"cannot write the dataset {path}: {exc.strerror or exc}") from None
    return path, meta
