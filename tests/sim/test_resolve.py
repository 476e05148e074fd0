"""Resolving a topology argument: built-in names, generated:N[:SEED] specs and files."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.errors import TopologyError
from sim.generator import generate_topology
from sim.resolve import resolve_topology
from sim.topology import builtin_topology


def test_missing_file_and_unknown_name_are_clear(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="no such file"):
        resolve_topology(str(tmp_path / "nope.json"))
    with pytest.raises(TopologyError, match="not a built-in"):
        resolve_topology("online-boutiqe")


def test_names_and_generated_specs_resolve_to_the_same_topology_as_their_builders() -> None:
    assert resolve_topology("online-boutique") is builtin_topology("online-boutique")
    assert resolve_topology("generated:30:2").to_node_link() == generate_topology(30, seed=2).to_node_link()
    assert resolve_topology("generated:12").to_node_link() == generate_topology(12, seed=0).to_node_link()
    topology = builtin_topology("hotel-reservation")
    assert resolve_topology(topology) is topology


@pytest.mark.parametrize("spec", ["generated:", "generated:x", "generated:10:-1", "generated:10:1:2"])
def test_bad_generated_specs_are_refused_with_the_expected_form(spec: str) -> None:
    with pytest.raises(TopologyError, match=r"expected generated:SIZE\[:SEED\]"):
        resolve_topology(spec)
