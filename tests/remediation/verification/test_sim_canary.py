"""Canaries in the simulator and the demo world: a share of the replicas heals (the verdict sees partial
improvement), the rest then heals all; a canary of the wrong fix is judged a failure and taken back."""

from __future__ import annotations

import numpy as np

from bot.demo.world import LiveWorld
from remediation.verification.canary import canary_tuning, fraction_of
from remediation.verification.judge import Tuning
from remediation.verification.simview import canary_in_sim, step_action, verify_in_sim
from sim.canary import canary_share, undo_canary
from sim.core import BatchCore
from sim.faults import sample_scenario
from sim.topology import builtin_topology
from tests.bot.demo.conftest import fast_world
from tests.bot.demo.test_world import Recorder
from tests.bot.sandbox.conftest import wait_for

TOPOLOGY = builtin_topology("hotel-reservation")
BAD_DEPLOY = [{"kind": "bad_deploy", "target": "search"}]


def _core(faults: list[dict[str, str]], seed: int = 1) -> BatchCore:
    core = BatchCore(TOPOLOGY, 1, seed=seed)
    scenario = sample_scenario(
        TOPOLOGY, np.random.default_rng(seed), faults=faults, herring_p=0, missing_telemetry_p=0
    )
    core.reset(scenarios=[scenario])
    step_action(core, "wait", None)
    return core


def test_the_share_is_at_least_one_replica() -> None:
    assert canary_share(2, 0.25) == (1, 0.5)
    assert canary_share(8, 0.25) == (2, 0.25)
    assert canary_share(1, 0.25) == (1, 1.0)


def test_a_canary_expects_only_its_share_of_the_improvement() -> None:
    assert canary_tuning(Tuning(), 1.0).improved_share == 0.5  # a full run: errors at most halved
    assert abs(canary_tuning(Tuning(), 1 / 3).improved_share - 5 / 6) < 1e-9  # a third: a sixth less
    assert fraction_of(0.25, 3, {"canary_pods": ["a"], "pods": 4}) == 0.25  # as the executor says
    assert fraction_of(0.25, 3, {}) == 1 / 3  # else at least one replica of the graph's count


def test_a_canary_of_the_right_fix_heals_its_share_then_the_rest_heals_all() -> None:
    core = _core(BAD_DEPLOY)
    verdict, _ = canary_in_sim(core, "rollback_deploy", "search", share=0.25, settle_s=180)
    assert verdict.verdict == "partial", verdict  # one replica of two: errors fell by about half
    assert core.active_faults(0)[0].severity == 0.5  # the fault holds on the other replica
    rest = verify_in_sim(core, "rollback_deploy", "search", settle_s=180)  # the previous version is kept
    assert rest.verdict == "effective", rest
    assert core.active_faults(0) == []


def test_a_canary_of_the_wrong_fix_fails_and_its_undo_takes_it_back() -> None:
    core = _core(BAD_DEPLOY)
    before = core.state.sev[0].copy()
    verdict, run = canary_in_sim(core, "restart_service", "search", share=0.25, settle_s=180)
    assert verdict.verdict == "ineffective", verdict
    undo_canary(core, run.delta)
    assert np.allclose(core.state.sev[0], before)


def test_a_canary_that_harms_a_neighbour_is_taken_back() -> None:
    core = _core([{"kind": "crash_loop", "target": "profile"}])
    verdict, run = canary_in_sim(core, "restart_service", "mongodb-profile", share=0.25, settle_s=180)
    assert verdict.verdict == "harmful" and "mongodb-profile" in verdict.summary
    undo_canary(core, run.delta)
    assert [f.target for f in core.active_faults(0)] == ["profile"]


def test_the_demo_world_runs_a_canary_and_its_undo() -> None:
    sink = Recorder()
    with LiveWorld("online-boutique", sink, fast_world()) as world:
        wait_for(lambda: sink.statuses())  # a crash loop on cartservice (two replicas)
        canary = world.apply("restart_service", "cartservice", {"canary_share": 0.25})
        assert canary["ok"] and canary["replicas"] == 1 and "1 of 2 replicas" in str(canary["detail"])
        assert world.status().faults[0].severity == 0.5 and world.status().active
        undo = world.apply("restart_service", "cartservice", {"canary_share": 0.25, "canary_undo": True})
        assert undo["ok"] and "took back" in str(undo["detail"])
        assert world.status().faults[0].severity == 1.0
        full = world.apply("restart_service", "cartservice", {})
        assert full["ok"] and full["healthy"]
