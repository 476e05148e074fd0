"""The plain-input observation builder gives the simulator's features, same values, same order."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np

from sim.core import BatchCore
from sim.faults import ChangeEvent, FaultSpec, Scenario
from sim.observation import ALERTS, EDGE_FEATURES, EDGE_METRIC, FEATURES, GLOBALS, METRICS, build_observation
from sim.policies import Choice, index_of
from sim.resolve import resolve_topology


def test_feature_list_is_documented_in_order() -> None:
    import sim.observation as module

    doc = module.__doc__ or ""
    positions = []
    for name in FEATURES:
        found = re.search(rf"\b{name}\b", doc)
        assert found, name
        positions.append(found.start())
    assert positions == sorted(positions)
    assert len(FEATURES) == 28 and len(GLOBALS) == 3


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
    for i, s in enumerate(topo.services):
        if s in metrics:
            metrics[s]["replicas"] = float(core.state.replicas[0, i])
            metrics[s]["traffic_ratio"] = float(core.traffic_ratio[0, i])
    for e, (caller, callee) in enumerate(zip(topo.src, topo.dst, strict=True)):
        if topo.services[caller] in metrics:
            metrics[topo.services[caller]][EDGE_METRIC + topo.services[callee]] = float(
                core.edge_features[0, e, 0]
            )
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
    assert obs.edge_values is not None and obs.edge_values.shape == (topo.n_edges, len(EDGE_FEATURES))
    np.testing.assert_allclose(obs.edge_values, core.edge_features[0], rtol=1e-6)
    # the bad deploy on rate fails the calls into it; review reports nothing about its own calls
    into_rate = np.flatnonzero(topo.dst == topo.position("rate"))
    assert obs.edge_values[into_rate, 0].min() > 0.1
    assert not obs.edge_values[topo.src == topo.position("review")].any()


def test_a_partition_shows_on_its_edge_only() -> None:
    topo = resolve_topology("online-boutique")
    caller, callee = "checkoutservice", "paymentservice"
    core = BatchCore(topo, 1, seed=3)
    core.reset(scenarios=[Scenario(faults=(FaultSpec("network_partition", callee, caller),))])
    core.step([index_of(core, Choice("wait", None))])
    edge = int(np.flatnonzero((topo.src == topo.position(caller)) & (topo.dst == topo.position(callee)))[0])
    errors = core.edge_features[0, :, 0]
    assert errors[edge] > 0.5
    assert np.delete(errors, edge).max() < 0.2
    # the callee itself looks healthy: only the edge tells which callee is cut off
    assert core.features[0, FEATURES.index("error_rate"), topo.position(callee)] < 0.05


def test_workload_features_tell_look_alike_faults_apart() -> None:
    topo = resolve_topology("hotel-reservation")
    deficit, excess = FEATURES.index("replica_deficit"), FEATURES.index("traffic_excess")
    core = BatchCore(topo, 4, seed=4)
    core.reset(
        scenarios=[
            Scenario(faults=(FaultSpec("scale_to_zero", "memcached-rate"),)),
            Scenario(faults=(FaultSpec("datastore_outage", "memcached-rate"),)),
            Scenario(faults=(FaultSpec("traffic_surge", "rate"),)),
            Scenario(faults=(FaultSpec("noisy_neighbor", "rate"),)),
        ]
    )
    core.step([index_of(core, Choice("wait", None))] * 4)
    cache, rate = topo.position("memcached-rate"), topo.position("rate")
    assert core.features[0, deficit, cache] == 1.0 and core.features[1, deficit, cache] == 0.0
    assert core.features[2, excess, rate] > 0.5 > core.features[3, excess, rate]
    # scaling out is visible too: no deficit, and the live builder reads the same from plain metrics
    obs = build_observation(
        topology=topo,
        metrics={"rate": {"replicas": 0.0, "traffic_ratio": 2.5}, "geo": {"error_rate": 0.1}},
        now=datetime(2026, 3, 2, tzinfo=UTC),
    )
    assert obs.nodes[rate, deficit] == 1.0 and obs.nodes[rate, excess] == np.float32(0.5)
    assert obs.nodes[topo.position("geo"), deficit] == 0.0  # absent reads as normal
    assert obs.nodes[topo.position("geo"), excess] == 0.0


def test_edge_metrics_for_unknown_callees_or_non_edges_are_ignored() -> None:
    topo = resolve_topology("online-boutique")
    obs = build_observation(
        topology=topo,
        metrics={"frontend": {EDGE_METRIC + "cartservice": 0.7, EDGE_METRIC + "ghost": 1.0,
                              EDGE_METRIC + "redis-cart": 1.0, "error_rate": 0.1},
                 "cartservice": {EDGE_METRIC + "redis-cart": 2.5}},
        now=datetime(2026, 3, 2, tzinfo=UTC),
    )  # fmt: skip
    assert obs.edge_values is not None
    pairs = {
        (topo.services[a], topo.services[b]): float(v)
        for (a, b), v in zip(obs.edges, obs.edge_values[:, 0], strict=True)
    }
    assert pairs[("frontend", "cartservice")] == np.float32(0.7)
    assert pairs[("cartservice", "redis-cart")] == 1.0  # clipped to [0, 1]
    assert sum(v > 0 for v in pairs.values()) == 2


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


def test_compiled_encoder_follows_the_documented_scaling() -> None:
    """The numba encoder against the formulas of the sim/observation.py docstring, written in numpy."""
    from sim.observation import STATIC_FEATURES, encode_features, encode_globals, recency

    rng = np.random.default_rng(4)
    b, n = 3, 7
    values = rng.uniform(-0.5, 3.0, (b, len(METRICS), n))
    values[:, 1] = rng.uniform(-10.0, 2e5, (b, n))  # latency in ms, beyond the 100 s cap too
    present = rng.random((b, n)) < 0.7
    alerts = rng.random((b, len(ALERTS), n)) < 0.3
    recent = recency(rng.choice([np.inf, 60.0, 4000.0], size=(b, 3, n)))
    static = rng.random((len(STATIC_FEATURES), n))
    replicas, traffic = rng.uniform(0.0, 2.0, (b, n)), rng.uniform(0.0, 6.0, (b, n))
    got = encode_features(values, present, alerts, recent, static, workload=(replicas, traffic))
    w0 = FEATURES.index("replica_deficit")
    np.testing.assert_allclose(got[:, w0], np.clip(1.0 - replicas, 0, 1) * present, rtol=1e-6)
    np.testing.assert_allclose(got[:, w0 + 1], np.clip((traffic - 1.0) / 3.0, 0, 1) * present, rtol=1e-6)
    assert not encode_features(values, present, alerts, recent, static)[:, w0 : w0 + 2].any()
    want = np.clip(values, 0.0, 1.0)
    want[:, 1] = np.minimum(np.log10(1.0 + np.maximum(values[:, 1], 0.0)) / 5.0, 1.0)
    want[:, 4] = np.clip(values[:, 4], 0.0, 2.0) / 2.0
    want *= present[:, None, :]
    np.testing.assert_allclose(got[:, : len(METRICS)], want, rtol=1e-6)
    assert np.array_equal(got[:, len(METRICS)], ~present)
    assert np.array_equal(got[:, len(METRICS) + 1 : len(METRICS) + 1 + len(ALERTS)], alerts)
    np.testing.assert_allclose(got[:, w0 - 3 : w0], recent, rtol=1e-6)
    np.testing.assert_allclose(
        got[:, -len(STATIC_FEATURES) :], np.broadcast_to(static, (b, *static.shape)), rtol=1e-6
    )
    frontends = np.array([0, 3])
    elapsed = np.array([0.0, 1800.0, 9000.0])
    globs = encode_globals(elapsed, alerts, got, frontends)
    np.testing.assert_allclose(globs[:, 0], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(globs[:, 1], alerts.any(axis=1).sum(axis=1) / n, rtol=1e-6)
    np.testing.assert_allclose(globs[:, 2], got[:, 0, frontends].max(axis=1))
