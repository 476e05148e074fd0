"""Spec drift: what a Kubernetes action changed in a workload beyond what it meant to change.

A pure function of the workload's JSON before the action and after its rollout. Each operation names
the paths it intends to change (``restart``: the pod template's ``restartedAt`` annotation; ``scale``:
``replicas``; ``rollout_undo``: the pod template, to the previous revision's; a canary: nothing in the
workload at all). Every other change of ``spec``, of the workload's labels or of its annotations (but
the bookkeeping ones the controller and remediate write) is drift, reported as evidence by the
verification, which then judges the action at most ``partial`` (docs/verification.md, "Spec drift").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from remediation.executors.kubeplans import (
    REQUEST_ANNOTATION,
    RESTARTED_AT,
    REVISION_ANNOTATION,
    SCALE_TO_ANNOTATION,
    UNDO_SKIPS,
)

CANARY_ANNOTATION = "remediate.io/canary"
# written by remediate or the controllers on every action: never drift
BOOKKEEPING = (
    frozenset({REQUEST_ANNOTATION, SCALE_TO_ANNOTATION, CANARY_ANNOTATION, REVISION_ANNOTATION}) | UNDO_SKIPS
)
INTENDED: Mapping[str, tuple[str, ...]] = {
    "rollout_restart": (f"spec.template.metadata.annotations.{RESTARTED_AT}",),
    "scale": ("spec.replicas",),
    "rollout_undo": ("spec.template",),
    "canary": (),
}


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Return ``{dotted.path: leaf}`` of a JSON value.

    Lists of named items (containers, env, volumes, ports with a name) are keyed by name
    (``containers[server].image``); other lists are leaves, compared whole.
    """
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    named = isinstance(value, list) and value and all(isinstance(i, Mapping) and "name" in i for i in value)
    if named and len({i["name"] for i in value}) == len(value):
        out = {}
        for item in value:
            out.update(flatten(item, f"{prefix}[{item['name']}]"))
        return out
    return {prefix: value}


def _watched(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in BOOKKEEPING}
    return flatten({"spec": body.get("spec") or {}, "metadata": {"labels": meta.get("labels") or {},
                                                                 "annotations": annotations}})  # fmt: skip


def _short(value: Any) -> str:
    text = "(none)" if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= 80 else text[:77] + "..."


def spec_drift(
    operation: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    *,
    template: Mapping[str, Any] | None = None,
) -> tuple[str, ...]:
    """Return one line per change the operation did not intend (empty: no drift).

    ``template`` is the pod template a rollback meant to restore (the previous revision's, without its
    ``pod-template-hash`` label); a rollback that left another template is drift too.
    """
    if operation not in INTENDED:
        raise ValueError(f"unknown operation {operation!r}; expected one of {', '.join(INTENDED)}")
    old, new = _watched(before), _watched(after)
    meant = INTENDED[operation]
    drift = []
    for path in sorted(set(old) | set(new)):
        if old.get(path) == new.get(path):
            continue
        if any(path == m or path.startswith(m + ".") for m in meant):
            continue
        drift.append(f"{path} changed from {_short(old.get(path))} to {_short(new.get(path))}")
    if operation == "rollout_undo" and template is not None:
        got = (after.get("spec") or {}).get("template")
        if got != template:
            drift.append("spec.template is not the previous revision's template")
    return tuple(drift)


def health(body: Mapping[str, Any]) -> dict[str, int]:
    """Return the workload's ready and desired replicas as its status says (``ready``, ``desired``)."""
    spec, status = body.get("spec") or {}, body.get("status") or {}
    desired = spec.get("replicas")
    return {"ready": int(status.get("readyReplicas") or 0), "desired": int(1 if desired is None else desired)}
