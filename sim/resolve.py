"""Turning a topology argument (built-in name, ``generated:N[:SEED]`` spec, file path) into a Topology.

It sits above both `sim.topology` (files and built-ins) and `sim.generator` (random topologies), so
neither of those imports the other's caller.
"""

from __future__ import annotations

from pathlib import Path

from sim.errors import TopologyError
from sim.generator import generate_topology
from sim.topology import Topology, builtin_names, builtin_topology, load_topology


def resolve_topology(name_or_path: str | Path | Topology) -> Topology:
    """Return a Topology from a built-in name, a ``generated:N[:SEED]`` spec, or a node-link JSON file path.

    ``generated:40:7`` builds a random 40-service topology with seed 7 (seed 0 when left out).
    """
    if isinstance(name_or_path, Topology):
        return name_or_path
    text = str(name_or_path)
    if isinstance(name_or_path, str) and text in builtin_names():
        return builtin_topology(text)
    if text.startswith("generated:"):
        parts = text.split(":")
        try:
            size = int(parts[1])
            seed = int(parts[2]) if len(parts) > 2 else 0
            if seed < 0 or len(parts) > 3:
                raise ValueError(seed)
        except (IndexError, ValueError):
            raise TopologyError(
                f"bad generated topology spec {text!r}; expected generated:SIZE[:SEED] (SEED >= 0)"
            ) from None
        return generate_topology(size, seed=seed)
    path = Path(text)
    if not path.exists() and path.suffix != ".json" and "/" not in text:
        raise TopologyError(
            f"unknown topology {text!r}: not a built-in ({', '.join(builtin_names())}), "
            "not generated:SIZE[:SEED], and no such file"
        )
    return load_topology(path)
