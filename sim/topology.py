"""Service topologies: load node-link JSON, check it, and hold it as numpy arrays for the dynamics.

A topology is a directed graph; node = service, edge A -> B = A calls or depends on B. Files use the
node-link JSON networkx writes (``"nodes"`` and ``"edges"``; ``"links"`` is accepted too). Node
attributes: ``kind`` (frontend, service, database, cache, queue; required), ``stateful`` (default: true
for database, cache and queue), ``replicas`` (default by kind), ``tier`` and ``team`` (free text).
Edge attribute ``weight`` (0..1, the share of the caller's requests that need the callee; default 1) is
optional; where a caller's weights add up to more than 1 they are scaled down to add up to 1, so a
request reaches one callee on average and load, latency and failure spread as weighted averages.
Cycles are legal. Self-loops are ignored: a service calling itself has no effect in the model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from playbooks.models import SERVICE_KINDS
from sim.errors import TopologyError

BUILTIN_DIR = Path(__file__).parent / "topologies"
DATASTORE_KINDS = ("database", "cache", "queue")
DEFAULT_REPLICAS = {"frontend": 3, "service": 2, "database": 1, "cache": 1, "queue": 2}
MAX_REPLICAS = 100_000  # replicas are int64 arrays; far past any real deployment, far below overflow


@dataclass(frozen=True, eq=False)
class Topology:
    """A checked service graph with per-service attributes and the edge list as numpy arrays.

    Arrays are indexed by service position in ``services`` (sorted ids); ``src[e] -> dst[e]`` is edge
    ``e`` (edges sorted by source, then target).
    """

    name: str
    services: tuple[str, ...]
    kinds: tuple[str, ...]
    stateful: np.ndarray  # (N,) bool
    replicas: np.ndarray  # (N,) int64, at least 1
    tiers: tuple[str, ...]
    teams: tuple[str, ...]
    src: np.ndarray  # (E,) int64
    dst: np.ndarray  # (E,) int64
    weights: np.ndarray  # (E,) float64 in (0, 1]
    index: Mapping[str, int] = field(repr=False)

    @property
    def n_services(self) -> int:
        """Number of services (nodes)."""
        return len(self.services)

    @property
    def n_edges(self) -> int:
        """Number of call edges."""
        return int(self.src.shape[0])

    def kind_of(self, service: str) -> str:
        """Return the kind of a service, or raise TopologyError naming the services that exist."""
        return self.kinds[self.position(service)]

    def position(self, service: str) -> int:
        """Return the index of a service, or raise TopologyError listing a few that exist."""
        try:
            return self.index[service]
        except KeyError:
            shown = ", ".join(self.services[:8]) + (", ..." if self.n_services > 8 else "")
            raise TopologyError(
                f"topology {self.name!r} has no service {service!r}; it has {shown}"
            ) from None

    def callers(self, position: int) -> np.ndarray:
        """Return the indices of services that call the service at ``position``."""
        return self.src[self.dst == position]

    def callees(self, position: int) -> np.ndarray:
        """Return the indices of services the service at ``position`` calls."""
        return self.dst[self.src == position]

    def graph(self) -> nx.DiGraph:
        """Return the topology as a fresh networkx DiGraph (node and edge attributes included)."""
        g = nx.DiGraph(name=self.name)
        for i, name in enumerate(self.services):
            g.add_node(
                name,
                kind=self.kinds[i],
                stateful=bool(self.stateful[i]),
                replicas=int(self.replicas[i]),
                tier=self.tiers[i],
                team=self.teams[i],
            )
        for s, d, w in zip(self.src.tolist(), self.dst.tolist(), self.weights.tolist(), strict=True):
            g.add_edge(self.services[s], self.services[d], weight=w)
        return g

    def to_node_link(self) -> dict[str, Any]:
        """Return the node-link JSON document for this topology (what `load_topology` reads)."""
        return {
            "directed": True,
            "multigraph": False,
            "graph": {"name": self.name, "edge_meaning": "source calls or depends on target"},
            "nodes": [
                {
                    "id": name,
                    "kind": self.kinds[i],
                    "stateful": bool(self.stateful[i]),
                    "replicas": int(self.replicas[i]),
                    "tier": self.tiers[i],
                    "team": self.teams[i],
                }
                for i, name in enumerate(self.services)
            ],
            "edges": [
                {"source": self.services[s], "target": self.services[d], "weight": round(float(w), 4)}
                for s, d, w in zip(self.src.tolist(), self.dst.tolist(), self.weights.tolist(), strict=True)
            ],
        }


def _node_id(raw: Any, where: str) -> str:
    if isinstance(raw, bool) or not isinstance(raw, str | int) or str(raw) == "":
        raise TopologyError(f"{where}: 'id' must be a non-empty string, got {raw!r}")
    return str(raw)


def _parse_nodes(nodes: list[Any], source: str) -> list[dict[str, Any]]:
    parsed: list[dict[str, Any]] = []
    seen: set[str] = set()
    for pos, node in enumerate(nodes):
        where = f"{source}: nodes[{pos}]"
        if not isinstance(node, dict):
            raise TopologyError(f"{where}: expected an object with 'id' and 'kind', got {node!r}")
        if "id" not in node:
            raise TopologyError(f"{where}: missing 'id'")
        node_id = _node_id(node["id"], where)
        if node_id in seen:
            raise TopologyError(f"{where}: duplicate node id {node_id!r}")
        seen.add(node_id)
        kind = node.get("kind")
        if kind not in SERVICE_KINDS:
            raise TopologyError(
                f"{where} ({node_id}): unknown kind {kind!r}; expected one of {', '.join(SERVICE_KINDS)}"
            )
        stateful = node.get("stateful", kind in DATASTORE_KINDS)
        if not isinstance(stateful, bool):
            raise TopologyError(f"{where} ({node_id}): 'stateful' must be true or false, got {stateful!r}")
        replicas = node.get("replicas", DEFAULT_REPLICAS[kind])
        if isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= MAX_REPLICAS:
            raise TopologyError(
                f"{where} ({node_id}): 'replicas' must be an integer 1..{MAX_REPLICAS}, got {replicas!r}"
            )
        parsed.append(
            {
                "id": node_id,
                "kind": kind,
                "stateful": stateful,
                "replicas": replicas,
                "tier": str(node.get("tier", "")),
                "team": str(node.get("team", "")),
            }
        )
    return parsed


def _parse_edges(edges: list[Any], known: set[str], source: str) -> dict[tuple[str, str], float | None]:
    found: dict[tuple[str, str], float | None] = {}
    for pos, edge in enumerate(edges):
        where = f"{source}: edges[{pos}]"
        if not isinstance(edge, dict) or "source" not in edge or "target" not in edge:
            raise TopologyError(f"{where}: expected an object with 'source' and 'target', got {edge!r}")
        a, b = _node_id(edge["source"], where), _node_id(edge["target"], where)
        for end in (a, b):
            if end not in known:
                raise TopologyError(f"{where}: edge {a} -> {b} names unknown node {end!r}")
        weight = edge.get("weight")
        if weight is not None and (
            isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight <= 1
        ):
            raise TopologyError(f"{where}: 'weight' must be a number in (0, 1], got {weight!r}")
        if a != b:
            found[(a, b)] = None if weight is None else float(weight)
    return found


def parse_topology(data: Any, *, source: str, name: str | None = None) -> Topology:
    """Check a node-link document and build a Topology; raise TopologyError saying what is wrong where."""
    if not isinstance(data, dict):
        raise TopologyError(
            f"{source}: expected a JSON object with 'nodes' and 'edges', got {type(data).__name__}"
        )
    nodes = data.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        raise TopologyError(f"{source}: no nodes; a topology needs a non-empty 'nodes' list")
    edges = data.get("edges", data.get("links", []))
    if not isinstance(edges, list):
        raise TopologyError(f"{source}: 'edges' must be a list of {{'source', 'target'}} objects")
    parsed = sorted(_parse_nodes(nodes, source), key=lambda n: n["id"])
    services = tuple(n["id"] for n in parsed)
    index = {s: i for i, s in enumerate(services)}
    pairs = _parse_edges(edges, set(services), source)
    ordered = sorted(pairs, key=lambda p: (index[p[0]], index[p[1]]))
    src = np.array([index[a] for a, _ in ordered], dtype=np.int64)
    dst = np.array([index[b] for _, b in ordered], dtype=np.int64)
    raw = np.array([1.0 if pairs[p] is None else pairs[p] for p in ordered], dtype=np.float64)
    totals = np.bincount(src, weights=raw, minlength=len(services)) if len(ordered) else np.zeros(0)
    weights = raw / np.maximum(totals[src], 1.0) if len(ordered) else raw
    attrs = data.get("graph")
    graph_attrs: dict[str, Any] = attrs if isinstance(attrs, dict) else {}
    title = name or str(graph_attrs.get("name") or Path(source).stem or "topology")
    return Topology(
        name=title,
        services=services,
        kinds=tuple(n["kind"] for n in parsed),
        stateful=np.array([n["stateful"] for n in parsed], dtype=bool),
        replicas=np.array([n["replicas"] for n in parsed], dtype=np.int64),
        tiers=tuple(n["tier"] for n in parsed),
        teams=tuple(n["team"] for n in parsed),
        src=src,
        dst=dst,
        weights=weights,
        index=index,
    )


def load_topology(path: Path | str) -> Topology:
    """Read a node-link JSON file; raise TopologyError for unreadable, non-JSON or inconsistent files."""
    file = Path(path)
    # A name with a newline or other control character is quoted, so every message stays one line.
    name = str(file) if str(file).isprintable() else repr(str(file))
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TopologyError(
            f"{name}: no such file (built-in topologies: {', '.join(builtin_names())})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TopologyError(f"{name}: cannot read ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TopologyError(f"{name}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise TopologyError(f"{name}: not a topology (JSON nested too deeply)") from None
    return parse_topology(data, source=name)


def builtin_names() -> tuple[str, ...]:
    """Return the names of the built-in topologies, sorted."""
    return tuple(sorted(p.stem for p in BUILTIN_DIR.glob("*.json")))


@cache
def builtin_topology(name: str) -> Topology:
    """Return a built-in topology by name (loaded once)."""
    if name not in builtin_names():
        raise TopologyError(f"unknown built-in topology {name!r}; built-ins: {', '.join(builtin_names())}")
    return load_topology(BUILTIN_DIR / f"{name}.json")
