"""Variations of the team's graph: same services, a few calls more or fewer, deterministic by seed."""

from __future__ import annotations

from sim.resolve import resolve_topology
from sim.variations import variations


def test_variations_keep_the_services_change_the_calls_and_repeat_by_seed() -> None:
    team = resolve_topology("online-boutique")
    made = variations(team, 3, seed=4)
    assert [v.name for v in made] == ["online-boutique-var1", "online-boutique-var2", "online-boutique-var3"]
    edges = {(int(s), int(d)) for s, d in zip(team.src, team.dst, strict=True)}
    for v in made:
        assert v.services == team.services and v.kinds == team.kinds
        assert {(int(s), int(d)) for s, d in zip(v.src, v.dst, strict=True)} != edges
        assert all(len(v.callees(i)) >= 1 for i in range(v.n_services) if len(team.callees(i)) >= 1)
    again = variations(team, 3, seed=4)
    assert [v.to_node_link() for v in again] == [v.to_node_link() for v in made]
    assert variations(team, 1, seed=5)[0].to_node_link() != made[0].to_node_link()


def test_densify_adds_downward_calls_up_to_the_ratio_and_repeats_by_seed() -> None:
    from sim.generator import generate_topology
    from sim.variations import densify

    base = generate_topology(40, seed=100_053)
    dense = densify(base, 2.5, seed=1, name="dense-40")
    assert dense.name == "dense-40" and dense.services == base.services
    assert dense.n_edges == 100 > base.n_edges
    old = {(int(s), int(d)) for s, d in zip(base.src, base.dst, strict=True)}
    new = {(int(s), int(d)) for s, d in zip(dense.src, dense.dst, strict=True)}
    assert old < new
    for s, d in new - old:  # from a frontend or service, never into a frontend
        assert dense.kinds[s] in ("frontend", "service") and dense.kinds[d] != "frontend"
    assert densify(base, 2.5, seed=1).to_node_link()["edges"] == dense.to_node_link()["edges"]
