"""`remediate serve`'s service graph, as a real subprocess: refusals without one, discovery and refresh."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.bot.cli.test_serve_cli import _free_port, _health
from tests.bot.conftest import BOT, RBAC, SECRET
from tests.bot.feeds.exporter import MeshWorld, MetricsExporter, Pod
from tests.bot.feeds.promserver import RealPrometheus

DEADLINE_S = 180.0
WORLD = MeshWorld(
    pods=[Pod("frontend"), Pod("checkoutservice"), Pod("redis-cart", kind="StatefulSet", image="redis:7")],
    istio=[
        ("istio-ingressgateway", "frontend"),
        ("frontend", "checkoutservice"),
        ("checkoutservice", "redis-cart"),
    ],
)


def _env(tmp_path: Path, sqlite_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REMEDIATE_", "KUBE"))}
    rbac = tmp_path / "rbac.yaml"
    rbac.write_text(RBAC, encoding="utf-8")
    return env | {
        "SLACK_BOT_TOKEN": "xoxb-x",
        "SLACK_SIGNING_SECRET": SECRET,
        "REMEDIATE_DATABASE_URL": sqlite_url,
        "REMEDIATE_DATA_DIR": str(tmp_path),
        "REMEDIATE_RBAC_CONFIG": str(rbac),
        "REMEDIATE_ALERTS_TOKEN": "t",
        "REMEDIATE_REQUESTER": BOT,
        "HOME": str(tmp_path),
        **extra,
    }


def _serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "serve", "--port", "0", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_serve_without_a_graph_refuses_and_says_how_to_get_one(tmp_path: Path, sqlite_url: str) -> None:
    done = _serve(_env(tmp_path, sqlite_url))
    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert "not starting: no service graph: pass --topology FILE" in message
    assert "remediate topology discover --prometheus URL --out FILE" in message and "Traceback" not in message


def test_serve_refuses_a_graph_that_fails_to_load(tmp_path: Path, sqlite_url: str) -> None:
    bad = tmp_path / "graph.json"
    bad.write_text(json.dumps({"nodes": [{"id": "a", "kind": "mainframe"}]}))
    done = _serve(_env(tmp_path, sqlite_url), "--topology", str(bad))
    assert done.returncode == 1
    assert "not starting:" in done.stderr and "unknown kind 'mainframe'" in done.stderr
    both = _serve(
        _env(tmp_path, sqlite_url), "--topology", "online-boutique", "--discover-prometheus", "http://x"
    )
    assert both.returncode == 1 and "not both" in both.stderr


def test_serve_refuses_when_discovery_finds_nothing(tmp_path: Path, sqlite_url: str) -> None:
    done = _serve(_env(tmp_path, sqlite_url), "--discover-prometheus", "http://127.0.0.1:9")
    assert done.returncode == 1
    assert "not starting: cannot reach Prometheus at http://127.0.0.1:9" in done.stderr


def _wait_health(base: str, done: Any, what: str) -> dict[str, Any]:
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        health = _health(base)
        if done(health):
            return health
        time.sleep(0.5)
    raise AssertionError(f"/healthz never showed {what}: {health}")


def test_serve_discovers_the_graph_and_refreshes_it(tmp_path: Path, sqlite_url: str) -> None:
    with MetricsExporter(WORLD) as exporter:
        prometheus = RealPrometheus(tmp_path / "prometheus", [exporter.target])
        log = tmp_path / "serve.log"
        port = _free_port()
        try:
            prometheus.wait_for("count(istio_requests_total)")
            prometheus.wait_for("count(kube_statefulset_replicas)")
            env = _env(tmp_path, sqlite_url, REMEDIATE_TOPOLOGY_REFRESH_S="1")
            with log.open("w") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "bot.cli.main", "serve", "--port", str(port),
                     "--discover-prometheus", prometheus.url],
                    env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
                )  # fmt: skip
            try:
                base = f"http://127.0.0.1:{port}"
                graph = _health(base)["topology"]
                assert (graph["services"], graph["edges"], graph["source"]) == (3, 2, prometheus.url)
                assert "service graph discovered from" in log.read_text()
                # a new service starts taking traffic: the next refresh picks it up
                exporter.set_world(
                    MeshWorld(
                        pods=[*WORLD.pods, Pod("reviews")],
                        istio=[*WORLD.istio, ("frontend", "reviews")],
                    )
                )
                health = _wait_health(
                    base, lambda h: h["topology"]["services"] == 4, "the new service after a refresh"
                )
                change = health["topology"]["last_change"]
                assert change["nodes_added"] == ["reviews"]
                assert change["edges_added"] == [{"source": "frontend", "target": "reviews"}]
                assert (
                    "service graph changed: +1 node (reviews); +1 edge (frontend -> reviews)"
                    in log.read_text()
                )
                saved = json.loads((tmp_path / "topology-discovered.json").read_text())
                assert "reviews" in {n["id"] for n in saved["nodes"]}
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        finally:
            prometheus.stop()
