"""What the Kubernetes executor sends for each operation, as ``kubectl`` does it.

A :class:`Change` is a list of writes; each write is sent first with ``dryRun=All`` (the API server
validates it and persists nothing) and then for real. Bodies are the API's JSON: objects read from the
server go back through the client's own ``ApiClient.sanitize_for_serialization``, so user map keys
(labels, annotations, env names) are never rewritten.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s

from remediation.errors import ExecutorError

REQUEST_ANNOTATION = "remediate.io/request-id"
SCALE_TO_ANNOTATION = "remediate.io/scale-to"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
# Annotations `kubectl rollout undo` does not copy from the ReplicaSet back onto the Deployment.
UNDO_SKIPS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION_ANNOTATION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
SUFFIX = {"Deployment": "deployment", "StatefulSet": "stateful_set"}


@dataclass(frozen=True)
class Workload:
    """A Deployment or StatefulSet as read, with its JSON (API field names)."""

    kind: str
    name: str
    namespace: str
    body: dict[str, Any]

    @property
    def ref(self) -> str:
        """Return ``kind/name -n namespace`` as kubectl writes it."""
        return f"{self.kind.lower()}/{self.name} -n {self.namespace}"

    @property
    def annotations(self) -> dict[str, str]:
        """Return the workload's own annotations."""
        return dict((self.body.get("metadata") or {}).get("annotations") or {})


@dataclass(frozen=True)
class Write:
    """One request: a description for people and a call taking the ``dryRun`` value (None or "All")."""

    shown: str
    send: Callable[[str | None], object]


@dataclass(frozen=True)
class Change:
    """The writes of one action, and what the rollout watch waits for afterwards."""

    writes: tuple[Write, ...]
    note: str = ""
    wanted: int | None = None
    at_least: bool = False
    data: Mapping[str, Any] = field(default_factory=dict)


class Cluster:
    """The few API calls the executor makes, with one request timeout."""

    def __init__(self, api: k8s.ApiClient, timeout_s: float) -> None:
        self.api = api
        self.apps = k8s.AppsV1Api(api)
        self.autoscaling = k8s.AutoscalingV2Api(api)
        self.timeout = float(timeout_s)

    def json(self, obj: object) -> Any:
        """Return an API object as the API's JSON, through the client's own serializer."""
        return self.api.sanitize_for_serialization(obj)

    def read(self, kind: str, name: str, namespace: str) -> Workload:
        """Read a Deployment or StatefulSet."""
        call = getattr(self.apps, f"read_namespaced_{SUFFIX[kind]}")
        return Workload(
            kind, name, namespace, self.json(call(name, namespace, _request_timeout=self.timeout))
        )

    def patch(self, w: Workload, body: Any, content_type: str) -> Write:
        """Return a write that patches the workload."""
        call = getattr(self.apps, f"patch_namespaced_{SUFFIX[w.kind]}")
        kind = content_type.split("/")[1].removesuffix("+json")
        return Write(
            f"PATCH {w.ref} ({kind}) {_compact(body)}",
            lambda dry: call(
                w.name,
                w.namespace,
                body,
                dry_run=dry,
                _content_type=content_type,
                _request_timeout=self.timeout,
            ),
        )


def restart(cluster: Cluster, w: Workload, request_id: str, now: datetime | None = None) -> Change:
    """``kubectl rollout restart``: stamp the pod template's ``restartedAt`` annotation."""
    if (w.body.get("spec") or {}).get("paused"):
        raise ExecutorError(f"{w.ref} is paused; resume it (kubectl rollout resume) before a restart")
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {
        "metadata": {"annotations": {REQUEST_ANNOTATION: request_id}},
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}},
    }
    return Change((cluster.patch(w, body, STRATEGIC),), data={"restartedAt": stamp})


def previous_revision(cluster: Cluster, w: Workload) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """Return the Deployment's previous revision: (number, its ReplicaSet, its template without the hash label)."""
    meta, spec = w.body.get("metadata") or {}, w.body.get("spec") or {}
    current = int(w.annotations.get(REVISION_ANNOTATION, "0"))
    listed = cluster.apps.list_namespaced_replica_set(
        w.namespace, label_selector=selector(spec.get("selector") or {}), _request_timeout=cluster.timeout
    )
    earlier = []
    for rs in cluster.json(listed).get("items") or []:
        rs_meta = rs.get("metadata") or {}
        revision = int((rs_meta.get("annotations") or {}).get(REVISION_ANNOTATION, "0"))
        if _owned(rs_meta, meta, "Deployment") and 0 < revision < current:
            earlier.append((revision, rs))
    if not earlier:
        raise ExecutorError(f"{w.ref} has no revision before {current} to roll back to")
    revision, previous = max(earlier, key=lambda pair: pair[0])
    template = dict((previous.get("spec") or {}).get("template") or {})
    tmeta = dict(template.get("metadata") or {})
    tmeta["labels"] = {k: v for k, v in (tmeta.get("labels") or {}).items() if k != "pod-template-hash"}
    template["metadata"] = tmeta
    return revision, previous, template


def undo_deployment(cluster: Cluster, w: Workload, request_id: str) -> Change:
    """``kubectl rollout undo``: the previous ReplicaSet's template replaces the Deployment's (JSON patch)."""
    meta, spec = w.body.get("metadata") or {}, w.body.get("spec") or {}
    if spec.get("paused"):
        raise ExecutorError(f"{w.ref} is paused; resume it (kubectl rollout resume) before a rollback")
    revision, previous, template = previous_revision(cluster, w)
    if template == spec.get("template"):
        return Change((), note=f"skipped rollback: the current template already matches revision {revision}")
    annotations = w.annotations
    for key, value in ((previous.get("metadata") or {}).get("annotations") or {}).items():
        if key not in UNDO_SKIPS:
            annotations[key] = value
    annotations[REQUEST_ANNOTATION] = request_id
    body = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion")},
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "add", "path": "/metadata/annotations", "value": annotations},
    ]
    return Change((cluster.patch(w, body, JSON_PATCH),), data={"to_revision": revision, "template": template})


def undo_statefulset(cluster: Cluster, w: Workload, request_id: str) -> Change:
    """``kubectl rollout undo`` of a StatefulSet: apply the previous ControllerRevision's stored patch."""
    meta, spec = w.body.get("metadata") or {}, w.body.get("spec") or {}
    listed = cluster.apps.list_namespaced_controller_revision(
        w.namespace, label_selector=selector(spec.get("selector") or {}), _request_timeout=cluster.timeout
    )
    owned = [
        r
        for r in cluster.json(listed).get("items") or []
        if _owned(r.get("metadata") or {}, meta, "StatefulSet")
    ]
    names = {(r.get("metadata") or {}).get("name"): int(r.get("revision") or 0) for r in owned}
    current = names.get((w.body.get("status") or {}).get("updateRevision"), max(names.values(), default=0))
    earlier = [r for r in owned if 0 < int(r.get("revision") or 0) < current]
    if not earlier:
        raise ExecutorError(f"{w.ref} has no revision before {current} to roll back to")
    previous = max(earlier, key=lambda r: int(r.get("revision") or 0))
    body = dict(previous.get("data") or {})
    if not isinstance((body.get("spec") or {}).get("template"), dict):
        raise ExecutorError(f"{w.ref}: revision {previous.get('revision')} stores no pod template")
    body["metadata"] = {"annotations": {REQUEST_ANNOTATION: request_id}}
    return Change((cluster.patch(w, body, STRATEGIC),), data={"to_revision": previous.get("revision")})


def scale(cluster: Cluster, w: Workload, request_id: str, delta: int, hpa_mode: str) -> Change:
    """Scale by ``delta`` through the scale subresource, or through the HPA that targets the workload."""
    hpa = _hpa_for(cluster, w)
    if hpa is not None:
        return _scale_hpa(cluster, w, hpa, request_id, delta, hpa_mode)
    read = getattr(cluster.apps, f"read_namespaced_{SUFFIX[w.kind]}_scale")
    current = int(
        (cluster.json(read(w.name, w.namespace, _request_timeout=cluster.timeout)).get("spec") or {}).get(
            "replicas"
        )
        or 0
    )
    annotations = w.annotations
    writes = []
    expect: int | None = current
    if annotations.get(REQUEST_ANNOTATION) == request_id and SCALE_TO_ANNOTATION in annotations:
        wanted, expect = int(annotations[SCALE_TO_ANNOTATION]), None  # a repeat sets the same count again
    else:
        wanted = current + delta
        if wanted < 1:
            raise ExecutorError(
                f"scaling {w.ref} by {delta} would leave {wanted} replicas (it has {current}); refusing"
            )
        stamp = {
            "metadata": {"annotations": {REQUEST_ANNOTATION: request_id, SCALE_TO_ANNOTATION: str(wanted)}}
        }
        writes.append(cluster.patch(w, stamp, MERGE))
    replace = getattr(cluster.apps, f"replace_namespaced_{SUFFIX[w.kind]}_scale")

    def put(dry: str | None) -> object:
        # As kubectl's --current-replicas: read the scale again, check the count, PUT with its resourceVersion.
        fresh = cluster.json(read(w.name, w.namespace, _request_timeout=cluster.timeout))
        now = int((fresh.get("spec") or {}).get("replicas") or 0)
        if expect is not None and now not in (expect, wanted):
            raise ExecutorError(
                f"{w.ref} now has {now} replicas, not {expect}: someone else scaled it; not changed"
            )
        body = {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": fresh.get("metadata") or {},
                "spec": {"replicas": wanted}}  # fmt: skip
        return replace(
            w.name, w.namespace, k8s.V1Scale.from_dict(body), dry_run=dry, _request_timeout=cluster.timeout
        )

    writes.append(Write(f"PUT {w.ref} scale spec.replicas={wanted} (was {current})", put))
    return Change(tuple(writes), wanted=wanted, data={"replicas_before": current, "replicas": wanted})


def _hpa_for(cluster: Cluster, w: Workload) -> dict[str, Any] | None:
    listed = cluster.autoscaling.list_namespaced_horizontal_pod_autoscaler(
        w.namespace, _request_timeout=cluster.timeout
    )
    for hpa in cluster.json(listed).get("items") or []:
        ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        if ref.get("kind") == w.kind and ref.get("name") == w.name:
            return dict(hpa)
    return None


def _scale_hpa(
    cluster: Cluster, w: Workload, hpa: dict[str, Any], request_id: str, delta: int, hpa_mode: str
) -> Change:
    meta, spec = hpa.get("metadata") or {}, hpa.get("spec") or {}
    name, low, high = (
        str(meta.get("name")),
        int(spec.get("minReplicas") or 1),
        int(spec.get("maxReplicas") or 0),
    )
    managed = f"{w.ref} is managed by HorizontalPodAutoscaler {name} (minReplicas {low}, maxReplicas {high})"
    if hpa_mode != "route":
        raise ExecutorError(f"{managed}; a direct scale would be undone at once, so it is refused")
    if (meta.get("annotations") or {}).get(REQUEST_ANNOTATION) == request_id:
        note = f"HorizontalPodAutoscaler {name} already carries this request"
        return Change((), note=note, wanted=low if delta > 0 else None, at_least=True)
    replicas = int((w.body.get("spec") or {}).get("replicas") or low)
    wanted = max(low, replicas) + delta if delta > 0 else low + delta
    if wanted < 1 or wanted > high:
        raise ExecutorError(f"{managed}; minReplicas {wanted} would be outside 1..{high}, so it is refused")
    body = {"metadata": {"annotations": {REQUEST_ANNOTATION: request_id}}, "spec": {"minReplicas": wanted}}
    write = Write(
        f"PATCH horizontalpodautoscaler/{name} -n {w.namespace} (merge-patch) {_compact(body)}",
        lambda dry: cluster.autoscaling.patch_namespaced_horizontal_pod_autoscaler(
            name, w.namespace, body, dry_run=dry, _content_type=MERGE, _request_timeout=cluster.timeout
        ),
    )
    return Change(
        (write,),
        note=f"routed through HorizontalPodAutoscaler {name}: minReplicas {low} -> {wanted}",
        wanted=wanted if delta > 0 else None,
        at_least=True,
        data={"hpa": name, "min_replicas_before": low, "min_replicas": wanted},
    )


def selector(sel: Mapping[str, Any]) -> str:
    """Return a label selector string for a LabelSelector's JSON (matchLabels and matchExpressions)."""
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for expr in sel.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), ",".join(expr.get("values") or [])
        parts.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                      "Exists": f"{key}", "DoesNotExist": f"!{key}"}[op])  # fmt: skip
    return ",".join(parts)


def _owned(child: Mapping[str, Any], owner: Mapping[str, Any], kind: str) -> bool:
    for ref in child.get("ownerReferences") or []:
        same = ref.get("kind") == kind and ref.get("name") == owner.get("name")
        if same and (not owner.get("uid") or ref.get("uid") == owner.get("uid")):
            return True
    return False


def _compact(body: Any, limit: int = 400) -> str:
    import json

    text = json.dumps(body, separators=(",", ":"), sort_keys=True)
    return text if len(text) <= limit else text[:limit] + "..."
