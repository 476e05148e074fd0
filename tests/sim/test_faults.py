"""Every fault kind is fixed by its ground-truth action and not by a clearly wrong one; risky actions hurt."""

from __future__ import annotations

import numpy as np
import pytest

from sim.core import BatchCore
from sim.faults import FAULT_IDS, FAULT_KINDS, FaultSpec, Scenario, candidates, fault_kind
from sim.policies import Choice, index_of
from sim.resolve import resolve_topology

HOTEL = resolve_topology("hotel-reservation")


def start(*faults: FaultSpec, changes: tuple = ()) -> BatchCore:
    from sim.faults import ChangeEvent

    events = list(changes)
    for f in faults:
        event = fault_kind(f.kind).change_event
        if event:
            events.append(ChangeEvent(event, f.target, 600.0))
    core = BatchCore(HOTEL, 1, seed=0)
    core.reset(scenarios=[Scenario(faults=faults, changes=tuple(events))])
    return core


def act(core: BatchCore, action: str, target: str | None = None) -> str:
    result = core.step([index_of(core, Choice(action, target))])
    return core.outcome_name(int(result.outcome[0]))


def fault_for(kind: str) -> FaultSpec:
    spec = fault_kind(kind)
    target = HOTEL.services[candidates(HOTEL, spec)[0]]
    peer = None
    if spec.needs_peer:
        peer = HOTEL.services[int(HOTEL.callers(HOTEL.position(target))[0])]
    return FaultSpec(kind, target, peer)


def test_there_are_at_least_twelve_fault_kinds_each_with_a_catalog_fix() -> None:
    from playbooks.catalog import builtin_catalog

    assert len(FAULT_KINDS) >= 12
    for kind in FAULT_KINDS:
        assert kind.fix in builtin_catalog()


@pytest.mark.parametrize("kind", FAULT_IDS)
def test_ground_truth_fix_resolves_the_fault(kind: str) -> None:
    fault = fault_for(kind)
    core = start(fault)
    assert not core.healthy()[0]
    fix = fault_kind(kind).fix
    outcomes = []
    for _ in range(3):  # a surge may need more than one scale-out
        if not any(f.kind == kind for f in core.active_faults(0)):
            break
        outcomes.append(act(core, fix, fault.target))
    assert outcomes[0] == "succeeded"
    assert not core.active_faults(0)
    for _ in range(3):  # retries drain within a minute or two
        if core.healthy()[0]:
            break
        act(core, "wait")
    assert core.healthy()[0]


@pytest.mark.parametrize("kind", FAULT_IDS)
def test_a_clearly_wrong_action_does_not_resolve_it(kind: str) -> None:
    fault = fault_for(kind)
    core = start(fault)
    wrong = "clear_disk" if kind == "certificate_expiry" else "rotate_certificate"
    assert act(core, wrong, fault.target) in ("no_effect", "harmful")
    for _ in range(3):
        act(core, "wait")
    assert any(f.kind == kind for f in core.active_faults(0))
    assert not core.healthy()[0]


def test_concurrent_faults_need_both_fixes() -> None:
    core = start(FaultSpec("disk_full", "mongodb-geo"), FaultSpec("cache_corruption", "memcached-rate"))
    assert act(core, "clear_disk", "mongodb-geo") == "succeeded"
    assert not core.healthy()[0]
    assert act(core, "flush_cache", "memcached-rate") == "succeeded"
    act(core, "wait")
    assert core.healthy()[0]


def test_memory_leak_restart_buys_time_rollback_fixes() -> None:
    core = start(FaultSpec("memory_leak", "profile"))
    for _ in range(4):
        act(core, "wait")
    from sim.dynamics import M_MEM

    n = HOTEL.position("profile")
    assert core.true[0, M_MEM, n] > 0.9
    assert act(core, "restart_service", "profile") == "succeeded"
    assert core.true[0, M_MEM, n] < 0.7
    assert any(f.kind == "memory_leak" for f in core.active_faults(0))  # still leaking
    assert act(core, "rollback_deploy", "profile") == "succeeded"
    assert not core.active_faults(0)


def test_restarting_a_healthy_stateful_datastore_causes_an_outage() -> None:
    core = start(FaultSpec("bad_deploy", "search"))
    before = float(core.impact_rate[0])
    assert act(core, "restart_service", "mongodb-geo") == "harmful"
    assert FaultSpec("datastore_outage", "mongodb-geo", None, 1.0, 900.0) in core.active_faults(0)
    assert core.impact_rate[0] > before


def test_restarting_a_healthy_cache_makes_it_cold() -> None:
    core = start(FaultSpec("bad_deploy", "search"))
    assert act(core, "restart_service", "memcached-rate") == "harmful"
    assert "cache_stampede" in {f.kind for f in core.active_faults(0)}


def test_rollback_without_a_recent_deploy_does_nothing() -> None:
    core = start(FaultSpec("config_error", "rate"))
    s = core.state
    n = HOTEL.position("rate")
    version = int(s.version[0, n])
    assert act(core, "rollback_deploy", "rate") == "no_effect"
    assert int(s.version[0, n]) == version
    assert [f.kind for f in core.active_faults(0)] == ["config_error"]


def test_scale_out_costs_money_every_step() -> None:
    plain = start(FaultSpec("config_error", "rate"))
    scaled = start(FaultSpec("config_error", "rate"))
    act(scaled, "scale_out", "search")
    costs = []
    for core in (plain, scaled):
        result = core.step([index_of(core, Choice("wait", None))])
        costs.append(float(result.cost_usd[0]))
    assert costs[0] == 0.0 and costs[1] > 0.0


def test_failover_or_flush_of_a_healthy_datastore_hurts() -> None:
    core = start(FaultSpec("bad_deploy", "search"))
    assert act(core, "failover_datastore", "mongodb-rate") == "harmful"
    assert act(core, "flush_cache", "memcached-profile") == "harmful"
    kinds = {(f.kind, f.target) for f in core.active_faults(0)}
    assert ("datastore_outage", "mongodb-rate") in kinds and ("cache_stampede", "memcached-profile") in kinds


def test_risky_actions_cost_reward_even_when_harmless() -> None:
    rewards = {}
    for action, target in (("wait", None), ("drain_node", "search")):
        core = start(FaultSpec("config_error", "rate"))
        result = core.step([index_of(core, Choice(action, target))])
        rewards[action] = float(result.reward[0]) / float(result.duration_s[0])
    assert rewards["drain_node"] < rewards["wait"]


def test_transient_side_effects_clear_by_themselves() -> None:
    core = start(FaultSpec("bad_deploy", "search"))
    act(core, "failover_datastore", "mongodb-rate")
    assert core.active_faults(0)
    for _ in range(3):
        act(core, "wait")
    assert "datastore_outage" not in {f.kind for f in core.active_faults(0)}


def test_scenarios_sometimes_carry_red_herrings_and_missing_telemetry() -> None:
    from sim.faults import sample_scenario

    rng = np.random.default_rng(0)
    drawn = [sample_scenario(HOTEL, rng) for _ in range(200)]
    assert any(len(s.faults) > 1 for s in drawn)
    with_herring = [s for s in drawn if s.herrings]
    assert 40 < len(with_herring) < 120
    for s in with_herring:
        assert s.herrings[0] not in {f.target for f in s.faults}
    assert any(s.no_telemetry for s in drawn)
