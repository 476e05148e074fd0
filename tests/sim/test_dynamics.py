"""Failure and latency spread to callers, checked by hand on a four-service graph."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.core import BatchCore
from sim.dynamics import DENSE_MAX, ENTRY_RPS, M_ERR, M_P99, M_UTIL, _spread_to_callees, statics
from sim.faults import FaultSpec, Scenario
from sim.generator import generate_topology
from sim.topology import Topology


def run(topology: Topology, *faults: FaultSpec) -> BatchCore:
    core = BatchCore(topology, 1, seed=0)
    core.reset(scenarios=[Scenario(faults=tuple(faults))])
    return core


def errors(core: BatchCore) -> dict[str, float]:
    return {s: float(core.true[0, M_ERR, i]) for i, s in enumerate(core.topology.services)}


def test_healthy_system_has_no_errors_and_no_alerts(chain: Topology) -> None:
    core = run(chain)
    assert max(errors(core).values()) == 0.0
    assert not core.alerts.any()
    assert core.healthy()[0]


def test_a_bad_deploy_spreads_to_the_caller_by_hand_computed_share(chain: Topology) -> None:
    core = run(chain, FaultSpec("bad_deploy", "api"))
    err = errors(core)
    assert err["api"] == pytest.approx(0.45)  # the fault's own error share
    assert err["db"] == 0.0 and err["search"] == 0.0  # callees and siblings are untouched
    # web sends half its requests through api: 1 - (1 - 0.45) ** 0.5
    assert err["web"] == pytest.approx(1 - math.sqrt(0.55))


def test_a_datastore_outage_breaks_every_caller_and_alerts_far_from_the_cause(chain: Topology) -> None:
    core = run(chain, FaultSpec("datastore_outage", "db"))
    err = errors(core)
    assert all(err[s] > 0.99 for s in ("db", "api", "search", "web"))
    web = chain.position("web")
    assert core.alerts[0, :, web].any()  # the frontend pages, though nothing is wrong with it
    assert core.impact_rate[0] > 0.99


def test_latency_adds_up_along_calls(chain: Topology) -> None:
    calm = run(chain)
    slow = BatchCore(chain, 1, seed=0)
    slow.reset(scenarios=[Scenario(faults=(), herrings=("db",))])  # 400 ms more at db, no errors
    delta = {s: slow.true[0, M_P99, i] - calm.true[0, M_P99, i] for i, s in enumerate(chain.services)}
    assert delta["db"] == pytest.approx(400.0)
    # api and search call db with weight 1; web calls each with weight 1/2
    assert delta["api"] == pytest.approx(400.0)
    assert delta["search"] == pytest.approx(400.0)
    assert delta["web"] == pytest.approx(0.5 * 400.0 + 0.5 * 400.0)
    assert errors(slow)["web"] == 0.0


def test_retries_amplify_load_on_a_failing_service(chain: Topology) -> None:
    calm = run(chain)
    failing = run(chain, FaultSpec("config_error", "db"))
    db = chain.position("db")
    before = failing.true[0, M_UTIL, db]
    for core in (calm, failing):  # callers see the errors, then retry
        core.step([core.action_space_size - 1])  # wait
    assert before == pytest.approx(calm.true[0, M_UTIL, db])
    assert failing.true[0, M_UTIL, db] > 1.5 * calm.true[0, M_UTIL, db]


def test_certificate_expiry_hurts_callers_not_the_service_itself(chain: Topology) -> None:
    core = run(chain, FaultSpec("certificate_expiry", "search"))
    err = errors(core)
    assert err["search"] == 0.0
    assert err["web"] > 0.9
    assert core.true[0, M_ERR, chain.position("api")] == 0.0


def test_a_cold_cache_moves_its_load_onto_the_database() -> None:
    from sim.resolve import resolve_topology

    hotel = resolve_topology("hotel-reservation")
    calm = run(hotel)
    cold = run(hotel, FaultSpec("cache_stampede", "memcached-rate"))
    db = hotel.position("mongodb-rate")
    assert cold.true[0, M_UTIL, db] > 3 * calm.true[0, M_UTIL, db]
    assert cold.true[0, M_UTIL, hotel.position("mongodb-geo")] == pytest.approx(
        calm.true[0, M_UTIL, hotel.position("mongodb-geo")]
    )


def test_batched_core_matches_single_environments() -> None:
    from sim.faults import sample_scenario
    from sim.resolve import resolve_topology

    topo = resolve_topology("hotel-reservation")
    rng = np.random.default_rng(5)
    scenarios = [sample_scenario(topo, rng) for _ in range(4)]
    batch = BatchCore(topo, 4, seed=0)
    batch.reset(scenarios=scenarios)
    for b, sc in enumerate(scenarios):
        single = BatchCore(topo, 1, seed=0)
        single.reset(scenarios=[sc])
        np.testing.assert_allclose(batch.true[b], single.true[0], rtol=1e-9, atol=1e-12)


def test_a_pickled_core_steps_on_exactly_like_the_original() -> None:
    import pickle

    from sim.core import SimConfig
    from sim.resolve import resolve_topology

    core = BatchCore(resolve_topology("online-boutique"), 3, seed=2, config=SimConfig(max_steps=3))
    core.reset()
    copy = pickle.loads(pickle.dumps(core))  # the compiled entry points are bound again on load
    actions = np.random.default_rng(0).integers(0, core.action_space_size, size=(12, 3))
    for row in actions:  # through autoresets: the healthy-row copy writes into the copy's own state
        a, b = core.step(row, autoreset=True), copy.step(row, autoreset=True)
        assert np.array_equal(a.reward, b.reward) and np.array_equal(core.features, copy.features)
    assert np.array_equal(core.state.sev, copy.state.sev) and not np.shares_memory(core.true, copy.true)


def test_autoreset_starts_a_new_incident_on_the_next_step() -> None:
    from sim.core import SimConfig
    from sim.resolve import resolve_topology

    topo = resolve_topology("online-boutique")
    core = BatchCore(topo, 3, seed=1, config=SimConfig(max_steps=2))
    core.reset()
    wait = np.full(3, core.action_space_size - 1)
    core.step(wait, autoreset=True)
    ended = core.step(wait, autoreset=True)
    assert ended.truncated.any() or ended.terminated.any()
    done = ended.truncated | ended.terminated
    before = [core.scenarios[b] for b in range(3)]
    after = core.step(wait, autoreset=True)
    assert (after.reward[done] == 0).all() and not (after.terminated | after.truncated)[done].any()
    assert (core.steps[done] == 0).all() and (core.elapsed_s[done] == 0).all()
    assert all(core.scenarios[b] is not before[b] for b in np.flatnonzero(done))


def test_big_graphs_build_no_dense_operators_and_keep_the_dense_normal_load() -> None:
    # above DENSE_MAX the normal load comes from sweeping the edge list; it equals the dense power series
    small = generate_topology(300, seed=5)
    st = statics(small)
    entry = np.zeros(small.n_services)
    entry[st.frontends] = ENTRY_RPS
    swept = np.maximum(_spread_to_callees(small, entry, st.depth), 1.0)
    np.testing.assert_allclose(swept, st.base_load, rtol=1e-12)
    big = generate_topology(DENSE_MAX + 200, seed=1)
    core = BatchCore(big, 2, seed=0)
    core.reset()
    assert core.st.up is None and core.st.up_seen is None
    core.step(np.zeros(2, dtype=np.int64), autoreset=True)
    assert np.isfinite(core.true).all() and (core.st.base_load >= 1.0).all()
