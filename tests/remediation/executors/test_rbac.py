"""deploy/kubernetes/rbac.yaml grants exactly the verbs the executor and the kubectl templates use."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from playbooks.catalog import builtin_catalog
from remediation.executors.base import Canary, ExecRequest
from remediation.executors.kubernetes import KubernetesExecutor
from tests.remediation.executors import kubeobjects
from tests.remediation.executors.kubeapi import KubeApiServer, Recorded
from tests.remediation.executors.kubeobjects import NS
from tests.remediation.executors.test_kubectl_templates import TESTED, shell_executor

RBAC = Path(__file__).resolve().parents[3] / "deploy" / "kubernetes" / "rbac.yaml"
RESOURCE = re.compile(
    r"/(?:apis/(?P<group>[^/]+)/[^/]+|api/v1)/namespaces/[^/]+/(?P<plural>[^/]+)(?:/[^/]+(?P<sub>/[^/]+)?)?"
)
SCENARIOS = {
    "restart_service": {},
    "rollback_deploy": {},
    "scale_out": {"replicas": 1},
    "scale_in": {"replicas": 1},
}


def needed(requests: list[Recorded]) -> set[tuple[str, str, str]]:
    """Return the (apiGroup, resource, verb) triples RBAC checks for these requests (discovery excluded)."""
    out = set()
    for r in requests:
        m = RESOURCE.fullmatch(r.path)
        if m is None:
            continue  # discovery: open to every authenticated account
        named = r.path.count("/") >= (7 if m["group"] else 6)
        verb = {"GET": "get" if named else "list", "PATCH": "patch", "PUT": "update", "POST": "create",
                "DELETE": "delete"}[r.method]  # fmt: skip
        out.add((m["group"] or "", m["plural"] + (m["sub"] or ""), verb))
    return out


def granted() -> set[tuple[str, str, str]]:
    """Return the triples the Role grants, after checking the ServiceAccount and RoleBinding tie up."""
    docs: dict[str, Any] = {d["kind"]: d for d in yaml.safe_load_all(RBAC.read_text(encoding="utf-8"))}
    account, role, binding = docs["ServiceAccount"], docs["Role"], docs["RoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", **account["metadata"]}]
    assert binding["metadata"]["namespace"] == role["metadata"]["namespace"]
    return {
        (g, res, v)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for res in rule["resources"]
        for v in rule["verbs"]
    }


def exercise_everything(api: KubeApiServer, kubeconfig: Path, tmp_path: Path) -> None:
    """Run every kubectl template and every executor operation (Deployment, StatefulSet, HPA) once."""
    kubeobjects.deployment(api, replicas=3)
    kubeobjects.deployment(api, "cart", replicas=3)
    kubeobjects.statefulset(api, replicas=3)
    kubeobjects.hpa(api, "cart")
    kubectl_off = os.environ.get("REMEDIATE_TEST_KUBECTL", "").lower() == "off"
    for action_id in () if kubectl_off else TESTED:  # kubectl uses a subset of the executor's verbs
        shell = shell_executor(kubeconfig, tmp_path)
        action = builtin_catalog().get(action_id)
        params = action.validate_params(SCENARIOS[action_id])
        assert (
            shell.execute(ExecRequest(f"sh-{action_id}", action, "frontend", params), False).status
            == "succeeded"
        )
    executor = KubernetesExecutor(kubeconfig=kubeconfig, namespace=NS, poll_s=0.02)
    for target in ("frontend", "cart", "carts-db"):
        for action_id, raw in SCENARIOS.items():
            action = builtin_catalog().get(action_id)
            request = ExecRequest(f"k8s-{target}-{action_id}", action, target, action.validate_params(raw))
            outcome = executor.execute(request, dry_run=False)
            assert outcome.status == "succeeded", (target, action_id, outcome.detail)
    exercise_canaries(api, executor)


def exercise_canaries(api: KubeApiServer, executor: KubernetesExecutor) -> None:
    """Run a canary restart, a canary rollback (revisions differing in images only) and its undo."""
    kubeobjects.deployment(api, "web", replicas=3)
    for plural, name in (("deployments", "web"), ("replicasets", "web-h3")):
        obj = api.get(plural, NS, name)
        obj["spec"]["template"]["spec"]["containers"] = [{"name": "web", "image": "web:v3"}]
        obj["spec"]["template"]["metadata"].pop("annotations", None)
        api.put(obj)
    kubeobjects.pods(api, "web", count=3)
    for action_id, canary in (("restart_service", Canary(0.4)), ("rollback_deploy", Canary(0.4)),
                              ("rollback_deploy", Canary(0.4, undo=True, of="k8s-canary-rollback_deploy"))):  # fmt: skip
        action = builtin_catalog().get(action_id)
        rid = f"k8s-canary-{action_id}" + ("-undo" if canary.undo else "")
        outcome = executor.execute(ExecRequest(rid, action, "web", {}, None, canary), dry_run=False)
        assert outcome.status == "succeeded", (action_id, canary, outcome.detail)


def test_the_role_grants_exactly_what_is_used(
    kube_api: KubeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    exercise_everything(kube_api, kubeconfig, tmp_path)
    used = needed(kube_api.requests)
    assert ("autoscaling", "horizontalpodautoscalers", "patch") in used  # the HPA route ran
    assert ("apps", "controllerrevisions", "list") in used  # so did a StatefulSet rollback
    assert {("", "pods", "delete"), ("", "pods", "patch")} <= used  # and the canaries
    assert granted() == used
