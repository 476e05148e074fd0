"""The promotion gate's simulator check refuses a candidate whose success is people's work."""

from __future__ import annotations

import pytest

from remediation.guardrails.config import load_rbac
from remediation.learning.baselines import OraclePolicy, RunbookPolicy
from remediation.registry.gate import check_in_simulator
from sim.generator import generate_topology
from sim.topology import Topology
from tests.remediation.evaluation.policies import AlwaysEscalate

EPISODES = 30


@pytest.fixture(scope="module")
def topology() -> Topology:
    return generate_topology(30, seed=100_007, name="heldout-30")


def test_an_escalate_heavy_candidate_is_refused(topology: Topology) -> None:
    check = check_in_simulator(topology, AlwaysEscalate(), production=None, rbac=load_rbac(None),
                               episodes=EPISODES, seed=7)  # fmt: skip
    new, runbook = check.results["learned"], check.results["runbook"]
    # success alone flatters it: people mitigate nearly every incident
    assert new.success_rate >= runbook.success_rate
    assert not check.passed
    assert any("automated success 0.00" in r and "runbook" in r for r in check.reasons)
    assert check.as_json()["results"]["learned"]["escalation_rate"] == 1.0


def test_the_margin_is_a_parameter(topology: Topology) -> None:
    # the runbook as candidate against the runbook in production: equal automated success passes at margin 0
    same = check_in_simulator(topology, RunbookPolicy(), production=RunbookPolicy(), rbac=load_rbac(None),
                              episodes=EPISODES, seed=7, automated_margin=0.0)  # fmt: skip
    assert not any("automated success" in r for r in same.reasons)
    # the runbook as candidate against the oracle in production: far below it, unless the margin allows all
    strict = check_in_simulator(topology, RunbookPolicy(), production=OraclePolicy(), rbac=load_rbac(None),
                                episodes=EPISODES, seed=7, automated_margin=0.05)  # fmt: skip
    assert any("automated success" in r and "production" in r for r in strict.reasons)
    loose = check_in_simulator(topology, RunbookPolicy(), production=OraclePolicy(), rbac=load_rbac(None),
                               episodes=EPISODES, seed=7, automated_margin=1.0)  # fmt: skip
    assert not any("automated success" in r for r in loose.reasons)
    with pytest.raises(ValueError, match="automated_margin"):
        check_in_simulator(topology, RunbookPolicy(), production=None, rbac=load_rbac(None), episodes=2,
                           seed=7, automated_margin=1.5)  # fmt: skip
