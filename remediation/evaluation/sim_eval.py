"""Every policy on the same held-out seeded episodes of one topology, measured the same way.

Protocol (docs/policy.md): ``episodes`` scenarios are drawn once from ``seed`` (one or two concurrent
faults, red herrings, missing telemetry) and replayed for each policy, with the same metric noise. A
policy ranks; its first suggestion runs. An action the guardrails deny (or the simulator's mask
forbids) counts as a violation and does not run (the incident waits instead). Success = healthy
within 10 actions. Time to mitigate of an unresolved incident counts as the time spent when the 10
actions ran out (censored, so failing fast is never rewarded).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch

from playbooks.catalog import Catalog, builtin_catalog
from remediation.evaluation.verified import first_suggestion_effective
from remediation.guardrails.models import RbacConfig
from remediation.learning.algorithms import expected_calibration_error
from remediation.learning.baselines import OraclePolicy
from remediation.learning.encoding import observation_from_core
from remediation.learning.guard import EpisodeGuard
from remediation.learning.rollout import EPISODE_STEPS
from remediation.policies.base import Policy, RankedAction
from sim.actions import ActionTable
from sim.core import BatchCore, SimConfig
from sim.faults import Scenario, sample_scenario
from sim.policies import fix_of
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
    automated_success_rate: float = 0.0
    """Share of episodes mitigated without any escalation: what the automation fixed on its own."""
    escalation_rate: float = 0.0
    """Share of episodes in which ``escalate`` ran (paged a human) at least once."""
    mean_escalations: float = 0.0
    """Escalations that ran per episode."""
    human_minutes: float = 0.0
    """Minutes people worked per episode, by the simulator's model (each escalation: the action's duration)."""
    first_effective: float = 0.0
    """Share of incidents whose first suggestion, run and judged after its settle time, was ``effective``."""

    def as_json(self) -> dict[str, Any]:
        """Return exactly the per-policy keys ``remediate eval --json`` prints."""
        full = self.as_row()
        return {k: full[k] for k in JSON_KEYS}

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
            "automated_success_rate": round(self.automated_success_rate, 4),
            "escalation_rate": round(self.escalation_rate, 4),
            "mean_escalations": round(self.mean_escalations, 4),
            "human_minutes": round(self.human_minutes, 2),
            "actions_per_incident": round(self.actions_per_incident, 2),
            "cost_usd": round(self.cost_usd, 2),
            "regret": round(self.regret, 4),
            "top1_any": round(self.top1_any, 4),
            "first_effective": round(self.first_effective, 4),
        }


JSON_KEYS = (
    "success_rate",
    "mean_ttm_s",
    "p90_ttm_s",
    "top1",
    "top3",
    "violations",
    "ece",
    "automated_success_rate",
    "escalation_rate",
    "mean_escalations",
    "human_minutes",
)
"""The per-policy keys of ``remediate eval --json`` (and of the promotion gate's evidence)."""


def _index(core: BatchCore, choice: RankedAction) -> int:
    a = core.table.index(choice.action)
    if a < 0:
        return -1
    if choice.target is None:
        return core.st.n * core.n_actions + (a - core.n_actions) if a >= core.n_actions else -1
    pos = core.topology.index.get(choice.target)
    return -1 if pos is None or a >= core.n_actions else pos * core.n_actions + a


def _global_index(core: BatchCore, action_id: str) -> int:
    """Flat index of a global action (``wait``, ``escalate``), after every service's actions."""
    return core.st.n * core.n_actions + core.table.index(action_id) - core.n_actions


@dataclass
class _Tally:
    """What the episodes did so far: (B,) arrays per episode, counters over all decisions."""

    resolved_at: np.ndarray
    actions: np.ndarray
    escalations: np.ndarray
    first_hit: np.ndarray
    violations: int = 0
    top1: int = 0
    top3: int = 0
    top1_any: int = 0
    conf: list[float] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)

    @classmethod
    def empty(cls, episodes: int) -> _Tally:
        """Counters for ``episodes`` incidents that have not started."""
        return cls(
            np.full(episodes, np.nan), np.zeros(episodes), np.zeros(episodes), np.zeros(episodes, bool)
        )


def _first_step(tally: _Tally, core: BatchCore, b: int, ranked: list[RankedAction], hits: list[bool]) -> None:
    """Score an episode's first ranking: top-1 / top-3 against the oracle, top-1 against any active fault."""
    tally.top1 += int(hits[0])
    tally.top3 += int(any(hits))
    tally.first_hit[b] = hits[0]
    fixes = {(fix_of(core, b, f), f.target) for f in core.active_faults(b)}
    tally.top1_any += int((ranked[0].action, ranked[0].target) in fixes)


def _decide(
    core: BatchCore,
    policy: Policy,
    oracle: OraclePolicy,
    alive: np.ndarray,
    masks: tuple[np.ndarray, np.ndarray],
    tally: _Tally,
    step: int,
) -> np.ndarray:
    """Return each open episode's flat action: the first suggestion, or ``wait`` where it is refused."""
    sim_masks, guards = masks
    chosen = np.full(alive.shape[0], _global_index(core, "wait"))
    for b in np.flatnonzero(alive).tolist():
        obs = observation_from_core(core, b)
        if hasattr(policy, "mask"):
            # what the bot does live: the guardrails' mask and the current state's mask, before softmax
            policy.mask = guards[b] & sim_masks[b]
        best = oracle.bind(core, b).rank(obs, 1)[0]
        if isinstance(policy, OraclePolicy):
            policy.bind(core, b)
        ranked = policy.rank(obs, 3)
        if not ranked:
            continue
        hits = [(r.action, r.target) == (best.action, best.target) for r in ranked]
        if step == 0:
            _first_step(tally, core, b, ranked, hits)
        tally.conf.append(ranked[0].confidence)
        tally.correct.append(hits[0])
        index = _index(core, ranked[0])
        if index < 0 or not sim_masks[b, index] or not guards[b, index]:
            tally.violations += 1
            continue
        chosen[b] = index
        tally.actions[b] += 1
    return chosen


class Played(NamedTuple):
    """What one policy's episodes left behind, per episode; shards played apart concatenate in episode order."""

    tally: _Tally
    elapsed_s: np.ndarray  # (E,) sim clock when the episode ended (or its 10 actions ran out)
    cost_usd: np.ndarray  # (E,) cost of the actions that ran
    impact: np.ndarray  # (E,) user impact accumulated


def merge_played(parts: Sequence[Played]) -> Played:
    """Concatenate shards of episodes (in episode order) into one record, counters summed."""
    tallies = [p.tally for p in parts]
    tally = _Tally(
        np.concatenate([t.resolved_at for t in tallies]),
        np.concatenate([t.actions for t in tallies]),
        np.concatenate([t.escalations for t in tallies]),
        np.concatenate([t.first_hit for t in tallies]),
        violations=sum(t.violations for t in tallies),
        top1=sum(t.top1 for t in tallies),
        top3=sum(t.top3 for t in tallies),
        top1_any=sum(t.top1_any for t in tallies),
        conf=[c for t in tallies for c in t.conf],
        correct=[c for t in tallies for c in t.correct],
    )
    return Played(
        tally, *(np.concatenate([getattr(p, f) for p in parts]) for f in ("elapsed_s", "cost_usd", "impact"))
    )


def summarise(
    played: Played, scenarios: list[Scenario], *, catalog: Catalog, calibrated: bool
) -> PolicyResult:
    """Turn the finished episodes into rates, times, the escalation share and the per-fault breakdown."""
    tally, episodes = played.tally, len(scenarios)
    resolved = ~np.isnan(tally.resolved_at)
    escalated = tally.escalations > 0
    ttm = np.where(resolved, tally.resolved_at, played.elapsed_s)
    by_fault: dict[str, dict[str, float]] = {}
    for kind in sorted({f.kind for sc in scenarios for f in sc.faults}):
        rows = np.array([any(f.kind == kind for f in sc.faults) for sc in scenarios])
        by_fault[kind] = {"episodes": float(rows.sum()), "success_rate": float(resolved[rows].mean()),
                          "top1": float(tally.first_hit[rows].mean())}  # fmt: skip
    ece = None
    if calibrated:
        ece = expected_calibration_error(torch.tensor(tally.conf), torch.tensor(tally.correct))
    # the simulator's human expert works for the escalate action's duration (10 minutes in the catalog)
    table = ActionTable.from_catalog(catalog)
    human_s = float(table.duration_s[table.index("escalate")])
    return PolicyResult(
        success_rate=float(resolved.mean()),
        mean_ttm_s=float(ttm.mean()),
        p90_ttm_s=float(np.percentile(ttm, 90)),
        actions_per_incident=float(tally.actions.mean()),
        cost_usd=float(played.cost_usd.mean()),
        violations=tally.violations,
        top1=tally.top1 / episodes,
        top3=tally.top3 / episodes,
        regret=0.0,
        ece=ece,
        top1_any=tally.top1_any / episodes,
        by_fault=by_fault,
        automated_success_rate=float((resolved & ~escalated).mean()),
        escalation_rate=float(escalated.mean()),
        mean_escalations=float(tally.escalations.mean()),
        human_minutes=float(tally.escalations.mean() * human_s / 60.0),
    )


def draw_scenarios(topology: Topology, episodes: int, seed: int) -> list[Scenario]:
    """Return the seeded scenarios every policy replays (one or two faults, red herrings, missing telemetry)."""
    rng = np.random.default_rng(seed)
    return [sample_scenario(topology, rng) for _ in range(episodes)]


def play(topology: Topology, policy: Policy, scenarios: list[Scenario], *, core_seed: int | Sequence[int],
         rbac: RbacConfig, catalog: Catalog) -> Played:  # fmt: skip
    """Run one policy on the scenarios, with the simulator's noise seeded by ``core_seed``.

    The guardrails decide per episode as in training (``learning.guard.EpisodeGuard``: the episode's
    runs so far, the simulator's clock, no freezes), so a repeat past a rate limit is refused here too.
    An ``escalate`` that runs counts as an escalation (the episode is no longer an automated success).
    """
    episodes = len(scenarios)
    core = BatchCore(topology, episodes, seed=np.random.default_rng(core_seed), catalog=catalog,
                     config=SimConfig(max_steps=EPISODE_STEPS))  # fmt: skip
    core.reset(scenarios=scenarios)
    oracle = policy if isinstance(policy, OraclePolicy) else OraclePolicy(catalog)
    escalate = _global_index(core, "escalate")
    alive = np.ones(episodes, dtype=bool)
    tally = _Tally.empty(episodes)
    episode_guard = EpisodeGuard(topology, catalog, rbac, episodes)
    rows = np.arange(episodes)
    for step in range(EPISODE_STEPS):
        sim_masks = core.action_masks()
        guards = episode_guard.masks(core.elapsed_s, alive)
        chosen = _decide(core, policy, oracle, alive, (sim_masks, guards), tally, step)
        ran = alive & sim_masks[rows, chosen].astype(bool)
        tally.escalations += ran & (chosen == escalate)
        # what ran (the suggestion, or the wait a refused one falls back to) counts against the limits
        episode_guard.record(chosen, ran, core.elapsed_s)
        result = core.step(chosen)
        done_now = alive & result.terminated
        tally.resolved_at[done_now] = core.elapsed_s[done_now]
        alive &= ~(result.terminated | result.truncated)
        if not alive.any():
            break
    return Played(tally, core.elapsed_s.copy(), core.cost_total.copy(), core.impact_total.copy())


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
    """Run one policy on the seeded episodes in this process; return its result and the per-episode impact."""
    scenarios = draw_scenarios(topology, episodes, seed)
    played = play(topology, policy, scenarios, core_seed=seed, rbac=rbac, catalog=catalog)
    return summarise(played, scenarios, catalog=catalog, calibrated=calibrated), played.impact


def with_regret(
    results: dict[str, PolicyResult], impacts: Mapping[str, np.ndarray]
) -> dict[str, PolicyResult]:
    """Return the results with regret = mean extra user impact over the oracle's (when the oracle ran)."""
    if "oracle" not in impacts:
        return results
    return {name: PolicyResult(**{**res.__dict__, "regret": float((impacts[name] - impacts["oracle"]).mean())})
            for name, res in results.items()}  # fmt: skip


CALIBRATED = frozenset({"learned", "operator_bc", "random", "oracle"})
"""Policies whose confidence is a probability, so ECE is measured for them."""


def evaluate_policies(
    topology: Topology,
    policies: Mapping[str, Policy],
    *,
    episodes: int,
    seed: int,
    rbac: RbacConfig,
    catalog: Catalog | None = None,
    calibrated: frozenset[str] = CALIBRATED,
) -> dict[str, PolicyResult]:
    """Run every policy on the same episodes in this process; regret = mean extra user impact over the oracle's.

    ``rbac`` is the guardrails config whose plan-stage mask every policy ranks under: the configured one
    (``settings.rbac_config``) or, explicitly, the shipped default (``load_rbac(None)``).
    ``remediation.evaluation.distributed`` runs the same protocol on Ray workers.
    """
    catalog = catalog or builtin_catalog()
    results: dict[str, PolicyResult] = {}
    impacts: dict[str, np.ndarray] = {}
    for name, policy in policies.items():
        results[name], impacts[name] = run_policy(
            topology, policy, episodes=episodes, seed=seed, rbac=rbac, catalog=catalog,
            calibrated=name in calibrated,
        )  # fmt: skip
        # verified remediation: the first suggestion judged as the bot judges it live (docs/verification.md)
        first = first_suggestion_effective(
            topology, policy, episodes=min(episodes, 100), seed=seed, catalog=catalog
        )
        results[name] = PolicyResult(**{**results[name].__dict__, "first_effective": first})
    return with_regret(results, impacts)
