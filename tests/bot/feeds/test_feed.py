"""`remediate snapshots feed`: a real CLI process reads a local Prometheus API and feeds the real bot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from incidents_db.snapshots import ServiceSnapshot
from tests.bot.conftest import TOKEN, Harness

QUERIES = """
format: remediate.snapshot-queries/v1
service_label: service
metrics:
  error_rate: errors_q
  latency_p99_ms: latency_q
  saturation: broken_q
edges:
  - callee_label: callee
    query: edges_q
"""


def vector(*samples: tuple[dict[str, str], str]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": m, "value": [1.0, v]} for m, v in samples]},
    }


ANSWERS: dict[str, Any] = {
    "errors_q": vector(({"service": "cartservice"}, "0.31"), ({"service": "redis-cart"}, "0"), ({}, "0.5")),
    "latency_q": vector(({"service": "cartservice"}, "812.5"), ({"service": "frontend"}, "NaN")),
    "edges_q": vector(({"service": "frontend", "callee": "cartservice"}, "0.29")),
}


class FakePrometheus(BaseHTTPRequestHandler):
    """Prometheus' instant-query API for the canned expressions; anything else is a parse error."""

    seen: list[dict[str, list[str]]] = []

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        params = urllib.parse.parse_qs(url.query)
        FakePrometheus.seen.append(params)
        expr = params.get("query", [""])[0]
        if url.path != "/api/v1/query" or expr not in ANSWERS:
            body, status = (
                {"status": "error", "errorType": "bad_data", "error": f"parse error in {expr!r}"},
                400,
            )
        else:
            body, status = ANSWERS[expr], 200
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def prometheus() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePrometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakePrometheus.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def feed(tmp_path: Path, *args: str, token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REMEDIATE_DATA_DIR": str(tmp_path), "REMEDIATE_ALERTS_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "snapshots", "feed", "--once", *args],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


def test_one_round_reaches_the_store_and_names_the_failed_query(
    harness: Harness, prometheus: str, tmp_path: Path
) -> None:
    queries = tmp_path / "queries.yaml"
    queries.write_text(QUERIES, encoding="utf-8")
    proc = feed(
        tmp_path, "--json", "--prometheus", prometheus, "--bot", harness.url, "--queries", str(queries)
    )
    assert proc.returncode == 1, proc.stderr  # one query failed
    report = json.loads(proc.stdout)
    assert report["failed_queries"] == [
        {"query": "saturation", "error": "HTTP 400: parse error in 'broken_q'"}
    ]
    assert (report["snapshots"], report["values"], report["skipped_samples"]) == (3, 4, 2)
    assert report["delivered"] and report["answers"][0]["stored"] == 3
    times = {p["time"][0] for p in FakePrometheus.seen}
    assert len(times) == 1  # every query at the same evaluation time
    with harness.services.sessions() as s:
        kept = {row.service: row.values for row in s.query(ServiceSnapshot)}
    assert kept == {
        "cartservice": {"error_rate": 0.31, "latency_p99_ms": 812.5},
        "redis-cart": {"error_rate": 0.0},
        "frontend": {"error_rate_to:cartservice": 0.29},
    }


def test_a_wrong_token_and_a_bad_queries_file_are_one_line_errors(
    harness: Harness, prometheus: str, tmp_path: Path
) -> None:
    queries = tmp_path / "queries.yaml"
    queries.write_text(QUERIES.replace("  saturation: broken_q\n", ""), encoding="utf-8")
    proc = feed(
        tmp_path, "--prometheus", prometheus, "--bot", harness.url, "--queries", str(queries), token="bad"
    )
    assert proc.returncode == 1
    assert "bot: the bearer token is wrong" in proc.stderr and "Traceback" not in proc.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: remediate.snapshot-queries/v1\nmetrics:\n  error_rate: ''\n", encoding="utf-8")
    proc = feed(tmp_path, "--prometheus", prometheus, "--bot", harness.url, "--queries", str(bad))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "bad.yaml: metrics: Value error, metric 'error_rate' needs a PromQL expression" in proc.stderr
    proc = feed(
        tmp_path, "--prometheus", "http://127.0.0.1:9", "--bot", harness.url, "--queries", str(queries)
    )
    assert proc.returncode == 1 and "cannot reach http://127.0.0.1:9" in proc.stderr


def test_the_builtin_queries_file_loads() -> None:
    from bot.cli.feed_cmd import BUILTIN_QUERIES
    from bot.feeds.prometheus import load_queries

    spec = load_queries(BUILTIN_QUERIES)
    assert {"error_rate", "latency_p99_ms", "replicas", "traffic_ratio"} <= set(spec.metrics)
    assert spec.edges and spec.edges[0].callee_label == "callee"
