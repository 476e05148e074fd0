"""The `Policy` protocol: ``rank(observation, k) -> list[RankedAction]``, best first.

The bot depends on this protocol only; learned policies (torch), the runbook baseline and the oracle
all satisfy it, so evaluation and the bot compare them on equal terms.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from sim.observation import Observation


@dataclass(frozen=True)
class RankedAction:
    """One suggested (action, target) pair with how good, how sure, how risky and why.

    Attributes:
        action: catalog action id.
        target: service name, or None for a global action (wait, escalate).
        params: the action's parameters, validated against the catalog.
        score: the policy's ranking score (higher is better; only comparable within one ranking).
        confidence: how sure the policy is this action helps, in [0, 1].
        expected_ttm_s: expected seconds until the incident is mitigated if this action is taken.
        risk: the catalog's risk level (low / medium / high / critical).
        reason: one short sentence a responder can check.
    """

    action: str
    target: str | None
    params: Mapping[str, Any] = field(default_factory=dict)
    score: float = 0.0
    confidence: float = 0.0
    expected_ttm_s: float | None = None
    risk: str = "low"
    reason: str = ""


@runtime_checkable
class Policy(Protocol):
    """Ranks remediation actions for an observation."""

    name: str
    version: str

    def rank(self, observation: Observation, k: int) -> list[RankedAction]:
        """Return at most ``k`` actions, best first."""
        ...


def rank_avoiding(
    policy: Policy, observation: Observation, k: int, targets: Collection[str], pool: int
) -> list[RankedAction]:
    """Return the policy's top ``k`` among its best ``pool`` that act on no service of ``targets``.

    A policy with its own ``rank_avoiding`` (the learned one: it explains only what it returns) is
    asked directly; any other ranks ``pool`` and is filtered here. Both give the same list.
    """
    own = getattr(policy, "rank_avoiding", None)
    if callable(own):
        return list(own(observation, k, targets, pool))
    return [r for r in policy.rank(observation, pool) if not r.target or r.target not in targets][:k]
