"""Compare two service graphs: nodes and edges added and removed, nodes whose kind changed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim.topology import Topology


@dataclass(frozen=True)
class GraphDiff:
    """What changed from an old graph to a new one (each list sorted)."""

    nodes_added: tuple[str, ...]
    nodes_removed: tuple[str, ...]
    edges_added: tuple[tuple[str, str], ...]
    edges_removed: tuple[tuple[str, str], ...]
    kinds_changed: tuple[tuple[str, str, str], ...]  # (node, old kind, new kind)

    @property
    def empty(self) -> bool:
        """Return whether nothing changed."""
        return not (
            self.nodes_added
            or self.nodes_removed
            or self.edges_added
            or self.edges_removed
            or self.kinds_changed
        )

    def as_json(self) -> dict[str, Any]:
        """Return the diff in the shape `remediate topology diff --json` prints and /healthz shows."""
        return {
            "nodes_added": list(self.nodes_added),
            "nodes_removed": list(self.nodes_removed),
            "edges_added": [{"source": a, "target": b} for a, b in self.edges_added],
            "edges_removed": [{"source": a, "target": b} for a, b in self.edges_removed],
            "kinds_changed": [{"id": n, "old": o, "new": k} for n, o, k in self.kinds_changed],
        }

    def summary(self) -> str:
        """Return one line: ``+2 nodes (a, b), -1 edge (c -> d)``; ``no change`` when empty."""
        parts = []
        for sign, what, items in (
            ("+", "node", list(self.nodes_added)),
            ("-", "node", list(self.nodes_removed)),
            ("+", "edge", [f"{a} -> {b}" for a, b in self.edges_added]),
            ("-", "edge", [f"{a} -> {b}" for a, b in self.edges_removed]),
            ("~", "kind", [f"{n}: {o} -> {k}" for n, o, k in self.kinds_changed]),
        ):
            if items:
                shown = ", ".join(items[:5]) + (", ..." if len(items) > 5 else "")
                parts.append(f"{sign}{len(items)} {what}{'s' if len(items) > 1 else ''} ({shown})")
        return "; ".join(parts) or "no change"


def edges_of(topology: Topology) -> set[tuple[str, str]]:
    """Return the (caller, callee) pairs of a topology."""
    names = topology.services
    return {(names[s], names[d]) for s, d in zip(topology.src.tolist(), topology.dst.tolist(), strict=True)}


def diff_graphs(old: Topology | None, new: Topology) -> GraphDiff:
    """Return what changed from ``old`` (None: an empty graph) to ``new``."""
    old_nodes = dict(zip(old.services, old.kinds, strict=True)) if old is not None else {}
    new_nodes = dict(zip(new.services, new.kinds, strict=True))
    old_edges = edges_of(old) if old is not None else set()
    new_edges = edges_of(new)
    return GraphDiff(
        nodes_added=tuple(sorted(new_nodes.keys() - old_nodes.keys())),
        nodes_removed=tuple(sorted(old_nodes.keys() - new_nodes.keys())),
        edges_added=tuple(sorted(new_edges - old_edges)),
        edges_removed=tuple(sorted(old_edges - new_edges)),
        kinds_changed=tuple(
            (n, old_nodes[n], new_nodes[n])
            for n in sorted(old_nodes.keys() & new_nodes.keys())
            if old_nodes[n] != new_nodes[n]
        ),
    )
