"""Keep the bot's service graph current: rediscover it on a schedule and swap it into the services.

`serve --discover-prometheus URL` discovers the graph once at start (`discover_to_file`), then an
APScheduler job (`schedule_refresh`) runs `TopologyRefresher.refresh` every ``topology_refresh_s``:
a new graph replaces ``services.topology`` in one assignment (readers see the old or the new one,
never a mix), the change is logged in one line, and ``services.topology_status`` (shown by /healthz)
records when it was refreshed, the last change and the last error. A failed refresh keeps the old graph.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.feeds.discover import DiscoverOptions, discover
from bot.feeds.errors import DiscoveryError
from bot.feeds.graph_diff import GraphDiff, diff_graphs
from bot.services import Services
from sim.errors import TopologyError
from sim.topology import Topology, parse_topology

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger("remediate.topology")
JOB_ID = "refresh-service-graph"


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def write_graph(document: dict[str, Any], out: Path) -> Topology:
    """Check that ``document`` loads as a topology, then write it to ``out`` atomically; return it loaded."""
    topology = parse_topology(document, source=str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out)
    return topology


def discover_to_file(options: DiscoverOptions, out: Path) -> Topology:
    """Discover the graph and write it to ``out``; raise DiscoveryError (or TopologyError) when that fails."""
    return write_graph(discover(options), out)


@dataclass
class TopologyRefresher:
    """Rediscovers the graph into ``out`` and swaps it into ``services``."""

    services: Services
    options: DiscoverOptions
    out: Path

    def refresh(self) -> GraphDiff | None:
        """Run one discovery; return what changed, or None when it failed (the old graph stays)."""
        status = self.services.topology_status
        now = self.services.clock()
        try:
            new = discover_to_file(self.options, self.out)
        except (DiscoveryError, TopologyError, OSError) as exc:
            log.warning("service graph refresh failed, keeping the current graph: %s", exc)
            status.update(error=str(exc), failed_at=_iso(now))
            return None
        change = diff_graphs(self.services.topology, new)
        self.services.topology = new  # one assignment: the swap readers see whole
        status.update(refreshed_at=_iso(now), error=None)
        if not change.empty:
            log.info("service graph changed: %s", change.summary())
            status["last_change"] = {"at": _iso(now), "summary": change.summary(), **change.as_json()}
        return change

    def job(self) -> None:
        """The scheduled job: refresh, never raising (the scheduler must keep running)."""
        try:
            self.refresh()
        except Exception:  # a bug must not stop future refreshes
            log.exception("service graph refresh failed")


def schedule_refresh(scheduler: BackgroundScheduler, refresher: TopologyRefresher, every_s: float) -> None:
    """Add the refresh job to a running scheduler (first run one interval from now)."""
    scheduler.add_job(
        refresher.job,
        "interval",
        seconds=every_s,
        id=JOB_ID,
        max_instances=1,
        coalesce=True,
        replace_existing=True,
    )
