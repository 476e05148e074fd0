"""Verified remediation in the simulator: first suggestions judged effective, right fixes after a re-rank.

How often a policy's first suggestion is judged effective, and how often re-ranking after a failed fix
puts a right fix first (docs/verification.md).

Both run seeded incidents of one topology; every action is judged the way the bot judges it live
(`remediation.verification.judge`, after the action's settle time), never by the simulator's hidden
outcome. The re-rank figure uses two-fault incidents: a plausible wrong fix (the best-ranked suggestion
that fixes no active fault) runs first, is judged, and the policy ranks again with the failed pair
demoted; it counts when the new first suggestion fixes one of the faults still active.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from playbooks.catalog import Catalog, builtin_catalog
from remediation.learning.baselines import OraclePolicy
from remediation.learning.encoding import observation_from_core
from remediation.policies.base import Policy, RankedAction
from remediation.verification.rerank import RETRY_VERDICTS, rerank
from remediation.verification.simview import step_action, verify_in_sim
from sim.core import BatchCore
from sim.faults import FaultSpec, sample_fault, sample_scenario
from sim.policies import fix_of
from sim.topology import Topology

NOT_FIXES = frozenset({"wait", "escalate"})


@dataclass(frozen=True)
class RerankResult:
    """What re-ranking after a failed fix achieved on the two-fault incidents."""

    incidents: int
    judged_failed: int  # the wrong fix was judged ineffective, partial or harmful (so the card re-ranks)
    next_fix_first: int  # ... and the new first suggestion fixes an active fault

    @property
    def rate(self) -> float:
        """Share of the incidents whose re-ranked first suggestion is a right fix."""
        return self.next_fix_first / self.incidents if self.incidents else 0.0


def _fixes(core: BatchCore) -> set[tuple[str, str | None]]:
    return {(fix_of(core, 0, f), f.target) for f in core.active_faults(0)}


def _core(topology: Topology, catalog: Catalog, faults: list[FaultSpec] | None, seed: int) -> BatchCore:
    rng = np.random.default_rng(seed)
    scenario = sample_scenario(topology, rng, faults=faults, herring_p=0.0)
    core = BatchCore(topology, 1, seed=seed, catalog=catalog)
    core.reset(scenarios=[scenario])
    step_action(core, "wait", None)  # the incident develops and is seen
    return core


def _bind(policy: Policy, core: BatchCore) -> None:
    if isinstance(policy, OraclePolicy):
        policy.bind(core, 0)
    if hasattr(policy, "mask"):  # a learned policy masked by an earlier evaluation: rank unmasked here
        setattr(policy, "mask", None)  # noqa: B010


def _two_faults(topology: Topology, rng: np.random.Generator) -> list[FaultSpec]:
    first = sample_fault(topology, rng)
    while True:
        second = sample_fault(topology, rng)
        if second.target != first.target:
            return [first, second]


def _wrong_fix(ranked: list[RankedAction], fixes: set[tuple[str, str | None]]) -> RankedAction | None:
    for r in ranked:
        if r.target is not None and r.action not in NOT_FIXES and (r.action, r.target) not in fixes:
            return r
    return None


def rerank_after_failure(
    topology: Topology, policy: Policy, *, incidents: int = 100, seed: int = 0, catalog: Catalog | None = None
) -> RerankResult:
    """Run ``incidents`` seeded two-fault incidents: wrong fix, verdict, re-rank; count right next fixes."""
    catalog = catalog or builtin_catalog()
    rng = np.random.default_rng(seed)
    judged = hits = 0
    for n in range(incidents):
        core = _core(topology, catalog, _two_faults(topology, rng), seed + n)
        _bind(policy, core)
        wrong = _wrong_fix(policy.rank(observation_from_core(core, 0), 10), _fixes(core))
        if wrong is None or wrong.target is None:
            continue
        result = verify_in_sim(core, wrong.action, wrong.target, settle_s=catalog.get(wrong.action).settle)
        if result.verdict not in RETRY_VERDICTS:
            continue
        judged += 1
        _bind(policy, core)
        top = rerank(policy, observation_from_core(core, 0), 1, frozenset({(wrong.action, wrong.target)}))
        hits += int(bool(top) and (top[0].action, top[0].target) in _fixes(core))
    return RerankResult(incidents, judged, hits)


def first_suggestion_effective(
    topology: Topology, policy: Policy, *, episodes: int, seed: int, catalog: Catalog | None = None
) -> float:
    """Return the share of seeded incidents whose first suggestion, run and judged, was ``effective``."""
    catalog = catalog or builtin_catalog()
    effective = 0
    for n in range(episodes):
        core = _core(topology, catalog, None, seed + n)
        _bind(policy, core)
        ranked = policy.rank(observation_from_core(core, 0), 1)
        target = ranked[0].target if ranked else None
        if target is None:
            continue
        action = ranked[0].action
        verdict = verify_in_sim(core, action, target, settle_s=catalog.get(action).settle).verdict
        effective += int(verdict == "effective")
    return effective / episodes if episodes else 0.0
