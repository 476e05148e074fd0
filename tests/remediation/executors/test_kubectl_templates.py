"""Every built-in shell template, run through the real kubectl against the test API server."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from playbooks.catalog import builtin_catalog
from remediation.executors.base import ExecRequest, Outcome
from remediation.executors.shell import ShellExecutor
from tests.remediation.executors import kubeobjects
from tests.remediation.executors.kubeapi import KubeApiServer, Recorded
from tests.remediation.executors.kubeobjects import NS

DEPLOYMENT = f"/apis/apps/v1/namespaces/{NS}/deployments/frontend"
STRATEGIC = "application/strategic-merge-patch+json"


def kubectl_binary() -> str:
    """Return kubectl's path; fail with the install instruction when it is missing (or skip when opted out)."""
    if os.environ.get("REMEDIATE_TEST_KUBECTL", "").lower() == "off":
        pytest.skip("REMEDIATE_TEST_KUBECTL=off")
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail(
            "kubectl is not installed: run `sudo bash deploy/ci/install-system-deps.sh` "
            "(Debian package kubernetes-client; or set REMEDIATE_TEST_KUBECTL=off to skip this test)"
        )
    return path


def shell_executor(kubeconfig: Path, tmp_path: Path) -> ShellExecutor:
    """A shell executor whose kubectl talks to the test API server (frontend lives in namespace shop)."""
    kubectl_binary()
    env = {"KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path), "KUBECACHEDIR": str(tmp_path / "kube-cache")}
    return ShellExecutor(timeout_s=120, namespaces={"frontend": NS}, env=env)


def run(executor: ShellExecutor, action_id: str, params: dict[str, Any] | None = None) -> Outcome:
    """Run a built-in action's shell template on target frontend."""
    action = builtin_catalog().get(action_id)
    request = ExecRequest(f"req-{action_id}", action, "frontend", action.validate_params(params or {}))
    return executor.execute(request, dry_run=False)


def writes(api: KubeApiServer) -> list[tuple[str, str, str | None]]:
    """Return (method, path, content type) of every write the server received."""
    return [(r.method, r.path, r.content_type) for r in api.writes()]


def only_write(api: KubeApiServer) -> Recorded:
    [write] = api.writes()
    return write


def test_every_builtin_shell_template_is_kubectl_and_tested() -> None:
    shell = {a.id: a.executors["shell"] for a in builtin_catalog().actions.values() if "shell" in a.executors}
    assert sorted(shell) == sorted(TESTED)
    for spec in shell.values():
        for key in ("argv", "read_replicas"):
            assert spec.get(key) is None or spec[key][0] == "kubectl"


def test_restart_service_patches_the_restarted_at_annotation(
    kube_api: KubeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    kubeobjects.deployment(kube_api)
    out = run(shell_executor(kubeconfig, tmp_path), "restart_service")
    assert out.status == "succeeded", out.output
    write = only_write(kube_api)
    assert (write.method, write.path, write.content_type) == ("PATCH", DEPLOYMENT, STRATEGIC)
    annotations = write.body["spec"]["template"]["metadata"]["annotations"]
    assert list(write.body) == ["spec"] and list(annotations) == ["kubectl.kubernetes.io/restartedAt"]
    stored = kube_api.get("deployments", NS, "frontend")["spec"]["template"]["metadata"]["annotations"]
    assert stored["kubectl.kubernetes.io/restartedAt"] == annotations["kubectl.kubernetes.io/restartedAt"]


def test_rollback_deploy_replaces_the_template_with_the_previous_replicaset(
    kube_api: KubeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    kubeobjects.deployment(kube_api)
    out = run(shell_executor(kubeconfig, tmp_path), "rollback_deploy")
    assert out.status == "succeeded", out.output
    listed = [r for r in kube_api.requests if r.path.endswith("/replicasets")]
    assert listed and listed[0].query["labelSelector"] == ["app=frontend"]
    write = only_write(kube_api)
    assert (write.method, write.path, write.content_type) == (
        "PATCH",
        DEPLOYMENT,
        "application/json-patch+json",
    )
    replace = next(op for op in write.body if op["path"] == "/spec/template")
    assert replace["op"] == "replace"
    template = kube_api.get("deployments", NS, "frontend")["spec"]["template"]
    assert template["spec"]["containers"][0]["image"] == "web:v2"
    assert "env" not in template["spec"]["containers"][0]  # the bad revision's BAD_FLAG is gone
    assert (
        "annotations" not in template["metadata"]
        and "pod-template-hash" not in template["metadata"]["labels"]
    )


@pytest.mark.parametrize(("action_id", "by", "expected"), [("scale_out", 3, 5), ("scale_in", 1, 1)])
def test_scale_sets_current_plus_or_minus_replicas_through_the_scale_subresource(
    kube_api: KubeApiServer, kubeconfig: Path, tmp_path: Path, action_id: str, by: int, expected: int
) -> None:
    kubeobjects.deployment(kube_api, replicas=2)
    out = run(shell_executor(kubeconfig, tmp_path), action_id, {"replicas": by})
    assert out.status == "succeeded", out.output
    assert out.commands[1].endswith(f"--current-replicas=2 --replicas={expected}")
    write = only_write(kube_api)
    assert (write.method, write.path) == ("PUT", DEPLOYMENT + "/scale")
    assert write.body["spec"] == {"replicas": expected} and write.body["kind"] == "Scale"
    assert write.body["metadata"]["resourceVersion"]  # kubectl's --current-replicas precondition
    assert kube_api.get("deployments", NS, "frontend")["spec"]["replicas"] == expected


def test_scale_in_below_one_replica_is_refused_before_any_write(
    kube_api: KubeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    kubeobjects.deployment(kube_api, replicas=2)
    out = run(shell_executor(kubeconfig, tmp_path), "scale_in", {"replicas": 2})
    assert out.status == "failed" and "would leave 0 replicas" in out.detail
    assert kube_api.writes() == []


def test_a_missing_deployment_fails_with_kubectls_message(
    kube_api: KubeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    out = run(shell_executor(kubeconfig, tmp_path), "restart_service")
    assert out.status == "failed" and "not found" in out.output
    assert kube_api.writes() == []


def test_namespace_comes_from_the_topology_else_the_default(
    kube_api: KubeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    kubeobjects.deployment(kube_api)
    executor = shell_executor(kubeconfig, tmp_path)
    executor.namespaces = {}
    out = run(executor, "restart_service")
    assert out.status == "failed"
    assert any(r.path == "/apis/apps/v1/namespaces/default/deployments/frontend" for r in kube_api.requests)


TESTED = ("restart_service", "rollback_deploy", "scale_out", "scale_in")


def test_a_scale_by_someone_else_in_between_makes_kubectl_refuse(
    kube_api: KubeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    kubeobjects.deployment(kube_api, replicas=2)

    def someone_scales(request: Recorded) -> None:
        if request.method == "GET" and request.path == DEPLOYMENT and not kube_api.after[1:]:
            kube_api.get("deployments", NS, "frontend")["spec"]["replicas"] = 7
            kube_api.after.append(lambda _: None)  # once: after the template's read of the count

    kube_api.after.append(someone_scales)
    out = run(shell_executor(kubeconfig, tmp_path), "scale_out", {"replicas": 1})
    assert out.status == "failed" and "Expected replicas to be 2, was 7" in out.output
    assert kube_api.writes() == [] and kube_api.get("deployments", NS, "frontend")["spec"]["replicas"] == 7
