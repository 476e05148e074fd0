"""The plain-input observation builder gives the simulator's features, same values, same order."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np

from sim.core import BatchCore
from sim.faults import ChangeEvent, FaultSpec, Scenario
from sim.observation import ALERTS, FEATURES, GLOBALS, METRICS, build_observation
from sim.policies import Choice, index_of
from sim.topology import resolve_topology


def test_feature_list_is_documented_in_order() -> None:
    import sim.observation as module

    doc = module.__doc__ or ""
    positions = []
    for name in FEATURES:
        found = re.search(rf"\b{name}\b", doc)
        assert found, name
        positions.append(found.start())
    assert positions == sorted(positions)
    assert len(FEATURES) == 26 and len(GLOBALS) == 3


def test_live_timeline_inputs_give_the_simulator_features() -> None:
    topo = resolve_topology("hotel-reservation")
    core = BatchCore(topo, 1, seed=2)
    scenario = Scenario(
        faults=(FaultSpec("bad_deploy", "rate"), FaultSpec("disk_full", "mongodb-geo")),
        changes=(ChangeEvent("deploy", "rate", 900.0), ChangeEvent("config_change", "user", 2000.0)),
        no_telemetry=("review",),
    )
    core.reset(scenarios=[scenario])
    core.step([index_of(core, Choice("restart_service", "search"))])
    core.step([index_of(core, Choice("wait", None))])
    now = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    elapsed = float(core.elapsed_s[0])
    at = lambda age: now - timedelta(seconds=float(age))  # noqa: E731
    metrics = {
        s: {m: float(core.observed[0, j, i]) for j, m in enumerate(METRICS)}
        for i, s in enumerate(topo.services)
        if core.state.present[0, i]
    }
    alerts = [
        {"name": ALERTS[a], "service": topo.services[n], "status": "firing"}
        for a, n in zip(*np.nonzero(core.alerts[0]), strict=True)
    ]
    ages = core.state.ages[0]
    changes = [
        {"type": kind, "service": topo.services[n], "at": at(ages[slot, n]).isoformat()}
        for slot, kind in ((0, "deploy"), (1, "config_change"))
        for n in np.flatnonzero(np.isfinite(ages[slot]))
    ]
    actions = [
        {"target": topo.services[n], "at": at(ages[2, n])} for n in np.flatnonzero(np.isfinite(ages[2]))
    ]
    obs = build_observation(
        topology=topo,
        metrics=metrics,
        alerts=alerts,
        changes=changes,
        actions=actions,
        now=now,
        opened_at=now - timedelta(seconds=elapsed),
    )
    assert obs.services == topo.services
    np.testing.assert_allclose(obs.nodes, core.features[0].T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(obs.globals, core.globals[0], rtol=1e-5, atol=1e-6)
    assert obs.nodes[topo.position("review"), FEATURES.index("telemetry_missing")] == 1.0
    assert obs.nodes[topo.position("rate"), FEATURES.index("recent_deploy")] > 0.5
    assert obs.edges.shape == (topo.n_edges, 2)


def test_unknown_services_and_alert_names_are_ignored() -> None:
    topo = resolve_topology("online-boutique")
    now = datetime(2026, 3, 2, tzinfo=UTC)
    obs = build_observation(
        topology=topo,
        metrics={"ghost": {"error_rate": 1.0}, "frontend": {"error_rate": 0.2}},
        alerts=[{"name": "Weird", "service": "frontend"}, {"name": "HighErrorRate", "service": "ghost"}],
        now=now,
    )
    row = obs.nodes[topo.position("frontend")]
    assert row[FEATURES.index("error_rate")] == np.float32(0.2)
    assert row[FEATURES.index("alert_HighErrorRate")] == 0.0
    assert obs.nodes[topo.position("cartservice"), FEATURES.index("telemetry_missing")] == 1.0
    assert obs.nodes.min() >= 0.0 and obs.nodes.max() <= 1.0
