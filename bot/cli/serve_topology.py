"""The service graph `remediate serve` runs on: a file (`--topology`) or discovery (`--discover-prometheus`).

Without either `serve` refuses to start and says how to get one; only the demo has a built-in default.
With discovery the graph is written to ``<data_dir>/topology-discovered.json`` (so everything that reads
``settings.topology``, such as the executors' namespaces, reads the discovered file) and rediscovered
every ``topology_refresh_s`` by a scheduled job (`bot.feeds.refresh`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli.common import console, refuse
from bot.feeds.discover import DiscoverOptions
from bot.feeds.errors import DiscoveryError
from bot.feeds.refresh import TopologyRefresher, discover_to_file, schedule_refresh
from bot.services import Services
from bot.settings import Settings, with_overrides
from sim.errors import TopologyError
from sim.resolve import resolve_topology

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

HOW_TO = (
    "no service graph: pass --topology FILE (node-link JSON, e.g. written by `remediate topology discover "
    "--prometheus URL --out FILE`) or --discover-prometheus URL (REMEDIATE_TOPOLOGY / "
    "REMEDIATE_DISCOVER_PROMETHEUS); see docs/topology.md"
)


def discovered_file(settings: Settings) -> Path:
    """Return where `serve` keeps the graph it discovered."""
    return settings.data_dir / "topology-discovered.json"


def discover_options(settings: Settings) -> DiscoverOptions:
    """Return the discovery options the settings name (``discover_prometheus`` must be set)."""
    assert settings.discover_prometheus is not None
    return DiscoverOptions(
        prometheus=settings.discover_prometheus,
        window=settings.discover_window,
        namespaces=tuple(settings.discover_namespaces),
    )


def prepare_graph(settings: Settings) -> Settings:
    """Load or discover the graph before anything starts; refuse with a one-line reason when there is none.

    Returns the settings with ``topology`` naming the file the graph is in.
    """
    if settings.discover_prometheus and settings.topology:
        refuse("not starting: give --topology or --discover-prometheus, not both")
    if settings.discover_prometheus:
        out = discovered_file(settings)
        try:
            graph = discover_to_file(discover_options(settings), out)
        except (DiscoveryError, TopologyError) as exc:
            refuse(f"not starting: {exc}")
        console.print(
            f"remediate: service graph discovered from {settings.discover_prometheus}: {graph.n_services} "
            f"services, {graph.n_edges} edges (in {out}; refreshed every {settings.topology_refresh_s:g} s)",
            highlight=False,
            markup=False,
        )
        return with_overrides(settings, topology=str(out))
    if not settings.topology:
        refuse(f"not starting: {HOW_TO}")
    try:
        graph = resolve_topology(settings.topology)
    except TopologyError as exc:
        refuse(f"not starting: {exc}")
    console.print(
        f"remediate: service graph {graph.name}: {graph.n_services} services, {graph.n_edges} edges",
        highlight=False,
        markup=False,
    )
    return settings


def start_refresh(scheduler: BackgroundScheduler, services: Services) -> TopologyRefresher | None:
    """With discovery configured, note the graph's source and schedule its refresh; return the refresher."""
    settings = services.settings
    if not settings.discover_prometheus:
        services.topology_status.update(source=settings.topology)
        return None
    now = services.clock().isoformat().replace("+00:00", "Z")
    services.topology_status.update(
        source=settings.discover_prometheus, refreshed_at=now, every_s=settings.topology_refresh_s
    )
    refresher = TopologyRefresher(services, discover_options(settings), discovered_file(settings))
    schedule_refresh(scheduler, refresher, settings.topology_refresh_s)
    return refresher
