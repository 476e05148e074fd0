"""Is a rollout done? The checks ``kubectl rollout status`` makes, on the API's JSON of a workload."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

State = Literal["succeeded", "failed", "progressing"]


def rollout_state(
    kind: str, obj: Mapping[str, Any], wanted: int | None = None, at_least: bool = False
) -> tuple[State, str]:
    """Return the rollout's state and a one-line reason; ``wanted`` also asks for that many replicas."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    name = f"{kind.lower()}/{(obj.get('metadata') or {}).get('name', '?')}"
    replicas = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    if wanted is not None and (replicas < wanted if at_least else replicas != wanted):
        return "progressing", f"{name} wants {replicas} replicas, waiting for {wanted}"
    generation = int((obj.get("metadata") or {}).get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    if observed < generation or observed == 0:
        return "progressing", f"{name}: waiting for the controller to observe generation {generation}"
    if kind == "Deployment":
        return _deployment(name, replicas, status)
    return _statefulset(name, replicas, status)


def _deployment(name: str, replicas: int, status: Mapping[str, Any]) -> tuple[State, str]:
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return "failed", f"{name} exceeded its progress deadline: {condition.get('message', '')}".strip()
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < replicas:
        return "progressing", f"{name}: {updated} of {replicas} new replicas updated"
    if total > updated:
        return "progressing", f"{name}: {total - updated} old replicas pending termination"
    if available < updated:
        return "progressing", f"{name}: {available} of {updated} updated replicas available"
    return "succeeded", f"{name} rolled out: {available} of {replicas} replicas available"


def _statefulset(name: str, replicas: int, status: Mapping[str, Any]) -> tuple[State, str]:
    ready = int(status.get("readyReplicas") or 0)
    if ready < replicas:
        return "progressing", f"{name}: {ready} of {replicas} pods ready"
    update, current = status.get("updateRevision"), status.get("currentRevision")
    if update and current and update != current:
        updated = int(status.get("updatedReplicas") or 0)
        return "progressing", f"{name}: {updated} of {replicas} pods at revision {update}"
    return "succeeded", f"{name} rolled out: {ready} of {replicas} pods ready"
