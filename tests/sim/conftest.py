"""Small hand-made topologies for the simulator tests."""

from __future__ import annotations

from typing import Any

import pytest

from sim.topology import Topology, parse_topology


def chain_document() -> dict[str, Any]:
    """web (frontend) calls api and search; api calls db; search calls db too."""
    return {
        "graph": {"name": "chain"},
        "nodes": [
            {"id": "web", "kind": "frontend"},
            {"id": "api", "kind": "service"},
            {"id": "search", "kind": "service"},
            {"id": "db", "kind": "database"},
        ],
        "edges": [
            {"source": "web", "target": "api"},
            {"source": "web", "target": "search"},
            {"source": "api", "target": "db"},
            {"source": "search", "target": "db"},
        ],
    }


@pytest.fixture
def chain() -> Topology:
    return parse_topology(chain_document(), source="chain")
