"""Run one incident with a policy and collect what happened (used by the CLI, the tests and the docs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sim.core import BatchCore, SimConfig
from sim.faults import FaultSpec, Scenario, sample_scenario
from sim.policies import Choice, Policy, index_of
from sim.topology import Topology


@dataclass(frozen=True)
class StepRecord:
    """One step of an episode."""

    choice: Choice
    outcome: str
    reward: float
    impact: float
    duration_s: float
    elapsed_s: float
    alerts: int


@dataclass(frozen=True)
class Episode:
    """One incident from start to resolution or truncation."""

    scenario: Scenario
    steps: tuple[StepRecord, ...]
    resolved: bool
    elapsed_s: float
    impact: float
    cost_usd: float

    def summary(self) -> dict[str, Any]:
        """Return the JSON summary ``remediate sim run --json`` prints."""
        return {
            "resolved": self.resolved,
            "steps": len(self.steps),
            "time_to_mitigate_s": round(self.elapsed_s, 1) if self.resolved else None,
            "actions": [{"action": s.choice.action, "target": s.choice.target} for s in self.steps],
            "impact": round(self.impact, 4),
        }


def run_episode(
    topology: Topology,
    policy: Policy,
    *,
    seed: int,
    faults: Sequence[FaultSpec | Mapping[str, Any]] | None = None,
    config: SimConfig | None = None,
) -> Episode:
    """Run one incident (random faults unless given) until healthy or the step limit."""
    core = BatchCore(topology, 1, seed=seed, config=config)
    scenario = sample_scenario(topology, core.rng, faults=faults)
    core.reset(scenarios=[scenario])
    records: list[StepRecord] = []
    resolved = False
    while True:
        choice = policy(core, 0)
        result = core.step([index_of(core, choice)])
        records.append(
            StepRecord(
                choice=choice,
                outcome=core.outcome_name(int(result.outcome[0])),
                reward=float(result.reward[0]),
                impact=float(result.impact[0]),
                duration_s=float(result.duration_s[0]),
                elapsed_s=float(core.elapsed_s[0]),
                alerts=int(core.alerts[0].sum()),
            )
        )
        if result.terminated[0]:
            resolved = True
            break
        if result.truncated[0]:
            break
    return Episode(
        scenario=scenario,
        steps=tuple(records),
        resolved=resolved,
        elapsed_s=float(core.elapsed_s[0]),
        impact=float(core.impact_total[0]),
        cost_usd=float(core.cost_total[0]),
    )
