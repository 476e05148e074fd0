"""Building the configured executor: routes, one-line refusals, kubeconfig and context checks, dry-run checks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from playbooks.catalog import builtin_catalog
from remediation.errors import ExecutorConfigError, ExecutorError
from remediation.executors.base import ExecRequest
from remediation.executors.build import ExecutorConfig, build_executor, node_namespaces
from remediation.executors.check import CHECK_TARGET, check_executors
from remediation.executors.pagerduty import PagerDutyExecutor
from remediation.executors.routing import RoutedExecutor, advisory, describe, describe_text, runs
from remediation.executors.shell import ShellExecutor
from remediation.executors.webhook import WebhookExecutor
from tests.remediation.executors import kubeobjects
from tests.remediation.executors.kubeapi import KubeApiServer
from tests.remediation.executors.receivers import JsonReceiver

SECRET = "hook-secret"
KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: "https://127.0.0.1:6443", certificate-authority-data: "bm90LWEtcmVhbC1jYQ=="}
users:
- name: bot
  user: {token: "t0ken"}
contexts:
- name: staging
  context: {cluster: test, user: bot, namespace: shop}
- name: prod
  context: {cluster: test, user: bot}
current-context: staging
"""


@pytest.fixture
def pagerduty() -> Iterator[JsonReceiver]:
    receiver = JsonReceiver("pagerduty")
    yield receiver
    receiver.close()


def webhook_config(**update: object) -> ExecutorConfig:
    base: dict[str, object] = {
        "kind": "webhook",
        "webhook_url": "http://127.0.0.1:9/hook",
        "webhook_secret": SECRET,
    }
    return ExecutorConfig(**{**base, **update})  # type: ignore[arg-type]


def test_none_is_advisory() -> None:
    assert build_executor(ExecutorConfig()) is None
    assert describe_text(None) == "none (advisory only)"
    assert not runs(None, "restart_service")


def test_webhook_builds() -> None:
    executor = build_executor(webhook_config())
    assert isinstance(executor, WebhookExecutor) and describe(executor) == {"kind": "webhook", "routes": {}}


@pytest.mark.parametrize(
    ("update", "needle"),
    [
        ({"webhook_url": None}, "needs REMEDIATE_WEBHOOK_URL"),
        ({"webhook_secret": None}, "needs REMEDIATE_WEBHOOK_SECRET"),
        (
            {"webhook_url": "ftp://host/hook"},
            "REMEDIATE_WEBHOOK_URL: webhook URL 'ftp://host/hook' must start",
        ),
        ({"kind": "sim"}, "only `remediate demo` runs"),
        ({"kind": "docker"}, "unknown executor 'docker'"),
        ({"routes": {"escalate": "pagerduty"}}, "REMEDIATE_PAGERDUTY_ROUTING_KEY is not set"),
    ],
)
def test_misconfiguration_is_one_actionable_line(update: dict[str, object], needle: str) -> None:
    with pytest.raises(ExecutorConfigError, match=needle.replace("(", r"\(")) as caught:
        build_executor(webhook_config(**update))
    assert "\n" not in str(caught.value)


def test_routing_key_routes_escalate_to_pagerduty(pagerduty: JsonReceiver) -> None:
    config = webhook_config(pagerduty_routing_key="key-1", pagerduty_events_url=pagerduty.url)
    executor = build_executor(config)
    assert isinstance(executor, RoutedExecutor)
    assert isinstance(executor.pick("escalate"), PagerDutyExecutor)
    assert isinstance(executor.pick("restart_service"), WebhookExecutor)
    assert describe_text(executor) == "webhook (escalate -> pagerduty)"
    out = executor.execute(
        ExecRequest("r1", builtin_catalog().get("escalate"), None, {}, "INC-3"), dry_run=False
    )
    assert out.status == "succeeded" and pagerduty.received[0]["body"]["dedup_key"] == "remediate-INC-3"


def test_with_none_only_routed_actions_run() -> None:
    executor = build_executor(ExecutorConfig(pagerduty_routing_key="key-1"))
    assert isinstance(executor, RoutedExecutor) and executor.kind == "none"
    assert runs(executor, "escalate") and not runs(executor, "restart_service")
    with pytest.raises(ExecutorError, match="approving records the decision and nothing runs"):
        executor.execute(
            ExecRequest("r1", builtin_catalog().get("restart_service"), "cart", {}), dry_run=True
        )


def test_a_route_to_none_keeps_that_action_advisory() -> None:
    executor = build_executor(webhook_config(routes={"rollback_deploy": "none"}))
    assert runs(executor, "restart_service") and not runs(executor, "rollback_deploy")


def test_shell_builds_with_kubeconfig_and_namespaces(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    config = ExecutorConfig(
        kind="shell", kubeconfig=path, kube_namespace="shop", namespaces={"carts": "sock"}
    )
    shell = build_executor(config)
    assert isinstance(shell, ShellExecutor)
    assert shell.env == {"KUBECONFIG": str(path)} and shell.namespace == "shop"
    request = ExecRequest("r1", builtin_catalog().get("restart_service"), "carts", {})
    assert "--namespace=sock" in shell.execute(request, dry_run=True).detail


def test_shell_refuses_a_context_it_cannot_use_and_a_missing_kubeconfig(tmp_path: Path) -> None:
    with pytest.raises(ExecutorConfigError, match="REMEDIATE_KUBE_CONTEXT is not used by the shell executor"):
        build_executor(ExecutorConfig(kind="shell", kube_context="prod"))
    with pytest.raises(ExecutorConfigError, match="no such file"):
        build_executor(ExecutorConfig(kind="shell", kubeconfig=tmp_path / "none"))


def test_missing_kubeconfig_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ExecutorConfigError, match=r"kubeconfig .*nope.yaml does not exist \(set REMEDIATE_KUBECONFIG"
    ):
        build_executor(ExecutorConfig(kind="kubernetes", kubeconfig=tmp_path / "nope.yaml"))


def test_unknown_context_names_the_ones_there(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    config = ExecutorConfig(kind="kubernetes", kubeconfig=path, kube_context="qa")
    with pytest.raises(
        ExecutorConfigError, match=r"context 'qa' is not in kubeconfig .* \(it has: staging, prod\)"
    ):
        build_executor(config)


def test_garbage_kubeconfig_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("just: [text")
    with pytest.raises(ExecutorConfigError, match="is not a valid kubeconfig"):
        build_executor(ExecutorConfig(kind="kubernetes", kubeconfig=path))


def test_no_credentials_anywhere_says_where_to_put_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ExecutorConfigError, match=r"cannot start: kubeconfig .* does not exist"):
        build_executor(ExecutorConfig(kind="kubernetes"))


def test_good_kubeconfig_and_context_build_the_executor(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    executor = build_executor(ExecutorConfig(kind="kubernetes", kubeconfig=path, kube_context="prod"))
    assert executor is not None and executor.kind == "kubernetes"


def test_node_namespaces_come_from_the_graph_file(tmp_path: Path) -> None:
    graph = {
        "directed": True,
        "nodes": [{"id": "carts", "namespace": "sock-shop"}, {"id": "db"}],
        "edges": [],
    }
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(graph))
    assert node_namespaces(str(path)) == {"carts": "sock-shop"}
    assert node_namespaces("online-boutique") == {}


def test_check_dry_runs_every_configured_executor(pagerduty: JsonReceiver) -> None:
    config = webhook_config(pagerduty_routing_key="key-1", pagerduty_events_url=pagerduty.url)
    rows = {row.executor: row for row in check_executors(config, builtin_catalog())}
    assert set(rows) == {"webhook", "pagerduty"}
    assert rows["webhook"].status == "dry_run" and rows["webhook"].target == CHECK_TARGET
    assert rows["webhook"].action == "restart_service" and "would POST" in rows["webhook"].detail
    assert rows["pagerduty"].action == "escalate" and rows["pagerduty"].used_for == "escalate"
    assert "key-1" not in rows["pagerduty"].detail
    assert pagerduty.received == []  # a dry run sends nothing


def test_check_reports_a_refusal_per_executor() -> None:
    rows = check_executors(
        webhook_config(webhook_url=None, routes={"escalate": "pagerduty"}), builtin_catalog()
    )
    assert [(r.executor, r.status) for r in rows] == [("webhook", "refused"), ("pagerduty", "refused")]
    assert "REMEDIATE_WEBHOOK_URL" in rows[0].detail and "ROUTING_KEY" in rows[1].detail


def test_check_with_none_says_advisory() -> None:
    [row] = check_executors(ExecutorConfig(), builtin_catalog())
    assert row.executor == "none" and row.status == "advisory" and "nothing runs" in row.detail


def test_check_kubernetes_against_the_test_api_server(kube_api: KubeApiServer, kubeconfig: Path) -> None:
    kubeobjects.deployment(kube_api, "frontend")
    config = ExecutorConfig(kind="kubernetes", kubeconfig=kubeconfig, kube_namespace=kubeobjects.NS)
    [missing] = check_executors(config, builtin_catalog())
    assert missing.status == "reachable" and "credentials work" in missing.detail
    [real] = check_executors(config, builtin_catalog(), target="frontend")
    assert real.status == "dry_run" and "dry run" in real.detail
    writes = kube_api.writes()
    assert writes and all(w.query.get("dryRun") == ["All"] for w in writes), "a check never persists a write"


def test_advisory_lines_say_what_runs_nothing() -> None:
    assert advisory(None) == (
        "Advisory mode: no executor is configured, so approving records the decision and nothing runs."
    )
    assert advisory(build_executor(ExecutorConfig(pagerduty_routing_key="k"))) == (
        "Advisory mode: no executor is configured, so approving records the decision and nothing runs, "
        "except escalate (pagerduty)."
    )
    partly = build_executor(webhook_config(routes={"rollback_deploy": "none"}))
    assert (
        advisory(partly)
        == "Approving rollback_deploy records the decision and nothing runs (routed to none)."
    )
    assert advisory(build_executor(webhook_config())) is None


def test_a_route_naming_no_action_is_refused() -> None:
    config = webhook_config(routes={"escalte": "pagerduty"})
    with pytest.raises(ExecutorConfigError, match="REMEDIATE_EXECUTOR_ROUTES names no action 'escalte'"):
        build_executor(config, actions=builtin_catalog().ids)
    [row] = check_executors(config, builtin_catalog())
    assert row.executor == "routes" and row.status == "refused" and "'escalte'" in row.detail
