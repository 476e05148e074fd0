"""List the cluster's Deployments and StatefulSets through the official Kubernetes client (`--kubernetes`).

Auth follows the client's own loaders: the kubeconfig file named by ``REMEDIATE_KUBECONFIG`` (or
``--kubeconfig``) with an optional context; without one, the in-cluster service account when running in
a pod, else the default kubeconfig (``~/.kube/config``, ``KUBECONFIG``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.feeds.errors import DiscoveryError
from bot.feeds.workloads import Workload


def _api_client(kubeconfig: Path | None, context: str | None) -> Any:
    """Return a configured `kubernetes.client.ApiClient`; raise DiscoveryError when no config loads."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    try:
        if kubeconfig is not None:
            if not kubeconfig.is_file():
                raise DiscoveryError(f"kubeconfig {kubeconfig}: no such file")
            return config.new_client_from_config(config_file=str(kubeconfig), context=context)
        try:
            config.load_incluster_config()
            return client.ApiClient()
        except ConfigException:
            return config.new_client_from_config(context=context)
    except (ConfigException, OSError, ValueError, TypeError) as exc:
        raise DiscoveryError(f"cannot load a Kubernetes config: {exc}") from None


def _workload(obj: Any, kind: str) -> Workload:
    meta, spec = obj.metadata, obj.spec
    containers = list(getattr(getattr(spec.template, "spec", None), "containers", None) or [])
    ports = {int(p.container_port) for c in containers for p in (c.ports or []) if p.container_port}
    return Workload(
        name=str(meta.name),
        namespace=str(meta.namespace or ""),
        workload_kind=kind,
        replicas=int(spec.replicas) if spec.replicas is not None else None,
        images={str(c.image) for c in containers if c.image},
        ports=ports,
        sources={"kubernetes"},
    )


def list_workloads(
    *, kubeconfig: Path | None, context: str | None = None, namespaces: tuple[str, ...] = ()
) -> list[Workload]:
    """Return every Deployment and StatefulSet (in ``namespaces``, or in all); raise DiscoveryError on failure."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    api = client.AppsV1Api(_api_client(kubeconfig, context))
    found: list[Workload] = []
    try:
        for ns in namespaces or (None,):
            if ns is None:
                lists = [
                    (api.list_deployment_for_all_namespaces(), "Deployment"),
                    (api.list_stateful_set_for_all_namespaces(), "StatefulSet"),
                ]
            else:
                lists = [
                    (api.list_namespaced_deployment(ns), "Deployment"),
                    (api.list_namespaced_stateful_set(ns), "StatefulSet"),
                ]
            found.extend(
                _workload(item, kind) for listing, kind in lists for item in getattr(listing, "items", [])
            )
    except ApiException as exc:
        raise DiscoveryError(
            f"the Kubernetes API refused to list workloads: {exc.status} {exc.reason}"
        ) from None
    except (HTTPError, OSError) as exc:
        raise DiscoveryError(f"cannot reach the Kubernetes API: {exc}") from None
    return found
