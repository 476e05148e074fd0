"""The promotion gate's simulator check: a candidate against the runbook and the production policy.

Paging a human must not flatter a candidate: ``escalate`` mitigates in the simulator (a person removes
one cause after 10 minutes), so success alone would pass a policy that pages on every incident. The
check therefore also compares *automated* success (mitigated with no escalation) with the production
policy's: the promoted version, or the runbook, which serves when none is promoted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from remediation.evaluation.sim_eval import PolicyResult, evaluate_policies
from remediation.guardrails.models import RbacConfig
from remediation.learning.baselines import OraclePolicy, RunbookPolicy
from remediation.policies.base import Policy
from sim.topology import Topology

AUTOMATED_MARGIN = 0.05
"""Default: how far (absolute share of incidents) a candidate's automated success may fall below production's."""


@dataclass(frozen=True)
class SimCheck:
    """The simulator half of the gate: the verdict, why it refused, and every policy's result."""

    passed: bool
    reasons: tuple[str, ...]
    results: Mapping[str, PolicyResult]
    automated_margin: float

    def as_json(self) -> dict[str, Any]:
        """Return the evidence as the gate's JSON reports it."""
        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "automated_margin": self.automated_margin,
            "results": {name: res.as_json() for name, res in self.results.items()},
        }


def check_in_simulator(
    topology: Topology,
    candidate: Policy,
    *,
    production: Policy | None,
    rbac: RbacConfig,
    episodes: int,
    seed: int,
    automated_margin: float = AUTOMATED_MARGIN,
) -> SimCheck:
    """Evaluate candidate, runbook, production and oracle on the same episodes; decide the simulator check.

    The candidate must mitigate at least as often as the runbook and no slower on average, and its
    automated success may fall below the production policy's (``production``, or the runbook when
    None) by at most ``automated_margin``.
    """
    if not 0.0 <= automated_margin <= 1.0:
        raise ValueError(f"automated_margin must be within 0..1, got {automated_margin!r}")
    policies: dict[str, Policy] = {"learned": candidate, "runbook": RunbookPolicy()}
    if production is not None:
        policies["production"] = production
    policies["oracle"] = OraclePolicy()
    results = evaluate_policies(topology, policies, episodes=episodes, seed=seed, rbac=rbac)
    new, runbook = results["learned"], results["runbook"]
    prod = results.get("production", runbook)
    prod_name = "the production version's" if production is not None else "the runbook's (nothing promoted)"
    reasons = []
    if new.success_rate < runbook.success_rate:
        reasons.append(f"success {new.success_rate:.2f} below the runbook's {runbook.success_rate:.2f}")
    if new.mean_ttm_s > runbook.mean_ttm_s:
        reasons.append(
            f"mean time to mitigate {new.mean_ttm_s:.0f} s above the runbook's {runbook.mean_ttm_s:.0f} s"
        )
    if new.automated_success_rate < prod.automated_success_rate - automated_margin:
        reasons.append(
            f"automated success {new.automated_success_rate:.2f} (escalated in {new.escalation_rate:.0%} of "
            f"incidents) more than {automated_margin:.2f} below {prod_name} {prod.automated_success_rate:.2f}"
        )
    return SimCheck(not reasons, tuple(reasons), results, automated_margin)
