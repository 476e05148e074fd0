"""A rollback or config revert is offered only with a recent change to undo; a crash loop without one is restarted."""

from __future__ import annotations

import numpy as np

from sim.actions import undo_mask
from sim.core import BatchCore
from sim.faults import ChangeEvent, FaultSpec, Scenario, fault_kind, sample_scenario
from sim.observation import FEATURES, N_FEATURES
from sim.policies import OraclePolicy
from sim.resolve import resolve_topology

TARGET = "cartservice"


def _core(changes: tuple[ChangeEvent, ...]) -> BatchCore:
    topology = resolve_topology("online-boutique")
    core = BatchCore(topology, 1, seed=0)
    core.reset(scenarios=[Scenario(faults=(FaultSpec("crash_loop", TARGET),), changes=changes)])
    return core


def _allowed(core: BatchCore, action: str) -> bool:
    index = core.topology.index[TARGET] * core.n_actions + core.table.index(action)
    return bool(core.action_masks()[0, index])


def test_without_a_deploy_rollback_is_masked_and_the_oracle_restarts() -> None:
    core = _core(())
    assert not _allowed(core, "rollback_deploy") and not _allowed(core, "revert_config")
    assert _allowed(core, "restart_service")
    assert OraclePolicy()(core, 0) == ("restart_service", TARGET)
    core.step([core.topology.index[TARGET] * core.n_actions + core.table.index("restart_service")])
    assert not core.active_faults(0)


def test_after_a_deploy_the_oracle_rolls_back_and_the_rollback_is_then_spent() -> None:
    core = _core((ChangeEvent("deploy", TARGET, 600.0),))
    assert _allowed(core, "rollback_deploy") and not _allowed(core, "revert_config")
    assert OraclePolicy()(core, 0) == ("rollback_deploy", TARGET)
    core.step([core.topology.index[TARGET] * core.n_actions + core.table.index("rollback_deploy")])
    assert not core.active_faults(0)
    assert not _allowed(core, "rollback_deploy")  # no older version left to go back to


def test_a_deploy_older_than_two_hours_cannot_be_rolled_back() -> None:
    core = _core((ChangeEvent("deploy", TARGET, 3 * 3600.0),))
    assert not _allowed(core, "rollback_deploy")
    assert OraclePolicy()(core, 0) == ("restart_service", TARGET)


def test_crash_loops_come_with_and_without_a_deploy() -> None:
    topology = resolve_topology("online-boutique")
    rng = np.random.default_rng(0)
    with_deploy = [
        any(c.type == "deploy" and c.service == TARGET for c in sc.changes)
        for sc in (
            sample_scenario(topology, rng, faults=[{"kind": "crash_loop", "target": TARGET}])
            for _ in range(200)
        )
    ]
    assert 0.3 < np.mean(with_deploy) < 0.7
    assert fault_kind("bad_deploy").change_p == 1.0  # a bad deploy always has its deploy


def test_the_live_mask_reads_the_change_features() -> None:
    nodes = np.zeros((2, N_FEATURES), dtype=np.float32)
    nodes[0, FEATURES.index("recent_deploy")] = np.exp(-600 / 1800)  # deployed ten minutes ago
    nodes[1, FEATURES.index("recent_config_change")] = np.exp(-3 * 3600 / 1800)  # three hours ago
    mask = undo_mask(nodes, ("restart_service", "rollback_deploy", "revert_config"))
    assert mask.tolist() == [[True, True, False], [True, False, False]]
