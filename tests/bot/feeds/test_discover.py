"""`remediate topology discover` against a real Prometheus scraping a test exporter, run as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sim.topology import load_topology
from tests.bot.feeds.exporter import MeshWorld, MetricsExporter, Pod
from tests.bot.feeds.promserver import RealPrometheus

SHOP = MeshWorld(
    pods=[
        Pod("front-end", replicas=3, ports=(8079,)),
        Pod("carts"),
        Pod("orders"),
        Pod("carts-db", kind="StatefulSet", replicas=1, image="docker.io/library/mongo:4.4", ports=(27017,)),
        Pod("session-cache", image="docker.io/library/redis:7"),
        Pod("queue-master", namespace="jobs"),
        Pod("rabbitmq", namespace="jobs", kind="StatefulSet", replicas=1, image="rabbitmq:3.12-management"),
        Pod("shipping", namespace="jobs"),
        Pod("payment-ledger", kind="StatefulSet", replicas=1),  # stateful, image unknown
        Pod("idle-worker"),  # no traffic yet: only --kubernetes would add it
    ],
    istio=[
        ("istio-ingressgateway", "front-end"),
        ("front-end", "carts"),
        ("front-end", "orders"),
        ("carts", "carts-db"),
        ("front-end", "session-cache"),
        ("orders", "payment-ledger"),
    ],
    linkerd=[("queue-master", "rabbitmq"), ("shipping", "rabbitmq")],
    tempo=[("orders", "shipping")],
)


def remediate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "topology", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealPrometheus]:
    """A real Prometheus scraping the shop's exporter every second, with every family queryable."""
    with MetricsExporter(SHOP) as exporter:
        server = RealPrometheus(tmp_path_factory.mktemp("prometheus"), [exporter.target])
        try:
            for family in (
                "istio_requests_total",
                "response_total",
                "traces_service_graph_request_total",
                "kube_pod_container_info",
                "kube_statefulset_replicas",
                "kube_endpoint_ports",
            ):
                server.wait_for(f"count({family})")
            yield server
        finally:
            server.stop()


def discover(prometheus: RealPrometheus, out: Path, *extra: str) -> dict[str, Any]:
    done = remediate("discover", "--prometheus", prometheus.url, "--out", str(out), *extra)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(out.read_text(encoding="utf-8")))


def test_discovery_builds_a_graph_that_loads(prometheus: RealPrometheus, tmp_path: Path) -> None:
    doc = discover(prometheus, tmp_path / "shop.json", "--window", "10m")
    nodes = {n["id"]: n for n in doc["nodes"]}
    edges = {(e["source"], e["target"]): e["via"] for e in doc["edges"]}
    # gateways stay out; what they call is a frontend; idle-worker carries no traffic
    assert set(nodes) == {
        "front-end", "carts", "orders", "carts-db", "session-cache", "queue-master", "rabbitmq",
        "shipping", "payment-ledger",
    }  # fmt: skip
    assert edges[("front-end", "carts")] == ["istio"]
    assert edges[("queue-master", "rabbitmq")] == ["linkerd"]
    assert edges[("orders", "shipping")] == ["tempo"]
    assert len(edges) == 8
    assert nodes["front-end"]["kind"] == "frontend" and nodes["front-end"]["replicas"] == 3
    assert (nodes["carts-db"]["kind"], nodes["carts-db"]["stateful"]) == ("database", True)
    assert nodes["carts-db"]["workload_kind"] == "StatefulSet"
    assert (nodes["session-cache"]["kind"], nodes["session-cache"]["stateful"]) == ("cache", True)
    assert (nodes["rabbitmq"]["kind"], nodes["rabbitmq"]["namespace"]) == ("queue", "jobs")
    assert (nodes["payment-ledger"]["kind"], nodes["payment-ledger"]["stateful"]) == ("service", True)
    assert (nodes["carts"]["kind"], nodes["carts"]["stateful"], nodes["carts"]["namespace"]) == (
        "service", False, "shop",
    )  # fmt: skip
    assert nodes["shipping"]["namespace"] == "jobs"  # tempo gave no namespace; kube-state-metrics did
    topology = load_topology(tmp_path / "shop.json")  # the project's loader takes it as it is
    assert topology.kind_of("carts-db") == "database" and topology.n_edges == 8


def test_namespace_filter_keeps_edges_inside(prometheus: RealPrometheus, tmp_path: Path) -> None:
    doc = discover(prometheus, tmp_path / "jobs.json", "--namespace", "jobs")
    assert {n["id"] for n in doc["nodes"]} == {"queue-master", "rabbitmq", "shipping"}
    assert {(e["source"], e["target"]) for e in doc["edges"]} == {
        ("queue-master", "rabbitmq"), ("shipping", "rabbitmq"),
    }  # fmt: skip


def test_show_and_diff_of_discovered_graphs(prometheus: RealPrometheus, tmp_path: Path) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    discover(prometheus, old, "--namespace", "jobs")
    discover(prometheus, new)
    shown = remediate("show", str(new), "--json")
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert (info["services"], info["edges"]) == (9, 8)
    assert info["kinds"] == {"cache": 1, "database": 1, "frontend": 1, "queue": 1, "service": 5}
    table = remediate("show", str(new))
    assert table.returncode == 0 and "carts-db" in table.stdout
    diff = remediate("diff", str(old), str(new), "--json")
    assert diff.returncode == 0, diff.stderr
    change = json.loads(diff.stdout)
    assert "front-end" in change["nodes_added"] and change["nodes_removed"] == []
    assert {"source": "orders", "target": "shipping"} in change["edges_added"]
    text = remediate("diff", str(new), str(old))
    assert "- node front-end" in text.stdout and "- edge orders -> shipping" in text.stdout


def test_a_discovery_that_finds_nothing_fails(prometheus: RealPrometheus, tmp_path: Path) -> None:
    out = tmp_path / "none.json"
    done = remediate("discover", "--prometheus", prometheus.url, "--out", str(out), "--namespace", "nowhere")
    assert done.returncode == 1
    assert "discovery found no services in namespace(s) nowhere" in done.stderr
    assert not out.exists()


def test_unreachable_prometheus_and_bad_window_fail(tmp_path: Path) -> None:
    done = remediate("discover", "--prometheus", "http://127.0.0.1:9", "--out", str(tmp_path / "x.json"))
    assert done.returncode == 1 and "cannot reach Prometheus at http://127.0.0.1:9" in done.stderr
    done = remediate("discover", "--prometheus", "http://127.0.0.1:9", "--window", "an hour", "--out", "x")
    assert done.returncode == 1 and "--window: expected a Prometheus duration" in done.stderr


def test_a_topology_file_that_fails_to_load_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"nodes": [{"id": "a", "kind": "service"}], "edges": [{"source": "a", "target": "b"}]})
    )
    for args in (("show", str(bad)), ("diff", "online-boutique", str(bad))):
        done = remediate(*args)
        assert done.returncode == 1
        assert "edge a -> b names unknown node 'b'" in done.stderr


def _api_object(pod: Pod) -> dict[str, Any]:
    container = {"name": pod.name, "image": pod.image, "ports": [{"containerPort": p} for p in pod.ports]}
    return {
        "metadata": {"name": pod.name, "namespace": pod.namespace},
        "spec": {
            "replicas": pod.replicas,
            "selector": {"matchLabels": {"app": pod.name}},
            "template": {"metadata": {"labels": {"app": pod.name}}, "spec": {"containers": [container]}},
        },
    }


@pytest.fixture
def kube_api(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """A test Kubernetes API server listing the shop's Deployments and StatefulSets; yields a kubeconfig."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            kind = "StatefulSet" if "/statefulsets" in self.path else "Deployment"
            items = [_api_object(p) for p in SHOP.pods if p.kind == kind]
            body = json.dumps(
                {"kind": f"{kind}List", "apiVersion": "apps/v1", "metadata": {}, "items": items}
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = tmp_path / "kubeconfig"
    config.write_text(
        json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": f"http://127.0.0.1:{server.server_address[1]}"}}],
            "users": [{"name": "test", "user": {"token": "t"}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
        })
    )  # fmt: skip
    try:
        yield config, seen
    finally:
        server.shutdown()
        server.server_close()


def test_kubernetes_adds_workloads_without_traffic(
    prometheus: RealPrometheus, kube_api: tuple[Path, list[str]], tmp_path: Path
) -> None:
    config, seen = kube_api
    out = tmp_path / "all.json"
    done = remediate(
        "discover", "--prometheus", prometheus.url, "--out", str(out), "--kubernetes",
        env={"REMEDIATE_KUBECONFIG": str(config)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    nodes = {n["id"]: n for n in json.loads(out.read_text())["nodes"]}
    assert nodes["idle-worker"]["sources"] == ["kube-state-metrics", "kubernetes"]
    assert nodes["idle-worker"]["kind"] == "service"
    assert nodes["rabbitmq"]["kind"] == "queue"
    assert "/apis/apps/v1/deployments" in seen and "/apis/apps/v1/statefulsets" in seen
    load_topology(out)


def test_kubernetes_with_a_missing_kubeconfig_fails(prometheus: RealPrometheus, tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    done = remediate(
        "discover", "--prometheus", prometheus.url, "--out", str(tmp_path / "x.json"), "--kubernetes",
        env={"REMEDIATE_KUBECONFIG": str(missing)},
    )  # fmt: skip
    assert done.returncode == 1 and f"kubeconfig {missing}: no such file" in done.stderr
