"""Discovery documents of the test API server: the legacy (non-aggregated) forms kubectl falls back to."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def _resource(name: str, kind: str, short: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    singular = kind.lower()
    return {"name": name, "singularName": singular, "namespaced": True, "kind": kind, "verbs": VERBS,
            "shortNames": short or [], **extra}  # fmt: skip


def _sub(name: str, kind: str, group: str = "", version: str = "") -> dict[str, Any]:
    out = {
        "name": name,
        "singularName": "",
        "namespaced": True,
        "kind": kind,
        "verbs": ["get", "patch", "update"],
    }
    return out | ({"group": group, "version": version} if group else {})


APPS = [
    _resource("deployments", "Deployment", ["deploy"], categories=["all"]),
    _sub("deployments/scale", "Scale", "autoscaling", "v1"),
    _sub("deployments/status", "Deployment"),
    _resource("statefulsets", "StatefulSet", ["sts"], categories=["all"]),
    _sub("statefulsets/scale", "Scale", "autoscaling", "v1"),
    _sub("statefulsets/status", "StatefulSet"),
    _resource("replicasets", "ReplicaSet", ["rs"], categories=["all"]),
    _resource("controllerrevisions", "ControllerRevision"),
]
AUTOSCALING = [_resource("horizontalpodautoscalers", "HorizontalPodAutoscaler", ["hpa"], categories=["all"])]


def discovery(path: str, server_url: str) -> dict[str, Any] | None:
    """Return the discovery document served at ``path``, or None when the path is not discovery."""
    address = urlparse(server_url).netloc
    groups = {
        "apps": ["v1"],
        "autoscaling": ["v2", "v1"],
    }
    if path == "/version":
        return {"major": "1", "minor": "32", "gitVersion": "v1.32.0", "platform": "linux/amd64"}
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]}  # fmt: skip
    if path == "/apis":
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
             "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}} for g, vs in groups.items()]}  # fmt: skip
    lists = {
        "/api/v1": ("v1", [{**_resource("namespaces", "Namespace", ["ns"]), "namespaced": False}]),
        "/apis/apps/v1": ("apps/v1", APPS),
        "/apis/autoscaling/v2": ("autoscaling/v2", AUTOSCALING),
        "/apis/autoscaling/v1": ("autoscaling/v1", AUTOSCALING),
    }
    if path in lists:
        group_version, resources = lists[path]
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        }
    return None
