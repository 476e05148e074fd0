"""The kubernetes executor against the test API server (HTTPS, token, its own CA)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from playbooks.catalog import builtin_catalog
from remediation.errors import ExecutorError
from remediation.executors.base import ExecRequest, Outcome
from remediation.executors.kubeplans import REQUEST_ANNOTATION, RESTARTED_AT
from remediation.executors.kubernetes import KubernetesExecutor, namespaces_from_graph
from tests.remediation.executors import kubeobjects
from tests.remediation.executors.kubeapi import KubeApiServer, Recorded
from tests.remediation.executors.kubeobjects import NS

DEPLOYMENT = f"/apis/apps/v1/namespaces/{NS}/deployments/frontend"


def executor(kubeconfig: Path, **options: Any) -> KubernetesExecutor:
    """An executor on the test server; frontend and carts-db live in namespace shop (as the topology says)."""
    merged: dict[str, Any] = {
        "rollout_timeout_s": 30.0,
        "poll_s": 0.02,
        "namespaces": {"frontend": NS, "carts-db": NS},
    }
    return KubernetesExecutor(kubeconfig=kubeconfig, **(merged | options))


def run(
    ex: KubernetesExecutor, action_id: str, target: str = "frontend", dry_run: bool = False, **params: Any
) -> Outcome:
    action = builtin_catalog().get(action_id)
    return ex.execute(
        ExecRequest(f"req-{action_id}", action, target, action.validate_params(params)), dry_run
    )


def dry_runs(api: KubeApiServer) -> list[bool]:
    """Return, per write received, whether it was a server-side dry run."""
    return [r.query.get("dryRun") == ["All"] for r in api.writes()]


def test_restart_stamps_restarted_at_after_a_server_side_dry_run(
    kube_api: KubeApiServer, kubeconfig: Path
) -> None:
    kubeobjects.deployment(kube_api)
    out = run(executor(kubeconfig), "restart_service")
    assert out.status == "succeeded", out.detail
    assert dry_runs(kube_api) == [True, False]
    write = kube_api.writes()[-1]
    assert (write.method, write.path, write.content_type) == (
        "PATCH", DEPLOYMENT, "application/strategic-merge-patch+json",
    )  # fmt: skip
    stored = kube_api.get("deployments", NS, "frontend")
    assert RESTARTED_AT in stored["spec"]["template"]["metadata"]["annotations"]
    assert stored["metadata"]["annotations"][REQUEST_ANNOTATION] == "req-restart_service"


def test_a_repeated_request_sends_nothing_again(kube_api: KubeApiServer, kubeconfig: Path) -> None:
    kubeobjects.deployment(kube_api)
    assert run(executor(kubeconfig), "restart_service").status == "succeeded"
    again = run(executor(kubeconfig), "restart_service")  # a fresh process: the annotation says it ran
    assert again.status == "succeeded" and "already carries this request" in again.detail
    assert len(kube_api.writes()) == 2


def test_dry_run_changes_nothing(kube_api: KubeApiServer, kubeconfig: Path) -> None:
    kubeobjects.deployment(kube_api)
    before = kube_api.get("deployments", NS, "frontend")
    out = run(executor(kubeconfig), "rollback_deploy", dry_run=True)
    assert out.status == "dry_run" and "replace" in out.commands[0]
    assert dry_runs(kube_api) == [True] and kube_api.get("deployments", NS, "frontend") == before


def test_rollback_replaces_the_template_with_the_previous_replicasets(
    kube_api: KubeApiServer, kubeconfig: Path
) -> None:
    kubeobjects.deployment(kube_api)
    out = run(executor(kubeconfig), "rollback_deploy")
    assert out.status == "succeeded", out.detail
    assert out.data["to_revision"] == 2 and dry_runs(kube_api) == [True, False]
    write = kube_api.writes()[-1]
    assert write.content_type == "application/json-patch+json"
    ops = {op["path"]: op["op"] for op in write.body}
    assert ops == {
        "/metadata/resourceVersion": "test",
        "/spec/template": "replace",
        "/metadata/annotations": "add",
    }
    template = kube_api.get("deployments", NS, "frontend")["spec"]["template"]
    assert template["spec"]["containers"] == [{"name": "web", "image": "web:v2"}]  # BAD_FLAG env is gone
    assert template["metadata"] == {"labels": {"app": "frontend"}}  # the bad revision's annotation too


def test_rollback_without_an_earlier_revision_fails(kube_api: KubeApiServer, kubeconfig: Path) -> None:
    kubeobjects.deployment(kube_api, revisions=1)
    out = run(executor(kubeconfig), "rollback_deploy")
    assert out.status == "failed" and "no revision before 1" in out.detail and kube_api.writes() == []


@pytest.mark.parametrize(("action_id", "by", "expected"), [("scale_out", 3, 5), ("scale_in", 1, 1)])
def test_scale_goes_through_the_scale_subresource(
    kube_api: KubeApiServer, kubeconfig: Path, action_id: str, by: int, expected: int
) -> None:
    kubeobjects.deployment(kube_api, replicas=2)
    out = run(executor(kubeconfig), action_id, replicas=by)
    assert out.status == "succeeded", out.detail
    scale_writes = [r for r in kube_api.writes() if r.path == DEPLOYMENT + "/scale"]
    assert [(r.method, r.body["spec"]) for r in scale_writes] == [("PUT", {"replicas": expected})] * 2
    assert [r.query.get("dryRun") for r in scale_writes] == [["All"], None]
    assert kube_api.get("deployments", NS, "frontend")["spec"]["replicas"] == expected


def test_scale_in_to_zero_is_refused(kube_api: KubeApiServer, kubeconfig: Path) -> None:
    kubeobjects.deployment(kube_api, replicas=2)
    out = run(executor(kubeconfig), "scale_in", replicas=2)
    assert out.status == "failed" and "would leave 0 replicas" in out.detail and kube_api.writes() == []


def test_hpa_managed_scale_is_routed_to_min_replicas(kube_api: KubeApiServer, kubeconfig: Path) -> None:
    kubeobjects.deployment(kube_api, replicas=2)
    kubeobjects.hpa(kube_api, low=2, high=10)
    out = run(executor(kubeconfig), "scale_out", replicas=3)
    assert out.status == "succeeded", out.detail
    assert "minReplicas 2 -> 5" in out.detail
    paths = {r.path for r in kube_api.writes()}
    assert paths == {f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/frontend-hpa"}
    assert kube_api.get("horizontalpodautoscalers", NS, "frontend-hpa")["spec"]["minReplicas"] == 5
    assert kube_api.get("deployments", NS, "frontend")["spec"]["replicas"] == 5  # the HPA scaled it


def test_hpa_managed_scale_is_refused_when_asked(kube_api: KubeApiServer, kubeconfig: Path) -> None:
    kubeobjects.deployment(kube_api, replicas=2)
    kubeobjects.hpa(kube_api)
    out = run(executor(kubeconfig, hpa="refuse"), "scale_out", replicas=1)
    assert out.status == "failed" and "managed by HorizontalPodAutoscaler frontend-hpa" in out.detail
    assert kube_api.writes() == []


def test_hpa_route_refuses_past_max_replicas(kube_api: KubeApiServer, kubeconfig: Path) -> None:
    kubeobjects.deployment(kube_api, replicas=2)
    kubeobjects.hpa(kube_api, low=2, high=3)
    out = run(executor(kubeconfig), "scale_out", replicas=4)
    assert out.status == "failed" and "outside 1..3" in out.detail and kube_api.writes() == []


@pytest.mark.parametrize(("rollout", "status", "says"), [
    ("complete", "succeeded", "rolled out"),
    ("deadline", "failed", "exceeded its progress deadline"),
    ("stuck", "unknown", "still rolling out"),
])  # fmt: skip
def test_the_rollout_is_watched(
    kube_api: KubeApiServer, kubeconfig: Path, rollout: str, status: str, says: str
) -> None:
    kubeobjects.deployment(kube_api)
    kube_api.rollout = rollout
    out = run(executor(kubeconfig, rollout_timeout_s=0.3), "restart_service")
    assert out.status == status and says in out.detail


def test_statefulset_restart_and_rollback(kube_api: KubeApiServer, kubeconfig: Path) -> None:
    kubeobjects.statefulset(kube_api)
    ex = executor(kubeconfig)
    assert run(ex, "restart_service", target="carts-db").status == "succeeded"
    out = run(ex, "rollback_deploy", target="carts-db")
    assert out.status == "succeeded", out.detail
    assert kube_api.writes()[-1].content_type == "application/strategic-merge-patch+json"
    template = kube_api.get("statefulsets", NS, "carts-db")["spec"]["template"]
    assert template["spec"]["containers"] == [{"name": "web", "image": "db:v1"}]
    assert "annotations" not in template["metadata"]  # restartedAt and BAD_FLAG replaced, not merged


def test_a_missing_workload_fails(kube_api: KubeApiServer, kubeconfig: Path) -> None:
    out = run(executor(kubeconfig), "restart_service", target="ghost")
    assert (
        out.status == "failed"
        and "no Deployment or StatefulSet named ghost in namespace default" in out.detail
    )


def test_namespaces_come_from_the_topology_node_attribute() -> None:
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_node("frontend", namespace="shop")
    graph.add_node("legacy")
    assert namespaces_from_graph(graph) == {"frontend": "shop"}


@pytest.mark.parametrize("target", ["frontend\n", "Frontend", "front/end", "-frontend", "a" * 254])
def test_a_target_that_is_no_workload_name_is_refused(
    kube_api: KubeApiServer, kubeconfig: Path, target: str
) -> None:
    with pytest.raises(ExecutorError, match="not a Deployment name"):
        run(executor(kubeconfig), "restart_service", target=target)
    assert kube_api.writes() == []


def test_a_scale_by_someone_else_after_the_dry_run_is_not_overwritten(
    kube_api: KubeApiServer, kubeconfig: Path
) -> None:
    kubeobjects.deployment(kube_api, replicas=2)

    def someone_scales(request: Recorded) -> None:
        if request.method == "PUT" and request.query.get("dryRun") == ["All"]:
            kube_api.get("deployments", NS, "frontend")["spec"]["replicas"] = 7

    kube_api.after.append(someone_scales)
    out = run(executor(kubeconfig), "scale_out", replicas=1)
    assert out.status == "failed" and "now has 7 replicas, not 2: someone else scaled it" in out.detail
    assert [r.method for r in kube_api.writes() if r.query.get("dryRun") is None] == [
        "PATCH"
    ]  # the stamp only
    assert kube_api.get("deployments", NS, "frontend")["spec"]["replicas"] == 7
