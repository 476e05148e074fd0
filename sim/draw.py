"""Draw a topology and a fault spreading through it to a PNG (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from sim.core import BatchCore
from sim.dynamics import M_ERR
from sim.faults import FaultSpec, sample_scenario
from sim.topology import Topology

KIND_COLOURS = {
    "frontend": "#4c72b0",
    "service": "#8c8c8c",
    "database": "#937860",
    "cache": "#dd8452",
    "queue": "#55a868",
}


def _layers(topology: Topology) -> dict[str, int]:
    """Return a layer per service: hops from the nearest entry point (frontends and uncalled services)."""
    g = topology.graph()
    entries = [s for s, k in zip(topology.services, topology.kinds, strict=True) if k == "frontend"]
    entries += [s for s in topology.services if g.in_degree(s) == 0 and s not in entries]
    depth = nx.multi_source_dijkstra_path_length(g, entries or [topology.services[0]], weight=lambda *_: 1)
    deepest = max(depth.values(), default=0)
    return {s: int(depth.get(s, deepest + 1)) for s in topology.services}


def _positions(topology: Topology) -> dict[str, tuple[float, float]]:
    """Lay services out in rows by layer, staggering crowded rows so labels stay readable."""
    rows: dict[int, list[str]] = {}
    for name, layer in sorted(_layers(topology).items(), key=lambda kv: (kv[1], kv[0])):
        rows.setdefault(layer, []).append(name)
    pos: dict[str, tuple[float, float]] = {}
    for layer, names in rows.items():
        xs = np.linspace(-1.0, 1.0, len(names)) if len(names) > 1 else np.zeros(1)
        for i, (name, x) in enumerate(zip(names, xs.tolist(), strict=True)):
            stagger = 0.5 * (i % 2) if len(names) > 6 else 0.0
            pos[name] = (x, -2.0 * float(layer) - stagger)
    return pos


def draw_incident(
    topology: Topology,
    faults: Sequence[FaultSpec | Mapping[str, Any]],
    out: Path,
    *,
    seed: int = 0,
) -> Path:
    """Write a two-panel PNG: the topology by kind, then error rates once the faults have spread."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    core = BatchCore(topology, 1, seed=seed)
    scenario = sample_scenario(topology, core.rng, faults=faults, herring_p=0.0, missing_telemetry_p=0.0)
    core.reset(scenarios=[scenario])
    err = core.true[0, M_ERR]
    g = topology.graph()
    pos = _positions(topology)
    causes = {f.target for f in scenario.faults}
    alerting = {topology.services[n] for n in np.flatnonzero(core.alerts[0].any(axis=0))}
    big = topology.n_services > 60
    size = 60 if big else 500
    fig, axes = plt.subplots(1, 2, figsize=(16, 7))
    ax = axes[0]
    nx.draw_networkx_edges(g, pos, ax=ax, alpha=0.35, arrowsize=8, node_size=size)
    nx.draw_networkx_nodes(
        g,
        pos,
        ax=ax,
        node_size=size,
        node_color=[KIND_COLOURS[k] for k in topology.kinds],
        edgecolors="black",
    )
    if not big:
        nx.draw_networkx_labels(g, pos, ax=ax, font_size=7)
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=k) for k, c in KIND_COLOURS.items()]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=5, fontsize=8)
    ax.set_title(
        f"{topology.name}: {topology.n_services} services, {topology.n_edges} calls (A -> B: A calls B)"
    )
    ax.axis("off")
    ax = axes[1]
    nx.draw_networkx_edges(g, pos, ax=ax, alpha=0.35, arrowsize=8, node_size=size)
    nodes = nx.draw_networkx_nodes(
        g,
        pos,
        ax=ax,
        node_size=size,
        node_color=[float(err[topology.index[s]]) for s in g.nodes],
        cmap="Reds",
        vmin=0.0,
        vmax=1.0,
        edgecolors=["blue" if s in causes else ("red" if s in alerting else "black") for s in g.nodes],
        linewidths=[3.5 if s in causes else (2.0 if s in alerting else 0.8) for s in g.nodes],
    )
    if not big:
        nx.draw_networkx_labels(g, pos, ax=ax, font_size=7)
    fig.colorbar(nodes, ax=ax, shrink=0.6, label="error rate (downstream failures included)")
    title = ", ".join(f"{f.kind} on {f.target}" for f in scenario.faults)
    ax.set_title(f"{title}\nblue ring: cause; red ring: alert firing; fill: error rate")
    ax.axis("off")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
