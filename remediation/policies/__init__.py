"""Policies: the `Policy` protocol every ranker satisfies, and the runbook baseline built on the matcher."""

from remediation.policies.base import Policy, RankedAction
from remediation.policies.runbook import RunbookPolicy

__all__ = ["Policy", "RankedAction", "RunbookPolicy"]
