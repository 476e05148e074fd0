"""Objects the tests store in the test API server: a Deployment with its ReplicaSets, a StatefulSet, an HPA."""

from __future__ import annotations

from typing import Any

from tests.remediation.executors.kubeapi import KubeApiServer

NS = "shop"
REVISION = "deployment.kubernetes.io/revision"


def _template(app: str, image: str, **extra: Any) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": app}},
            "spec": {"containers": [{"name": "web", "image": image, **extra}]}}  # fmt: skip


def deployment(api: KubeApiServer, name: str = "frontend", *, replicas: int = 2, revisions: int = 3) -> None:
    """Store a Deployment at revision ``revisions`` and one ReplicaSet per revision (image web:vN).

    The current revision adds an env var (key ``BAD_FLAG``) and an annotation the older ones lack, so a
    rollback can show that keys the bad revision added are gone.
    """
    current = _template(name, f"web:v{revisions}", env=[{"name": "BAD_FLAG", "value": "on"}])
    current["metadata"]["annotations"] = {"team.example/flag_added": "yes"}
    api.put({"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": name, "namespace": NS, "labels": {"app": name},
                          "annotations": {REVISION: str(revisions)}},
             "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": current},
             "status": {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                        "availableReplicas": replicas, "readyReplicas": replicas}})  # fmt: skip
    uid = api.get("deployments", NS, name)["metadata"]["uid"]
    for revision in range(1, revisions + 1):
        template = current if revision == revisions else _template(name, f"web:v{revision}")
        template = {**template, "metadata": {**template["metadata"],
                    "labels": {"app": name, "pod-template-hash": f"h{revision}"}}}  # fmt: skip
        api.put({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                 "metadata": {"name": f"{name}-h{revision}", "namespace": NS,
                              "labels": {"app": name, "pod-template-hash": f"h{revision}"},
                              "annotations": {REVISION: str(revision)},
                              "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                                   "uid": uid, "controller": True}]},
                 "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}}, "template": template}})  # fmt: skip


def statefulset(api: KubeApiServer, name: str = "carts-db", *, replicas: int = 3) -> None:
    """Store a StatefulSet at revision 2 with two ControllerRevisions (image db:v1, db:v2)."""
    api.put({"apiVersion": "apps/v1", "kind": "StatefulSet",
             "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
             "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}},
                      "template": _template(name, "db:v2", env=[{"name": "BAD_FLAG", "value": "on"}])},
             "status": {"observedGeneration": 1, "replicas": replicas, "readyReplicas": replicas,
                        "currentRevision": f"{name}-r2", "updateRevision": f"{name}-r2"}})  # fmt: skip
    uid = api.get("statefulsets", NS, name)["metadata"]["uid"]
    for revision in (1, 2):
        template = _template(name, f"db:v{revision}")
        api.put({"apiVersion": "apps/v1", "kind": "ControllerRevision", "revision": revision,
                 "metadata": {"name": f"{name}-r{revision}", "namespace": NS, "labels": {"app": name},
                              "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name,
                                                   "uid": uid, "controller": True}]},
                 "data": {"spec": {"template": {**template, "$patch": "replace"}}}})  # fmt: skip


def hpa(api: KubeApiServer, target: str = "frontend", *, low: int = 2, high: int = 10) -> None:
    """Store a HorizontalPodAutoscaler (autoscaling/v2) that targets the Deployment ``target``."""
    api.put({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
             "metadata": {"name": f"{target}-hpa", "namespace": NS},
             "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                      "minReplicas": low, "maxReplicas": high}})  # fmt: skip


def pods(api: KubeApiServer, name: str = "frontend", *, count: int = 2, image: str = "web:v3") -> list[str]:
    """Store ``count`` running pods of the Deployment ``name`` (labels as its template's); return their names."""
    names = [f"{name}-h3-{i}" for i in range(count)]
    for pod in names:
        api.put({"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": pod, "namespace": NS, "labels": {"app": name, "pod-template-hash": "h3"}},
                 "spec": {"containers": [{"name": "web", "image": image}]},
                 "status": {"phase": "Running"}})  # fmt: skip
    return names
