"""Canaries with plain Deployments (no Argo Rollouts): what the Kubernetes executor sends for each.

* **Restart** (``rollout_restart``): delete ``share`` of the workload's pods (at least one, never all);
  their ReplicaSet or StatefulSet controller starts fresh ones from the same template, which is what a
  restart does to them. Its undo has nothing to take back (a fresh pod runs the same spec).
* **Rollback** (``rollout_undo``) of a Deployment: a Pod's container ``image`` is one of the few pod
  fields the API lets change in place, so the canary patches the chosen pods' images to the previous
  revision's. That is possible only when the two revisions differ in images alone; any other
  difference (env, args, resources, volumes) cannot be put on one pod of a plain Deployment, and the
  canary is refused with the reason (approve without canary). Its undo deletes the patched pods: the
  ReplicaSet starts them again from the current template. A StatefulSet rollback canary is refused.
* **Repeats**: the workload is stamped ``remediate.io/canary: <request id>`` (metadata only: no
  rollout) before any pod is touched; a repeated request finds the stamp and sends nothing again.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client as k8s

from remediation.errors import ExecutorError
from remediation.executors.base import Canary
from remediation.executors.kubedrift import CANARY_ANNOTATION
from remediation.executors.kubeplans import (
    MERGE,
    STRATEGIC,
    Change,
    Cluster,
    Workload,
    Write,
    previous_revision,
    selector,
)

CANARY_OF = "remediate.io/canary-of"  # on a pod a rollback canary patched: the canary's request id


def _pods(cluster: Cluster, w: Workload) -> list[dict[str, Any]]:
    core = k8s.CoreV1Api(cluster.api)
    sel = selector((w.body.get("spec") or {}).get("selector") or {})
    listed = core.list_namespaced_pod(w.namespace, label_selector=sel, _request_timeout=cluster.timeout)
    pods = [
        p
        for p in cluster.json(listed).get("items") or []
        if not (p.get("metadata") or {}).get("deletionTimestamp")
    ]
    return sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name")))


def _chosen(w: Workload, pods: list[dict[str, Any]], share: float) -> list[str]:
    if len(pods) < 2:
        raise ExecutorError(
            f"{w.ref} has {len(pods)} pod(s); a canary needs several (approve without canary)"
        )
    count = min(len(pods) - 1, max(1, int(share * len(pods))))
    return [str(p["metadata"]["name"]) for p in pods[:count]]


def _delete(cluster: Cluster, namespace: str, name: str) -> Write:
    core = k8s.CoreV1Api(cluster.api)
    return Write(
        f"DELETE pod/{name} -n {namespace}",
        lambda dry: core.delete_namespaced_pod(
            name, namespace, dry_run=dry, _request_timeout=cluster.timeout
        ),
    )


def _stamp(cluster: Cluster, w: Workload, request_id: str) -> Write:
    return cluster.patch(w, {"metadata": {"annotations": {CANARY_ANNOTATION: request_id}}}, MERGE)


def _images(template: dict[str, Any]) -> dict[str, str]:
    return {
        str(c.get("name")): str(c.get("image")) for c in (template.get("spec") or {}).get("containers") or []
    }


def _without_images(template: dict[str, Any]) -> dict[str, Any]:
    spec = dict(template.get("spec") or {})
    spec["containers"] = [{k: v for k, v in c.items() if k != "image"} for c in spec.get("containers") or []]
    meta = dict(template.get("metadata") or {})
    meta["labels"] = {k: v for k, v in (meta.get("labels") or {}).items() if k != "pod-template-hash"}
    return {**template, "spec": spec, "metadata": meta}


def plan(cluster: Cluster, operation: str, w: Workload, request_id: str, canary: Canary) -> Change:
    """Return the writes of a canary (or its undo) of ``operation`` on ``w``; refuse what cannot be done."""
    if canary.undo:
        return _undo(cluster, operation, w, canary)
    if w.annotations.get(CANARY_ANNOTATION) == request_id:
        return Change((), note=f"{w.ref} already carries this canary; nothing sent again")
    pods = _pods(cluster, w)
    names = _chosen(w, pods, canary.share)
    if operation == "rollout_restart":
        writes = (_stamp(cluster, w, request_id), *(_delete(cluster, w.namespace, n) for n in names))
        note = f"canary restart: {len(names)} of {len(pods)} pods deleted, their controller starts fresh ones"
        return Change(writes, note=note, data={"canary_pods": names, "pods": len(pods)})
    if operation != "rollout_undo" or w.kind != "Deployment":
        raise ExecutorError(f"a {operation} of a {w.kind} cannot run as a canary (approve without canary)")
    revision, _, template = previous_revision(cluster, w)
    current = (w.body.get("spec") or {}).get("template") or {}
    if _without_images(template) != _without_images(current):
        raise ExecutorError(
            f"revision {revision} of {w.ref} differs from the current one in more than container images; "
            "a plain Deployment cannot run it on one pod (approve without canary)"
        )
    images = _images(template)
    body = {"metadata": {"annotations": {CANARY_OF: request_id}},
            "spec": {"containers": [{"name": n, "image": i} for n, i in sorted(images.items())]}}  # fmt: skip
    core = k8s.CoreV1Api(cluster.api)

    def patch(name: str) -> Write:
        return Write(
            f"PATCH pod/{name} -n {w.namespace} (strategic-merge) {json.dumps(body, sort_keys=True)}",
            lambda dry: core.patch_namespaced_pod(name, w.namespace, body, dry_run=dry,
                                                  _content_type=STRATEGIC, _request_timeout=cluster.timeout),
        )  # fmt: skip

    note = f"canary rollback: {len(names)} of {len(pods)} pods on revision {revision}'s images"
    data = {"canary_pods": names, "pods": len(pods), "to_revision": revision, "images": images}
    return Change((_stamp(cluster, w, request_id), *(patch(n) for n in names)), note=note, data=data)


def _undo(cluster: Cluster, operation: str, w: Workload, canary: Canary) -> Change:
    if operation == "rollout_restart":
        return Change(
            (), note="undo of a canary restart: nothing to take back (a fresh pod runs the same spec)"
        )
    patched = [
        str(p["metadata"]["name"])
        for p in _pods(cluster, w)
        if ((p.get("metadata") or {}).get("annotations") or {}).get(CANARY_OF) == canary.of
    ]
    if not patched:
        return Change((), note=f"undo of canary {canary.of}: no pod carries it any more; nothing sent")
    note = (
        f"undo of canary {canary.of}: {len(patched)} pod(s) deleted, started again from the current template"
    )
    return Change(
        tuple(_delete(cluster, w.namespace, n) for n in patched), note=note, data={"deleted": patched}
    )
