"""Noisy metrics keep their physical bounds in the simulator, its history and the demo's world (issue 20).

Error rate, CPU, memory, availability and per-call error rates are shares in [0, 1]; p99, saturation
(load / capacity, above 1 when overloaded) and the traffic ratio are at least 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bot.demo.alerts import SimAlert
from bot.demo.world import LiveWorld, WorldOptions
from sim.core import BatchCore
from sim.history import generate_history
from sim.observation import METRICS
from sim.resolve import resolve_topology

SHARES = ("error_rate", "cpu", "memory", "availability")
AT_LEAST_ZERO = ("latency_p99_ms", "saturation", "traffic_ratio", "replicas")


def out_of_bounds(values: Mapping[str, Any]) -> list[str]:
    """Return ``name=value`` for each metric outside its bounds."""
    bad = [
        f"{k}={v}"
        for k, v in values.items()
        if (k in SHARES or k.startswith("error_rate_to:")) and not 0 <= v <= 1
    ]
    return bad + [f"{k}={v}" for k, v in values.items() if k in AT_LEAST_ZERO and not v >= 0]


def test_observed_metrics_stay_in_bounds_over_many_seeded_episodes() -> None:
    shares = [METRICS.index(m) for m in SHARES]
    for name in ("online-boutique", "hotel-reservation"):
        topology = resolve_topology(name)
        for seed in range(4):
            core = BatchCore(topology, 32, seed=seed)
            core.reset()
            rng = np.random.default_rng(seed)
            for _ in range(40):  # random actions, new incidents as episodes end: 4 x 32 x 40 evaluations
                core.step(rng.integers(core.action_space_size, size=32), autoreset=True)
                observed = core.observed
                assert observed[:, shares].min() >= 0.0 and observed[:, shares].max() <= 1.0, (name, seed)
                assert observed.min() >= 0.0 and np.isfinite(observed).all()
                assert core.edge_features[..., 0].min() >= 0.0 and core.edge_features[..., 0].max() <= 1.0
                assert core.traffic_ratio.min() >= 0.0


def test_simulated_history_reports_metrics_in_bounds() -> None:
    for record in generate_history(resolve_topology("online-boutique"), incidents=40, seed=11):
        for event in record["events"]:
            if event["type"] == "metrics":
                assert out_of_bounds(event["values"]) == [], (record["id"], event)


class _Nowhere:
    def send(self, alerts: Sequence[SimAlert], *, group: str) -> bool:
        return True


def test_the_demo_worlds_snapshots_stay_in_bounds() -> None:
    for seed in range(12):
        world = LiveWorld("online-boutique", _Nowhere(), WorldOptions(seed=seed, herrings=True))
        world.fire()
        for _ in range(6):
            for snapshot in world.snapshots():
                assert out_of_bounds(snapshot["values"]) == [], (seed, snapshot)
            world.apply("wait", None, {})
