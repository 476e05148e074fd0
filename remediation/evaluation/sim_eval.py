"""Every policy on the same held-out seeded episodes of one topology, measured the same way.

Protocol (docs/policy.md): ``episodes`` scenarios are drawn once from ``seed`` (one or two concurrent
faults, red herrings, missing telemetry) and replayed for each policy, with the same metric noise. A
policy ranks; its first suggestion runs. An action the guardrails deny (or the simulator's mask
forbids) counts as a violation and does not run (the incident waits instead). Success = healthy
within 10 actions. Time to mitigate of an unresolved incident counts as the time spent when the 10
actions ran out (censored, so failing fast is never rewarded).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from playbooks.catalog import Catalog, builtin_catalog
from remediation.guardrails.models import RbacConfig
from remediation.learning.algorithms import expected_calibration_error
from remediation.learning.baselines import OraclePolicy
from remediation.learning.encoding import observation_from_core
from remediation.learning.guard import EpisodeGuard
from remediation.learning.rollout import EPISODE_STEPS
from remediation.policies.base import Policy, RankedAction
from sim.core import BatchCore, SimConfig
from sim.faults import fault_kind, sample_scenario
from sim.topology import Topology


class _Masked(Protocol):
    mask: Any


@dataclass(frozen=True)
class PolicyResult:
    """What one policy did on the episodes."""

    success_rate: float
    mean_ttm_s: float
    p90_ttm_s: float
    actions_per_incident: float
    cost_usd: float
    violations: int
    top1: float
    top3: float
    regret: float
    ece: float | None
    top1_any: float = 0.0
    """Share of episodes whose first suggestion fixes some active fault (not necessarily the oracle's first)."""
    by_fault: Mapping[str, Mapping[str, float]] | None = None
    """Per fault kind: episodes, success rate and top-1 over the episodes that had that fault."""

    def as_json(self) -> dict[str, Any]:
        """Return exactly the per-policy keys ``remediate eval --json`` prints."""
        full = self.as_row()
        return {
            k: full[k]
            for k in ("success_rate", "mean_ttm_s", "p90_ttm_s", "top1", "top3", "violations", "ece")
        }

    def as_row(self) -> dict[str, Any]:
        """Return every measured value (the table and the benchmark)."""
        return {
            "success_rate": round(self.success_rate, 4),
            "mean_ttm_s": round(self.mean_ttm_s, 1),
            "p90_ttm_s": round(self.p90_ttm_s, 1),
            "top1": round(self.top1, 4),
            "top3": round(self.top3, 4),
            "violations": self.violations,
            "ece": None if self.ece is None else round(self.ece, 4),
            "actions_per_incident": round(self.actions_per_incident, 2),
            "cost_usd": round(self.cost_usd, 2),
            "regret": round(self.regret, 4),
            "top1_any": round(self.top1_any, 4),
        }


def _index(core: BatchCore, choice: RankedAction) -> int:
    a = core.table.index(choice.action)
    if a < 0:
        return -1
    if choice.target is None:
        return core.st.n * core.n_actions + (a - core.n_actions) if a >= core.n_actions else -1
    pos = core.topology.index.get(choice.target)
    return -1 if pos is None or a >= core.n_actions else pos * core.n_actions + a


def run_policy(
    topology: Topology,
    policy: Policy,
    *,
    episodes: int,
    seed: int,
    rbac: RbacConfig,
    catalog: Catalog,
    calibrated: bool,
) -> tuple[PolicyResult, np.ndarray]:
    """Run one policy on the seeded episodes; return its result and the per-episode impact.

    The guardrails decide per episode as in training (``learning.guard.EpisodeGuard``: the episode's
    runs so far, the simulator's clock, no freezes), so a repeat past a rate limit is refused here too.
    """
    rng = np.random.default_rng(seed)
    scenarios = [sample_scenario(topology, rng) for _ in range(episodes)]
    core = BatchCore(
        topology, episodes, seed=seed, catalog=catalog, config=SimConfig(max_steps=EPISODE_STEPS)
    )
    core.reset(scenarios=scenarios)
    masked = hasattr(policy, "mask")
    oracle = OraclePolicy(catalog)
    if isinstance(policy, OraclePolicy):
        oracle = policy
    wait = core.st.n * core.n_actions + core.table.index("wait") - core.n_actions
    alive = np.ones(episodes, dtype=bool)
    resolved_at = np.full(episodes, np.nan)
    actions = np.zeros(episodes)
    violations = 0
    top1 = top3 = top1_any = 0
    first_hit = np.zeros(episodes, dtype=bool)
    conf, correct = [], []
    episode_guard = EpisodeGuard(topology, catalog, rbac, episodes)
    for step in range(EPISODE_STEPS):
        chosen = np.full(episodes, wait)
        sim_masks = core.action_masks()
        guards = episode_guard.masks(core.elapsed_s, alive)
        for b in np.flatnonzero(alive).tolist():
            obs = observation_from_core(core, b)
            if masked:
                # what the bot does live: the guardrails' mask and the current state's mask, before softmax
                policy.mask = guards[b] & sim_masks[b]  # type: ignore[attr-defined]
            best = oracle.bind(core, b).rank(obs, 1)[0]
            if isinstance(policy, OraclePolicy):
                policy.bind(core, b)
            ranked = policy.rank(obs, 3)
            if not ranked:
                continue
            hits = [(r.action, r.target) == (best.action, best.target) for r in ranked]
            if step == 0:
                top1 += int(hits[0])
                top3 += int(any(hits))
                first_hit[b] = hits[0]
                fixes = {(fault_kind(f.kind).fix, f.target) for f in core.active_faults(b)}
                top1_any += int((ranked[0].action, ranked[0].target) in fixes)
            conf.append(ranked[0].confidence)
            correct.append(hits[0])
            index = _index(core, ranked[0])
            sim_ok = index >= 0 and bool(sim_masks[b, index])
            if index < 0 or not sim_ok or not guards[b, index]:
                violations += 1
                continue
            chosen[b] = index
            actions[b] += 1
        # what ran (the suggestion, or the wait a refused one falls back to) counts against the limits
        episode_guard.record(
            chosen, alive & sim_masks[np.arange(episodes), chosen].astype(bool), core.elapsed_s
        )
        result = core.step(chosen)
        done_now = alive & result.terminated
        resolved_at[done_now] = core.elapsed_s[done_now]
        alive &= ~(result.terminated | result.truncated)
        if not alive.any():
            break
    resolved = ~np.isnan(resolved_at)
    ttm = np.where(resolved, resolved_at, core.elapsed_s)
    by_fault: dict[str, dict[str, float]] = {}
    for kind in sorted({f.kind for sc in scenarios for f in sc.faults}):
        rows = np.array([any(f.kind == kind for f in sc.faults) for sc in scenarios])
        by_fault[kind] = {"episodes": float(rows.sum()), "success_rate": float(resolved[rows].mean()),
                          "top1": float(first_hit[rows].mean())}  # fmt: skip
    ece = expected_calibration_error(torch.tensor(conf), torch.tensor(correct)) if calibrated else None
    return (
        PolicyResult(
            success_rate=float(resolved.mean()),
            mean_ttm_s=float(ttm.mean()),
            p90_ttm_s=float(np.percentile(ttm, 90)),
            actions_per_incident=float(actions.mean()),
            cost_usd=float(core.cost_total.mean()),
            violations=violations,
            top1=top1 / episodes,
            top3=top3 / episodes,
            regret=0.0,
            ece=ece,
            top1_any=top1_any / episodes,
            by_fault=by_fault,
        ),
        core.impact_total.copy(),
    )


def evaluate_policies(
    topology: Topology,
    policies: Mapping[str, Policy],
    *,
    episodes: int,
    seed: int,
    rbac: RbacConfig,
    catalog: Catalog | None = None,
    calibrated: frozenset[str] = frozenset({"learned", "operator_bc", "random", "oracle"}),
) -> dict[str, PolicyResult]:
    """Run every policy on the same episodes; regret = mean extra user impact over the oracle's.

    ``rbac`` is the guardrails config whose plan-stage mask every policy ranks under: the configured one
    (``settings.rbac_config``) or, explicitly, the shipped default (``load_rbac(None)``).
    """
    catalog = catalog or builtin_catalog()
    results: dict[str, PolicyResult] = {}
    impacts: dict[str, np.ndarray] = {}
    for name, policy in policies.items():
        results[name], impacts[name] = run_policy(
            topology, policy, episodes=episodes, seed=seed, rbac=rbac, catalog=catalog,
            calibrated=name in calibrated,
        )  # fmt: skip
    if "oracle" in impacts:
        for name, res in results.items():
            regret = float((impacts[name] - impacts["oracle"]).mean())
            results[name] = PolicyResult(**{**res.__dict__, "regret": regret})
    return results
