"""The kubernetes executor: rollout restart, scale and rollout undo of a Deployment, via the official client.

Every change is a PATCH of the Deployment; a dry run sends the same PATCH with ``dryRun=All`` so the
API server validates it without persisting (server-side dry run). The patch also stamps the
annotation ``remediate.io/request-id``; finding it already there means the request ran, so a repeat
does nothing (idempotent across processes, not only within one).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from playbooks.models import Action
from remediation.errors import ExecutorError
from remediation.executors.base import ExecRequest, Outcome, spec_of

OPERATIONS = ("rollout_restart", "scale", "rollout_undo")
REQUEST_ANNOTATION = "remediate.io/request-id"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
PATCH_TYPE = "application/merge-patch+json"
# A Deployment name is a DNS-1123 subdomain; used with fullmatch ("$" would pass a trailing newline).
DEPLOYMENT_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@dataclass(frozen=True)
class KubernetesSettings:
    """How to reach the API server: base URL, bearer token, namespace, TLS verification."""

    host: str
    namespace: str = "default"
    token: str | None = None
    verify_ssl: bool = True
    timeout_s: float = 10.0


class KubernetesExecutor:
    """Acts on Deployments named like the target service."""

    kind = "kubernetes"

    def __init__(self, settings: KubernetesSettings) -> None:
        config = k8s.Configuration(host=settings.host)
        config.verify_ssl = settings.verify_ssl
        if settings.token:
            config.api_key = {"BearerToken": settings.token}
            config.api_key_prefix = {"BearerToken": "Bearer"}
        self.settings = settings
        self.apps = k8s.AppsV1Api(k8s.ApiClient(config))

    def execute(self, request: ExecRequest, dry_run: bool) -> Outcome:
        """Patch the Deployment for the action (dry run: the same patch with ``dryRun=All``)."""
        spec = spec_of(request, self.kind)
        operation = str(spec.get("operation", ""))
        if operation not in OPERATIONS:
            raise ExecutorError(
                f"unknown kubernetes operation {operation!r}; expected one of {', '.join(OPERATIONS)}"
            )
        if not request.target:
            raise ExecutorError(f"{request.action.id} needs a target Deployment")
        if len(request.target) > 253 or not DEPLOYMENT_NAME.fullmatch(request.target):
            raise ExecutorError(
                f"target {request.target!r} is not a Deployment name (lower-case letters, digits, - and ., "
                "at most 253 characters)"
            )
        name, ns = request.target, self.settings.namespace
        try:
            deployment = self._read(name)
            done = (deployment.get("metadata", {}).get("annotations") or {}).get(REQUEST_ANNOTATION)
            if done == request.request_id and not dry_run:
                return Outcome(
                    "succeeded", f"deployment/{name} already carries this request; nothing done again"
                )
            patch = self._patch_for(operation, spec, request, deployment)
            shown = f"PATCH deployments/{name} -n {ns}{' dryRun=All' if dry_run else ''} {patch}"
            self.apps.patch_namespaced_deployment(
                name,
                ns,
                patch,
                dry_run="All" if dry_run else None,
                _content_type=PATCH_TYPE,
                _request_timeout=self.settings.timeout_s,
            )
        except ApiException as exc:
            return Outcome(
                "failed",
                f"the API server refused: {exc.status} {exc.reason}",
                data={"body": str(exc.body)[:2000]},
            )
        except ExecutorError as exc:
            return Outcome("failed", str(exc))
        except Exception as exc:  # network errors from urllib3: we cannot know whether the PATCH landed
            return Outcome("unknown", f"lost contact with the API server: {type(exc).__name__}: {exc}")
        if dry_run:
            return Outcome(
                "dry_run", f"the API server accepted (dry run) {shown}", (shown,), data={"patch": patch}
            )
        return Outcome(
            "succeeded", f"{operation} of deployment/{name} accepted", (shown,), data={"patch": patch}
        )

    def _read(self, name: str) -> dict[str, Any]:
        raw = self.apps.read_namespaced_deployment(
            name, self.settings.namespace, _request_timeout=self.settings.timeout_s
        )
        return raw.to_dict() if hasattr(raw, "to_dict") else dict(raw)

    def _patch_for(
        self, operation: str, spec: Mapping[str, Any], request: ExecRequest, deployment: dict[str, Any]
    ) -> dict[str, Any]:
        stamp = {"metadata": {"annotations": {REQUEST_ANNOTATION: request.request_id}}}
        if operation == "rollout_restart":
            now = datetime.now(UTC).isoformat(timespec="seconds")
            template = {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}
            return {**stamp, "spec": {"template": template}}
        if operation == "scale":
            current = int((deployment.get("spec") or {}).get("replicas") or 0)
            delta = int(request.params.get("replicas", 1))
            sign = -1 if spec.get("direction") == "down" else 1
            wanted = max(0, current + sign * delta)
            return {**stamp, "spec": {"replicas": wanted}}
        return {**stamp, "spec": {"template": self._previous_template(deployment)}}

    def _previous_template(self, deployment: dict[str, Any]) -> dict[str, Any]:
        """Return the pod template of the ReplicaSet one revision before the current one (what kubectl undo does)."""
        meta = deployment.get("metadata") or {}
        current = int((meta.get("annotations") or {}).get(REVISION_ANNOTATION, "0"))
        labels = ((deployment.get("spec") or {}).get("selector") or {}).get("match_labels") or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        sets = self.apps.list_namespaced_replica_set(
            self.settings.namespace, label_selector=selector, _request_timeout=self.settings.timeout_s
        )
        candidates = []
        for rs in sets.items or []:
            rs_dict = rs.to_dict() if hasattr(rs, "to_dict") else dict(rs)
            rs_meta = rs_dict.get("metadata") or {}
            owners = [o.get("name") for o in rs_meta.get("owner_references") or []]
            revision = int((rs_meta.get("annotations") or {}).get(REVISION_ANNOTATION, "0"))
            if meta.get("name") in owners and revision < current:
                candidates.append((revision, rs_dict))
        if not candidates:
            raise ExecutorError(f"deployment/{meta.get('name')} has no earlier revision to roll back to")
        _, previous = max(candidates, key=lambda item: item[0])
        template = dict((previous.get("spec") or {}).get("template") or {})
        tmeta = dict(template.get("metadata") or {})
        tlabels = {k: v for k, v in (tmeta.get("labels") or {}).items() if k != "pod-template-hash"}
        tmeta["labels"] = tlabels
        template["metadata"] = tmeta
        return k8s.ApiClient().sanitize_for_serialization(_camel(template))


def _camel(value: Any) -> Any:
    """Turn the client's snake_case dict keys back into the API's camelCase (labels and annotations untouched)."""
    if isinstance(value, list):
        return [_camel(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if item is None:
            continue
        parts = key.split("_")
        camel = (
            parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])
            if "_" in key and "/" not in key and "." not in key
            else key
        )
        out[camel] = item if key in ("labels", "annotations", "match_labels") else _camel(item)
    return out


def check_spec(action: Action, spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Check an action's kubernetes config: a known ``operation``; scale needs a ``replicas`` parameter."""
    operation = spec.get("operation")
    if operation not in OPERATIONS:
        return [("operation", f"unknown operation {operation!r}; expected one of {', '.join(OPERATIONS)}")]
    if operation == "scale" and "replicas" not in action.params:
        return [("operation", "scale needs the action to have a 'replicas' parameter")]
    if operation == "scale" and spec.get("direction", "up") not in ("up", "down"):
        return [("direction", "expected up or down")]
    return []
