"""Kubernetes evidence in a verdict: the workload's health and the spec drift the executor reported.

The Kubernetes executor compares the workload before the action and after its rollout
(`remediation.executors.kubedrift`) and reports, with its outcome, every change the action did not
intend and the ready replicas against the desired ones. Both become evidence; unintended drift makes
the verdict at most ``partial`` (docs/verification.md, "Spec drift").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from remediation.verification.judge import Judgement


def with_workload(judgement: Judgement, data: Mapping[str, Any]) -> Judgement:
    """Return ``judgement`` with the executor's workload evidence added, capped at partial on drift."""
    drift = [str(d) for d in data.get("spec_drift") or ()]
    evidence = list(judgement.evidence)
    health = data.get("health")
    if isinstance(health, Mapping) and "ready" in health and "desired" in health:
        where = data.get("workload") or "the workload"
        evidence.append(f"{where}: {health['ready']} of {health['desired']} replicas ready after the rollout")
    evidence += [f"spec drift: {d}" for d in drift]
    if not drift:
        return replace(judgement, evidence=tuple(evidence))
    verdict, summary = judgement.verdict, judgement.summary
    if verdict == "effective":
        verdict, summary = "partial", f"{summary}; but it changed what it did not mean to: {drift[0]}"
    return replace(judgement, verdict=verdict, summary=summary, evidence=tuple(evidence), lagging=False)
