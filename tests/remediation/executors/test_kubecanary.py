"""Canaries and spec drift of the kubernetes executor against the test API server (HTTPS, token, its CA)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playbooks.catalog import builtin_catalog
from remediation.executors.base import Canary, ExecRequest, Outcome
from remediation.executors.kubecanary import CANARY_OF
from remediation.executors.kubedrift import CANARY_ANNOTATION
from remediation.executors.kubernetes import KubernetesExecutor
from tests.remediation.executors import kubeobjects
from tests.remediation.executors.kubeapi import KubeApiServer, Recorded
from tests.remediation.executors.kubeobjects import NS
from tests.remediation.executors.test_kubernetes import DEPLOYMENT, dry_runs, executor

PODS = f"/api/v1/namespaces/{NS}/pods"


def run(
    ex: KubernetesExecutor, action_id: str, canary: Canary | None, *, dry_run: bool = False, rid: str = ""
) -> Outcome:
    action = builtin_catalog().get(action_id)
    request = ExecRequest(rid or f"req-{action_id}", action, "frontend", {}, None, canary)
    return ex.execute(request, dry_run)


def _images_only(api: KubeApiServer) -> None:
    """Make the current revision differ from the previous one in its image only."""
    for plural, name in (("deployments", "frontend"), ("replicasets", "frontend-h3")):
        obj = api.get(plural, NS, name)
        template = obj["spec"]["template"]
        template["spec"]["containers"] = [{"name": "web", "image": "web:v3"}]
        template["metadata"].pop("annotations", None)
        api.put(obj)


def test_a_canary_restart_deletes_one_pod_of_two_after_a_dry_run(
    kube_api: KubeApiServer, kubeconfig: Path
) -> None:
    kubeobjects.deployment(kube_api)
    names = kubeobjects.pods(kube_api, count=2)
    before = kube_api.get("deployments", NS, "frontend")["spec"]
    out = run(executor(kubeconfig), "restart_service", Canary(0.25))
    assert out.status == "succeeded", out.detail
    assert "1 of 2 pods deleted" in out.detail and out.data["canary_pods"] == [names[0]]
    deletes = [r for r in kube_api.writes() if r.method == "DELETE"]
    assert [(r.path, r.query.get("dryRun")) for r in deletes] == [
        (f"{PODS}/{names[0]}", ["All"]),
        (f"{PODS}/{names[0]}", None),
    ]
    assert ("pods", NS, names[0]) not in kube_api.objects and ("pods", NS, names[1]) in kube_api.objects
    stored = kube_api.get("deployments", NS, "frontend")
    assert stored["spec"] == before  # the template is untouched: no rollout of the rest
    assert stored["metadata"]["annotations"][CANARY_ANNOTATION] == "req-restart_service"
    assert out.data["spec_drift"] == [] and out.data["health"] == {"ready": 2, "desired": 2}
    again = run(executor(kubeconfig), "restart_service", Canary(0.25))  # a fresh process repeats it
    assert "already carries this canary" in again.detail and len(kube_api.writes()) == len(dry_runs(kube_api))
    assert len([r for r in kube_api.writes() if r.method == "DELETE"]) == 2


def test_a_canary_needs_several_pods(kube_api: KubeApiServer, kubeconfig: Path) -> None:
    kubeobjects.deployment(kube_api, replicas=1)
    kubeobjects.pods(kube_api, count=1)
    out = run(executor(kubeconfig), "restart_service", Canary(0.5))
    assert out.status == "failed" and "a canary needs several" in out.detail and kube_api.writes() == []


def test_the_dry_run_says_what_the_canary_would_do(kube_api: KubeApiServer, kubeconfig: Path) -> None:
    kubeobjects.deployment(kube_api)
    names = kubeobjects.pods(kube_api, count=4)
    out = run(executor(kubeconfig), "restart_service", Canary(0.5), dry_run=True)
    assert out.status == "dry_run" and "canary restart: 2 of 4 pods deleted" in out.detail
    assert f"DELETE pod/{names[1]} -n {NS}" in out.commands and dry_runs(kube_api) == [True, True, True]
    assert len([k for k in kube_api.objects if k[0] == "pods"]) == 4


def test_a_canary_rollback_differing_in_more_than_images_is_refused(
    kube_api: KubeApiServer, kubeconfig: Path
) -> None:
    kubeobjects.deployment(kube_api)  # the current revision also adds an env var
    kubeobjects.pods(kube_api)
    out = run(executor(kubeconfig), "rollback_deploy", Canary(0.25))
    assert out.status == "failed" and "more than container images" in out.detail
    assert kube_api.writes() == []


def test_a_canary_rollback_patches_one_pods_image_and_its_undo_deletes_that_pod(
    kube_api: KubeApiServer, kubeconfig: Path
) -> None:
    kubeobjects.deployment(kube_api)
    _images_only(kube_api)
    names = kubeobjects.pods(kube_api, count=3)
    ex = executor(kubeconfig)
    out = run(ex, "rollback_deploy", Canary(0.4), rid="req-canary")
    assert out.status == "succeeded", out.detail
    pod = kube_api.get("pods", NS, names[0])
    assert pod["spec"]["containers"] == [{"name": "web", "image": "web:v2"}]
    assert pod["metadata"]["annotations"][CANARY_OF] == "req-canary"
    assert kube_api.get("pods", NS, names[1])["spec"]["containers"][0]["image"] == "web:v3"
    template = kube_api.get("deployments", NS, "frontend")["spec"]["template"]
    assert template["spec"]["containers"] == [{"name": "web", "image": "web:v3"}]  # the rest waits
    undo = run(ex, "rollback_deploy", Canary(0.4, undo=True, of="req-canary"), rid="req-undo")
    assert undo.status == "succeeded" and undo.data["deleted"] == [names[0]]
    assert ("pods", NS, names[0]) not in kube_api.objects  # its ReplicaSet starts it on the current template


def test_undoing_a_canary_restart_sends_nothing(kube_api: KubeApiServer, kubeconfig: Path) -> None:
    kubeobjects.deployment(kube_api)
    kubeobjects.pods(kube_api)
    out = run(executor(kubeconfig), "restart_service", Canary(0.25, undo=True, of="req-x"))
    assert out.status == "succeeded" and "nothing to take back" in out.detail and kube_api.writes() == []


def test_spec_drift_is_reported_when_someone_else_changes_the_workload(
    kube_api: KubeApiServer, kubeconfig: Path
) -> None:
    kubeobjects.deployment(kube_api)

    def meddle(recorded: Recorded) -> None:  # during the rollout, something else edits the Deployment
        if recorded.method == "PATCH" and recorded.path == DEPLOYMENT and not recorded.query.get("dryRun"):
            obj = kube_api.objects[("deployments", NS, "frontend")]
            obj["spec"]["template"]["spec"]["containers"][0]["image"] = "web:hotfix"

    kube_api.after.append(meddle)
    out = run(executor(kubeconfig), "restart_service", None)
    assert out.status == "succeeded", out.detail
    drift: list[Any] = out.data["spec_drift"]
    assert drift == ['spec.template.spec.containers[web].image changed from "web:v3" to "web:hotfix"']


def test_a_plain_restart_and_rollback_drift_nothing(kube_api: KubeApiServer, kubeconfig: Path) -> None:
    kubeobjects.deployment(kube_api)
    ex = executor(kubeconfig)
    assert run(ex, "restart_service", None).data["spec_drift"] == []
    out = run(ex, "rollback_deploy", None)
    assert out.status == "succeeded" and out.data["spec_drift"] == [] and "template" not in out.data
