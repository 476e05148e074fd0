"""The topology generator: realistic random graphs of an exact size, deterministic by seed."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest

from sim.errors import TopologyError
from sim.generator import generate_topology
from sim.resolve import resolve_topology
from sim.topology import load_topology


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topo.json"
    path.write_text(text)
    return path


@pytest.mark.parametrize("size", [5, 40, 200, 500, 2000])
def test_generator_makes_realistic_graphs_of_exact_size(size: int) -> None:
    topo = generate_topology(size, seed=3)
    g = topo.graph()
    assert topo.n_services == size
    assert "frontend" in topo.kinds and "database" in topo.kinds
    frontends = [s for s, k in zip(topo.services, topo.kinds, strict=True) if k == "frontend"]
    reached = set().union(*(nx.descendants(g, f) | {f} for f in frontends))
    assert len(reached) == size  # every service sees traffic
    if size >= 40:
        assert {"cache", "queue"} <= set(topo.kinds)
        dbs = [s for s, k in zip(topo.services, topo.kinds, strict=True) if k == "database"]
        assert any(g.in_degree(d) > 1 for d in dbs)  # shared datastores


def test_generator_is_deterministic_by_seed() -> None:
    a, b, c = generate_topology(60, seed=1), generate_topology(60, seed=1), generate_topology(60, seed=2)
    assert a.to_node_link() == b.to_node_link()
    assert a.to_node_link() != c.to_node_link()


def test_generator_refuses_sizes_out_of_range() -> None:
    with pytest.raises(TopologyError, match=r"5\.\.2000"):
        generate_topology(4)
    with pytest.raises(TopologyError, match=r"5\.\.2000"):
        resolve_topology("generated:2001")


def test_generated_topology_saved_to_a_file_loads_back(tmp_path: Path) -> None:
    topo = generate_topology(30, seed=9)
    path = write(tmp_path, json.dumps(topo.to_node_link()))
    again = load_topology(path)
    assert again.services == topo.services and again.weights.tolist() == pytest.approx(
        topo.weights.tolist(), abs=1e-3
    )
