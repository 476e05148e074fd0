"""The policies plot draws success beside automated success and the escalation rate."""

from __future__ import annotations

from pathlib import Path

from remediation.evaluation.plots import plot_policies
from remediation.evaluation.sim_eval import evaluate_policies
from remediation.guardrails.config import load_rbac
from remediation.learning.baselines import OraclePolicy
from sim.generator import generate_topology
from tests.remediation.evaluation.policies import AlwaysEscalate


def test_plot_policies_writes_a_png(tmp_path: Path) -> None:
    results = evaluate_policies(generate_topology(10, seed=2), {"oracle": OraclePolicy(), "escalate": AlwaysEscalate()},
                                episodes=4, seed=1, rbac=load_rbac(None))  # fmt: skip
    path = plot_policies(results, tmp_path / "eval" / "policies.png", "10 services")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
