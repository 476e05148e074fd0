"""Policies for evaluation tests: real `Policy` implementations that page a human."""

from __future__ import annotations

from remediation.policies.base import RankedAction
from sim.observation import Observation


class AlwaysEscalate:
    """Pages a human on every decision (the simulator's expert removes one cause each time)."""

    name = "always_escalate"
    version = "always_escalate"

    def rank(self, observation: Observation, k: int) -> list[RankedAction]:
        """Return escalate, then wait."""
        return [
            RankedAction(action="escalate", target=None, confidence=1.0, reason="page a human"),
            RankedAction(action="wait", target=None, confidence=0.0, reason="watch"),
        ][:k]
