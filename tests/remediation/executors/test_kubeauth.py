"""Credentials of the kubernetes executor: kubeconfig and context, in-cluster service account, CA bundle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes import client as k8s

from playbooks.catalog import builtin_catalog
from remediation.errors import KubeConfigError
from remediation.executors.base import ExecRequest
from remediation.executors.kubeauth import load_client
from remediation.executors.kubernetes import KubernetesExecutor
from tests.remediation.executors import kubeobjects
from tests.remediation.executors.kubeapi import TOKEN, KubeApiServer
from tests.remediation.executors.kubeobjects import NS


def restart(ex: KubernetesExecutor) -> str:
    request = ExecRequest("r1", builtin_catalog().get("restart_service"), "frontend")
    out = ex.execute(request, dry_run=True)
    return f"{out.status}: {out.detail}"


def test_kubeconfig_with_its_ca_bundle_reaches_the_server(kube_api: KubeApiServer, kubeconfig: Path) -> None:
    kubeobjects.deployment(kube_api)
    ex = KubernetesExecutor(kubeconfig=kubeconfig, namespace=NS)
    assert restart(ex).startswith("dry_run") and "context (current)" in ex.source


def test_a_server_outside_the_ca_bundle_is_refused(kube_api: KubeApiServer, tmp_path: Path) -> None:
    kubeobjects.deployment(kube_api)
    no_ca = kube_api.kubeconfig(tmp_path / "no-ca", ca=False)  # the system CAs do not know the test CA
    outcome = restart(KubernetesExecutor(kubeconfig=no_ca, namespace=NS))
    assert outcome.startswith("failed") and "CERTIFICATE_VERIFY_FAILED" in outcome
    assert kube_api.requests == []


def test_turning_tls_checks_off_is_refused(kube_api: KubeApiServer, tmp_path: Path) -> None:
    path = kube_api.kubeconfig(tmp_path / "insecure", ca=False)
    config = json.loads(path.read_text())
    config["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True
    path.write_text(json.dumps(config))
    with pytest.raises(KubeConfigError, match="turns TLS checks off"):
        KubernetesExecutor(kubeconfig=path)


def test_a_named_context_is_used(kube_api: KubeApiServer, tmp_path: Path) -> None:
    kubeobjects.deployment(kube_api)
    path = kube_api.kubeconfig(tmp_path / "two", context="staging")
    config = json.loads(path.read_text())
    config["clusters"].append({"name": "nowhere", "cluster": {"server": "https://127.0.0.1:9"}})
    config["contexts"].append({"name": "prod", "context": {"cluster": "nowhere", "user": "bot"}})
    config["current-context"] = "prod"
    path.write_text(json.dumps(config))
    ex = KubernetesExecutor(kubeconfig=path, context="staging", namespace=NS)
    assert restart(ex).startswith("dry_run")


def test_an_unknown_context_is_one_clear_line(kubeconfig: Path) -> None:
    with pytest.raises(KubeConfigError) as caught:
        KubernetesExecutor(kubeconfig=kubeconfig, context="prod")
    assert str(caught.value) == f"context 'prod' is not in kubeconfig {kubeconfig} (it has: test)"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{{{ not yaml", "is not a valid kubeconfig"),
        ("apiVersion: v1\nkind: Config\n", "current-context"),
        (
            json.dumps({"current-context": "x", "contexts": [{"name": "x", "context": {"cluster": "gone"}}]}),
            "gone",
        ),
    ],
)
def test_a_bad_kubeconfig_is_one_clear_line(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    with pytest.raises(KubeConfigError, match=says) as caught:
        KubernetesExecutor(kubeconfig=path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_a_missing_kubeconfig_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="does not exist"):
        KubernetesExecutor(kubeconfig=tmp_path / "nope")


def test_default_kubeconfig_from_the_environment(
    kube_api: KubeApiServer, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeobjects.deployment(kube_api)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    ex = KubernetesExecutor(namespace=NS)
    assert str(kubeconfig) in ex.source and restart(ex).startswith("dry_run")


def test_in_cluster_service_account(kube_api: KubeApiServer, tmp_path: Path) -> None:
    kubeobjects.deployment(kube_api)
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(TOKEN)
    (account / "ca.crt").write_bytes(kube_api.ca.read_bytes())
    port = kube_api.url.rsplit(":", 1)[1]
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port}
    api, source = load_client(environ=env, service_account_dir=account)
    assert source.startswith("in-cluster service account")
    read = k8s.AppsV1Api(api).read_namespaced_deployment("frontend", NS)
    assert read.metadata is not None and read.metadata.name == "frontend"


def test_in_cluster_without_a_token_is_one_clear_line(tmp_path: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    with pytest.raises(KubeConfigError, match=r"in-cluster service account .* is unusable"):
        load_client(environ=env, service_account_dir=tmp_path)
