"""Generated variations of the team's own graph: the same services, a few calls more or fewer, other replicas.

Evaluating on variations as well as on the graph itself keeps a candidate from winning on one graph's
quirks: a team's graph changes between deploys, and the policy should not care.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.topology import DATASTORE_KINDS, Topology, parse_topology

ADD_SHARE = 0.2  # extra calls, as a share of the graph's edges
DROP_SHARE = 0.1  # calls removed (a caller keeps at least one callee)


def _drop(edges: list[dict[str, Any]], rng: np.random.Generator) -> list[dict[str, Any]]:
    out_degree: dict[str, int] = {}
    for e in edges:
        out_degree[e["source"]] = out_degree.get(e["source"], 0) + 1
    kept = []
    for i in rng.permutation(len(edges)).tolist():
        edge = edges[i]
        if rng.random() < DROP_SHARE and out_degree[edge["source"]] > 1:
            out_degree[edge["source"]] -= 1
            continue
        kept.append(edge)
    return kept


def _add(doc: dict[str, Any], edges: list[dict[str, Any]], rng: np.random.Generator) -> list[dict[str, Any]]:
    nodes = doc["nodes"]
    callers = [n["id"] for n in nodes if n["kind"] not in DATASTORE_KINDS]
    present = {(e["source"], e["target"]) for e in edges}
    wanted = max(1, round(ADD_SHARE * len(edges)))
    for _ in range(wanted * 4):  # a dense graph may have few free pairs: try a bounded number of times
        if wanted == 0 or not callers:
            break
        source = callers[int(rng.integers(len(callers)))]
        target = nodes[int(rng.integers(len(nodes)))]["id"]
        if source == target or (source, target) in present:
            continue
        present.add((source, target))
        edges.append({"source": source, "target": target, "weight": round(float(rng.uniform(0.2, 1.0)), 4)})
        wanted -= 1
    return edges


def variations(topology: Topology, count: int, *, seed: int = 0) -> list[Topology]:
    """Return ``count`` variations of ``topology`` (deterministic by seed): calls added and dropped, replicas moved."""
    out = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        doc = topology.to_node_link()
        edges = _add(doc, _drop(list(doc["edges"]), rng), rng)
        for node in doc["nodes"]:
            node["replicas"] = max(1, int(node["replicas"]) + int(rng.integers(-1, 2)))
        doc["edges"] = sorted(edges, key=lambda e: (e["source"], e["target"]))
        name = f"{topology.name}-var{i + 1}"
        out.append(parse_topology(doc, source=f"variation {i + 1} of {topology.name}", name=name))
    return out


def _depth(tier: str, kind: str) -> float:
    """Return how deep a node sits: frontends first, then the generator's layers, datastores last."""
    if kind == "frontend":
        return -1.0
    if kind in DATASTORE_KINDS:
        return float("inf")
    return float(tier.removeprefix("layer-")) if tier.startswith("layer-") and tier[6:].isdigit() else 0.0


def densify(topology: Topology, ratio: float, *, seed: int = 0, name: str | None = None) -> Topology:
    """Return ``topology`` with calls added until it has at least ``ratio`` call edges per service.

    A dense mesh: each new call goes from a frontend or service to a service deeper than it or to a
    datastore (fan-out grows downwards, as in a real mesh), drawn with ``seed``; existing calls stay.
    Stops early when no such pair is left.
    """
    doc = topology.to_node_link()
    nodes = doc["nodes"]
    depth = {n["id"]: _depth(str(n.get("tier", "")), str(n["kind"])) for n in nodes}
    present = {(e["source"], e["target"]) for e in doc["edges"]}
    free = sorted(
        (a["id"], b["id"])
        for a in nodes
        for b in nodes
        if a["kind"] not in DATASTORE_KINDS
        and depth[a["id"]] < depth[b["id"]]
        and (a["id"], b["id"]) not in present
    )
    wanted = max(0, int(np.ceil(ratio * len(nodes))) - len(present))
    rng = np.random.default_rng([seed, len(nodes), wanted])
    added = [free[i] for i in rng.permutation(len(free))[:wanted].tolist()]
    doc["edges"] = sorted(
        [*doc["edges"], *({"source": a, "target": b} for a, b in added)],
        key=lambda e: (e["source"], e["target"]),
    )
    label = name or f"{topology.name}-dense"
    return parse_topology(doc, source=f"{topology.name} with {len(added)} calls added", name=label)
