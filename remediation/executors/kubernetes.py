"""The kubernetes executor: restart, roll back and scale Deployments and StatefulSets, as kubectl does.

Constructor (keyword-only; E1's settings builder calls it)::

    KubernetesExecutor(kubeconfig=None, context=None, namespace="default", namespaces=None,
                       hpa="route", rollout_timeout_s=300.0, poll_s=2.0, request_timeout_s=10.0)

It loads credentials at once (:mod:`remediation.executors.kubeauth`: kubeconfig path and context, else
the pod's service account, else the default kubeconfig) and raises ``KubeConfigError`` with one line
when they cannot be loaded. ``namespaces`` maps a service to its namespace (the topology's node
attribute ``namespace``, see :func:`namespaces_from_graph`); others use ``namespace``. ``hpa`` says
what a scale does when a HorizontalPodAutoscaler targets the workload: ``route`` changes the HPA's
``minReplicas``, ``refuse`` refuses with a reason.

Every write goes first with ``dryRun=All`` (validated by the API server, persisted nowhere); a dry run
stops there. After the real write the executor watches the rollout (what ``kubectl rollout status``
checks) until it is done (``succeeded``), failed its progress deadline (``failed``) or the timeout
passes (``unknown``). The write stamps ``remediate.io/request-id``; a repeated request id finds it
and does not act twice (a scale sets the same absolute count again).
"""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import networkx as nx
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError, NewConnectionError, SSLError

from playbooks.models import Action
from remediation.errors import ExecutorError
from remediation.executors import kubecanary, kubeplans
from remediation.executors.base import ExecRequest, Outcome, OutcomeMemo, Status, spec_of
from remediation.executors.kubeauth import load_client
from remediation.executors.kubedrift import health, spec_drift
from remediation.executors.kubeplans import REQUEST_ANNOTATION, Change, Cluster, Workload
from remediation.executors.kuberollout import rollout_state

OPERATIONS = ("rollout_restart", "scale", "rollout_undo")
KINDS = ("Deployment", "StatefulSet")
# DNS-1123 names, used with fullmatch ("$" would let a trailing newline through).
WORKLOAD_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

__all__ = ["REQUEST_ANNOTATION", "KubernetesExecutor", "check_spec", "namespaces_from_graph"]


def namespaces_from_graph(graph: nx.DiGraph) -> dict[str, str]:
    """Return service -> namespace for the topology nodes that carry a ``namespace`` attribute."""
    return {str(n): str(a["namespace"]) for n, a in graph.nodes(data=True) if a.get("namespace")}


class KubernetesExecutor:
    """Acts on the Deployment (or else StatefulSet) named like the target service."""

    kind = "kubernetes"
    supports_canary = True  # a share of the pods first (remediation.executors.kubecanary)

    def __init__(
        self,
        *,
        kubeconfig: Path | None = None,
        context: str | None = None,
        namespace: str = "default",
        namespaces: Mapping[str, str] | None = None,
        hpa: Literal["route", "refuse"] = "route",
        rollout_timeout_s: float = 300.0,
        poll_s: float = 2.0,
        request_timeout_s: float = 10.0,
    ) -> None:
        if not NAMESPACE_NAME.fullmatch(namespace):
            raise ExecutorError(f"namespace {namespace!r} is not a namespace name (DNS-1123 label)")
        if hpa not in ("route", "refuse"):
            raise ExecutorError(f"hpa must be 'route' or 'refuse', got {hpa!r}")
        api, self.source = load_client(kubeconfig=kubeconfig, context=context)
        self.cluster = Cluster(api, request_timeout_s)
        self.namespace = namespace
        self.namespaces = namespaces if namespaces is not None else {}
        self.hpa = hpa
        self.rollout_timeout_s = rollout_timeout_s
        self.poll_s = poll_s
        self._sleep: Callable[[float], None] = time.sleep
        self._memo = OutcomeMemo()

    def namespace_of(self, service: str) -> str:
        """Return the service's namespace: the topology's, else the default."""
        namespace = self.namespaces.get(service) or self.namespace
        if not NAMESPACE_NAME.fullmatch(namespace):
            raise ExecutorError(
                f"namespace {namespace!r} of {service} is not a namespace name (DNS-1123 label)"
            )
        return namespace

    def execute(self, request: ExecRequest, dry_run: bool) -> Outcome:
        """Dry-run the writes on the server; unless ``dry_run``, send them and watch the rollout."""
        operation = _operation(spec_of(request, self.kind))
        name = _target(request)
        namespace = self.namespace_of(name)
        if not dry_run and (seen := self._memo.get(request.request_id)) is not None:
            return seen
        try:
            workload = self._find(name, namespace)
            change = self._plan(operation, request, workload)
            for write in change.writes:
                write.send("All")
            shown = tuple(w.shown for w in change.writes)
            if dry_run:
                detail = "; ".join(shown) or change.note or "nothing to send"
                detail += f" ({change.note})" if request.canary is not None and shown and change.note else ""
                return Outcome(
                    "dry_run", f"the API server accepted (dry run) {detail}", shown, data=change.data
                )
            for write in change.writes:
                write.send(None)
        except ApiException as exc:
            return Outcome("failed", f"the API server refused: {exc.status} {exc.reason}", data=_body(exc))
        except ExecutorError as exc:
            return Outcome("failed", str(exc))
        except (HTTPError, OSError) as exc:
            return _unreachable(exc)
        status, detail, after = self._watch(workload, change)
        detail = f"{change.note}; {detail}" if change.note else detail
        data = {k: v for k, v in change.data.items() if k != "template"}
        if after is not None:  # docs/verification.md, "Spec drift": evidence for the verdict
            drift = spec_drift("canary" if request.canary else operation, workload.body, after,
                               template=change.data.get("template"))  # fmt: skip
            data |= {"spec_drift": list(drift), "health": health(after), "workload": workload.ref}
        return self._memo.put(request.request_id, Outcome(status, detail, shown, data=data))

    def _find(self, name: str, namespace: str) -> Workload:
        for kind in KINDS:
            try:
                return self.cluster.read(kind, name, namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        raise ExecutorError(f"no Deployment or StatefulSet named {name} in namespace {namespace}")

    def _plan(self, operation: str, request: ExecRequest, w: Workload) -> Change:
        spec = spec_of(request, self.kind)
        if request.canary is not None:
            return kubecanary.plan(self.cluster, operation, w, request.request_id, request.canary)
        if operation == "scale":
            delta = int(request.params.get("replicas", 1))
            delta = -delta if spec.get("direction") == "down" else delta
            return kubeplans.scale(self.cluster, w, request.request_id, delta, self.hpa)
        if w.annotations.get(REQUEST_ANNOTATION) == request.request_id:
            return Change((), note=f"{w.ref} already carries this request; nothing sent again")
        if operation == "rollout_restart":
            return kubeplans.restart(self.cluster, w, request.request_id)
        if w.kind == "StatefulSet":
            return kubeplans.undo_statefulset(self.cluster, w, request.request_id)
        return kubeplans.undo_deployment(self.cluster, w, request.request_id)

    def _watch(self, w: Workload, change: Change) -> tuple[Status, str, dict[str, Any] | None]:
        """Poll the workload until its rollout is done, failed or the timeout passes; return its last JSON."""
        deadline = time.monotonic() + self.rollout_timeout_s
        while True:
            try:
                body = self.cluster.read(w.kind, w.name, w.namespace).body
            except (ApiException, HTTPError, OSError) as exc:
                return "unknown", f"the change was sent but reading {w.ref} back failed: {exc}", None
            state, reason = rollout_state(w.kind, body, change.wanted, change.at_least)
            if state != "progressing":
                return state, reason, body
            if time.monotonic() >= deadline:
                return "unknown", f"still rolling out after {self.rollout_timeout_s:g}s: {reason}", body
            self._sleep(self.poll_s)


def _operation(spec: Mapping[str, Any]) -> str:
    operation = str(spec.get("operation", ""))
    if operation not in OPERATIONS:
        raise ExecutorError(
            f"unknown kubernetes operation {operation!r}; expected one of {', '.join(OPERATIONS)}"
        )
    return operation


def _target(request: ExecRequest) -> str:
    if not request.target:
        raise ExecutorError(f"{request.action.id} needs a target workload")
    if len(request.target) > 253 or not WORKLOAD_NAME.fullmatch(request.target):
        raise ExecutorError(
            f"target {request.target!r} is not a Deployment name (lower-case letters, digits, - and ., "
            "at most 253 characters)"
        )
    return request.target


def _unreachable(exc: BaseException) -> Outcome:
    """Failed when no request can have landed (TLS check, connection refused), else unknown."""
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, SSLError | NewConnectionError | ssl.SSLError | ConnectionRefusedError):
        return Outcome("failed", f"cannot reach the API server: {type(reason).__name__}: {reason}")
    return Outcome("unknown", f"lost contact with the API server: {type(exc).__name__}: {exc}")


def _body(exc: ApiException) -> dict[str, Any]:
    return {"body": str(exc.body)[:2000]}


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
