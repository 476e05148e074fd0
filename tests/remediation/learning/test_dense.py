"""Dense graphs for training and the targets, and the live mask: no rollback without a change to undo."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from remediation.learning.rollout import dense_topologies, training_topology
from remediation.policies.observe import observation_from_record
from remediation.registry.bundle import BUNDLED_DIR, serving_loader
from sim.resolve import resolve_topology

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_the_dense_held_out_graphs_have_two_and_a_half_calls_per_service() -> None:
    graphs = dense_topologies()
    assert [(g.name, g.n_services) for g in graphs] == [("dense-40", 40), ("dense-50", 50), ("dense-60", 60)]
    assert [g.n_edges for g in graphs] == [100, 125, 150]
    assert [g.to_node_link() for g in dense_topologies()] == [g.to_node_link() for g in graphs]


def test_a_share_of_training_graphs_is_dense_and_none_without_it() -> None:
    def ratios(dense: float) -> list[float]:
        rng = np.random.default_rng(5)
        graphs = [training_topology(rng, min_services=30, max_services=40, dense=dense) for _ in range(20)]
        return [g.n_edges / g.n_services for g in graphs]

    assert all(r >= 2.5 for r in ratios(1.0))
    assert not any(r >= 2.5 for r in ratios(0.0))


def _record(*, deploy: bool) -> dict[str, Any]:
    opened = (NOW - timedelta(minutes=3)).isoformat()
    events: list[dict[str, Any]] = [
        {"type": "alert", "name": "ServiceDown", "service": "cartservice", "status": "firing", "at": opened},
        {"type": "alert", "name": "HighErrorRate", "service": "cartservice", "status": "firing", "at": opened},
        {"type": "metrics", "service": "cartservice", "at": opened,
         "values": {"error_rate": 0.4, "availability": 0.5, "latency_p99_ms": 20.0}},
    ]  # fmt: skip
    if deploy:
        events.append(
            {"type": "deploy", "service": "cartservice", "at": (NOW - timedelta(minutes=12)).isoformat()}
        )
    return {"services": ["cartservice"], "opened_at": opened, "events": events}


def test_the_learned_policy_never_offers_a_rollback_without_a_recent_deploy() -> None:
    policy = serving_loader(BUNDLED_DIR, None, "bundled")
    topology = resolve_topology("online-boutique")
    for deploy in (False, True):
        observation, _ = observation_from_record(_record(deploy=deploy), topology=topology, now=NOW)
        mask = policy.encode(observation).mask[0].numpy()
        actions = policy.catalog.service_actions
        at = topology.index["cartservice"] * len(actions) + actions.index("rollback_deploy")
        assert bool(mask[at]) is deploy
        ranked = policy.rank(observation, int(mask.sum()))
        assert (("rollback_deploy", "cartservice") in [(r.action, r.target) for r in ranked]) is deploy
        assert all(
            r.action not in ("rollback_deploy", "revert_config") or r.target == "cartservice" for r in ranked
        )
