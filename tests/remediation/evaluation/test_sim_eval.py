"""Simulator evaluation: automated success and escalations are reported apart from success."""

from __future__ import annotations

import pytest

from remediation.evaluation.sim_eval import JSON_KEYS, evaluate_policies
from remediation.guardrails.config import load_rbac
from remediation.learning.baselines import OraclePolicy, RunbookPolicy
from sim.generator import generate_topology
from sim.resolve import resolve_topology
from sim.topology import Topology
from tests.remediation.evaluation.policies import AlwaysEscalate

EPISODES = 30


@pytest.fixture(scope="module", params=["hotel-reservation", "generated:41:11"])
def topology(request: pytest.FixtureRequest) -> Topology:
    return resolve_topology(str(request.param))


def test_always_escalating_is_never_an_automated_success(topology: Topology) -> None:
    results = evaluate_policies(
        topology, {"escalate": AlwaysEscalate()}, episodes=EPISODES, seed=3, rbac=load_rbac(None)
    )
    res = results["escalate"]
    assert res.automated_success_rate == 0.0
    assert res.escalation_rate == 1.0
    # people mitigate: the expert removes one cause per page, 10 minutes of work each
    assert res.success_rate > 0.9
    assert res.mean_escalations >= 1.0
    assert res.human_minutes == pytest.approx(10.0 * res.mean_escalations)


def test_the_oracle_never_escalates(topology: Topology) -> None:
    results = evaluate_policies(
        topology, {"oracle": OraclePolicy()}, episodes=EPISODES, seed=3, rbac=load_rbac(None)
    )
    res = results["oracle"]
    assert res.escalation_rate == 0.0 and res.mean_escalations == 0.0 and res.human_minutes == 0.0
    assert res.automated_success_rate == res.success_rate


def test_the_oracle_mitigates_a_surge_behind_retries_under_the_rate_limits() -> None:
    # episode 96 of these: a surge and a pool exhaustion on one service; in kind order the oracle ran
    # into scale_out's hourly limit and missed it (0.99); it now fixes the surge last (sim.policies.fix_order)
    topology = generate_topology(41, seed=100_025)
    res = evaluate_policies(topology, {"oracle": OraclePolicy()}, episodes=100, seed=1, rbac=load_rbac(None))
    assert res["oracle"].success_rate == 1.0 and res["oracle"].violations == 0
    assert res["oracle"].escalation_rate == 0.0


def test_json_keys_keep_the_old_ones_and_add_the_escalation_columns() -> None:
    topology = generate_topology(12, seed=4)
    results = evaluate_policies(
        topology, {"runbook": RunbookPolicy(), "escalate": AlwaysEscalate()}, episodes=6, seed=1,
        rbac=load_rbac(None),
    )  # fmt: skip
    old = {"success_rate", "mean_ttm_s", "p90_ttm_s", "top1", "top3", "violations", "ece"}
    new = {"automated_success_rate", "escalation_rate", "mean_escalations", "human_minutes"}
    for res in results.values():
        assert set(res.as_json()) == old | new == set(JSON_KEYS)
        assert res.automated_success_rate <= res.success_rate
    assert results["escalate"].as_json()["escalation_rate"] == 1.0
