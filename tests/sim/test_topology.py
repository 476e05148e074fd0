from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest

from sim.errors import TopologyError
from sim.resolve import resolve_topology
from sim.topology import builtin_names, load_topology, parse_topology
from tests.sim.conftest import chain_document


def test_builtins_load_with_their_real_sizes() -> None:
    assert builtin_names() == ("hotel-reservation", "online-boutique")
    boutique = resolve_topology("online-boutique")
    hotel = resolve_topology("hotel-reservation")
    assert (boutique.n_services, boutique.n_edges) == (12, 16)
    assert (hotel.n_services, hotel.n_edges) == (22, 21)
    assert boutique.kind_of("redis-cart") == "cache" and boutique.stateful[boutique.position("redis-cart")]
    assert set(boutique.graph().successors("checkoutservice")) >= {"paymentservice", "cartservice"}


def test_weights_of_a_caller_add_up_to_at_most_one(chain) -> None:
    totals = {}
    for s, w in zip(chain.src.tolist(), chain.weights.tolist(), strict=True):
        totals[s] = totals.get(s, 0.0) + w
    assert totals[chain.position("web")] == pytest.approx(1.0)
    assert totals[chain.position("api")] == pytest.approx(1.0)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topo.json"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: "{not json", "not JSON"),
        (lambda d: {**d, "nodes": []}, "no nodes"),
        (
            lambda d: {**d, "edges": [*d["edges"], {"source": "web", "target": "ghost"}]},
            "unknown node 'ghost'",
        ),
        (lambda d: {**d, "nodes": [*d["nodes"], {"id": "x", "kind": "lambda"}]}, "unknown kind 'lambda'"),
        (
            lambda d: {**d, "nodes": [*d["nodes"], {"id": "api", "kind": "service"}]},
            "duplicate node id 'api'",
        ),
        (lambda d: {**d, "nodes": [*d["nodes"], {"id": "y"}]}, "unknown kind None"),
        (lambda d: [1, 2], "expected a JSON object"),
    ],
)
def test_broken_files_are_refused_with_a_clear_message(tmp_path: Path, mutate, message: str) -> None:
    doc = mutate(chain_document())
    path = write(tmp_path, doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(TopologyError) as err:
        load_topology(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_cycles_are_legal_and_files_work_like_names(tmp_path: Path) -> None:
    doc = chain_document()
    doc["edges"].append({"source": "db", "target": "web"})
    path = write(tmp_path, json.dumps(doc))
    topo = resolve_topology(str(path))
    assert not nx.is_directed_acyclic_graph(topo.graph())
    assert topo.name == "chain"


def test_node_link_written_by_networkx_round_trips(tmp_path: Path) -> None:
    original = resolve_topology("hotel-reservation")
    data = nx.node_link_data(original.graph(), edges="edges")
    again = parse_topology(json.loads(json.dumps(data)), source="x", name="again")
    assert again.services == original.services
    assert again.src.tolist() == original.src.tolist() and again.dst.tolist() == original.dst.tolist()
