"""A small simulated cluster for the end-to-end test: its metrics for a real Prometheus, and a heal receiver.

`ShopWorld` is a sock-shop-like namespace: ``front-end`` calls ``carts`` and ``catalogue``, ``carts``
keeps its data in the StatefulSet ``carts-db`` (mongo), the Istio ingress gateway calls ``front-end``.
`ShopWorld.crash_loop` injects the one fault: all but the first pod of a Deployment wait in
``CrashLoopBackOff``, so kube-state-metrics reports the waiting reason and fewer available replicas,
and Istio sees the share of requests that reached the crashing pods answered 503.

`WorldServer` serves that world on 127.0.0.1 the way a cluster's scrape targets do, one path per job:
``/metrics/kube-state`` (kube-state-metrics), ``/metrics/cadvisor`` (the kubelet's cAdvisor) and
``/metrics/istio`` (the sidecars' Istio standard metrics; counters grow on every scrape). ``POST /heal``
is the automation endpoint the bot's webhook executor calls (body and signature as in
`remediation.executors.webhook`): a verified ``restart_service`` of a crash-looping workload restarts
its pods, and the next scrapes show it healthy. Pod names come from the discovery tests' `Pod`.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from remediation.executors.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from tests.bot.feeds.exporter import Pod

NAMESPACE = "sock-shop"
GATEWAY = "istio-ingressgateway"
BUCKETS = ("5", "10", "25", "50", "100", "250", "500", "1000", "2500", "+Inf")
REQUESTS_PER_SCRAPE = 20
ERROR_SHARE = 0.4  # of a crash-looping workload's requests, answered 503


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


@dataclass
class ShopWorld:
    """Who runs, who calls whom, and which workloads crash loop; thread-safe through ``lock``."""

    pods: list[Pod] = field(
        default_factory=lambda: [
            Pod("front-end", NAMESPACE, replicas=1, image="weaveworksdemos/front-end:0.3.12"),
            Pod("carts", NAMESPACE, replicas=2, image="weaveworksdemos/carts:0.4.8"),
            Pod("catalogue", NAMESPACE, replicas=1, image="weaveworksdemos/catalogue:0.3.5"),
            Pod("carts-db", NAMESPACE, kind="StatefulSet", replicas=1, image="mongo:4.4", ports=(27017,)),
        ]
    )
    calls: list[tuple[str, str]] = field(
        default_factory=lambda: [
            (GATEWAY, "front-end"),
            ("front-end", "carts"),
            ("front-end", "catalogue"),
            ("carts", "carts-db"),
        ]
    )
    crash_looping: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    scrapes: int = 0
    restarts: dict[str, int] = field(default_factory=dict)  # pod -> container restarts so far

    def crash_loop(self, workload: str) -> None:
        """Inject the fault: the workload's pods after the first wait in CrashLoopBackOff."""
        with self.lock:
            self.crash_looping.add(workload)

    def heal(self, action: str, target: str) -> dict[str, Any]:
        """Apply an approved action; a restart of a crash-looping workload starts its pods afresh."""
        with self.lock:
            if action == "restart_service" and target in self.crash_looping:
                self.crash_looping.discard(target)
                return {"ok": True, "detail": f"restarted {target}; every pod is ready"}
            return {"ok": True, "detail": f"{action} on {target} changed nothing"}

    def _crashing(self, pod: Pod) -> list[str]:
        return pod.pod_names()[1:] if pod.name in self.crash_looping else []

    def kube_state(self) -> str:
        """Return kube-state-metrics' exposition for the world now."""
        out = []
        with self.lock:
            for p in self.pods:
                crashing = self._crashing(p)
                ready = p.replicas - len(crashing)
                ns = {"namespace": p.namespace}
                if p.kind == "Deployment":
                    d = _labels(**ns, deployment=p.name)
                    out += [
                        f"kube_deployment_spec_replicas{d} {p.replicas}",
                        f"kube_deployment_status_replicas_available{d} {ready}",
                        f"kube_deployment_status_replicas_updated{d} {p.replicas}",
                        f"kube_deployment_metadata_generation{d} 3",
                        f"kube_deployment_status_observed_generation{d} 3",
                    ]
                else:
                    s = _labels(**ns, statefulset=p.name)
                    out += [
                        f"kube_statefulset_replicas{s} {p.replicas}",
                        f"kube_statefulset_status_replicas{s} {p.replicas}",
                        f"kube_statefulset_status_replicas_ready{s} {ready}",
                        f"kube_statefulset_status_replicas_updated{s} {p.replicas}",
                    ]
                for pod in p.pod_names():
                    c = _labels(**ns, pod=pod, container=p.name)
                    limit = _labels(**ns, pod=pod, container=p.name, resource="cpu", unit="core")
                    if pod in crashing:
                        self.restarts[pod] = self.restarts.get(pod, 0) + 1
                        reason = _labels(**ns, pod=pod, container=p.name, reason="CrashLoopBackOff")
                        out.append(f"kube_pod_container_status_waiting_reason{reason} 1")
                    out += [
                        f"kube_pod_container_info{_labels(**ns, pod=pod, container=p.name, image=p.image)} 1",
                        f"kube_pod_container_status_restarts_total{c} {self.restarts.get(pod, 0) // 10}",
                        f"kube_pod_container_resource_limits{limit} 0.5",
                    ]
                for port in p.ports:
                    e = _labels(**ns, endpoint=p.name, port_number=str(port), port_protocol="TCP")
                    out.append(f"kube_endpoint_ports{e} 1")
        return "\n".join(out) + "\n"

    def cadvisor(self) -> str:
        """Return the kubelet's cAdvisor exposition (CPU use and CFS throttling per container)."""
        out = []
        with self.lock:
            n = self.scrapes
            for p in self.pods:
                for pod in p.pod_names():
                    c = _labels(namespace=p.namespace, pod=pod, container=p.name)
                    out += [
                        f"container_cpu_usage_seconds_total{c} {0.1 * n:.3f}",
                        f"container_cpu_cfs_periods_total{c} {10 * n}",
                        f"container_cpu_cfs_throttled_periods_total{c} {n // 2}",
                        f"container_memory_working_set_bytes{c} {64 * 2**20}",
                    ]
        return "\n".join(out) + "\n"

    def istio(self) -> str:
        """Return the sidecars' Istio metrics; every call so far, counted again on each scrape."""
        out = []
        with self.lock:
            self.scrapes += 1
            n = self.scrapes
            for src, dst in self.calls:
                total = REQUESTS_PER_SCRAPE * n
                failed = round(total * ERROR_SHARE) if dst in self.crash_looping else 0
                for reporter in ("source", "destination"):
                    base = {
                        "reporter": reporter,
                        "source_workload": src,
                        "source_workload_namespace": "istio-system" if src == GATEWAY else NAMESPACE,
                        "destination_workload": dst,
                        "destination_workload_namespace": NAMESPACE,
                        "destination_service_name": dst,
                        "destination_service_namespace": NAMESPACE,
                    }
                    for code, count in (("200", total - failed), ("503", failed)):
                        out.append(f"istio_requests_total{_labels(**base, response_code=code)} {count}")
                    if reporter == "destination":
                        for le in BUCKETS:
                            fast = total - failed if le not in ("5", "10") else 0
                            labels = _labels(**base, response_code="200", le=le)
                            out.append(f"istio_request_duration_milliseconds_bucket{labels} {fast}")
        return "\n".join(out) + "\n"


class WorldServer:
    """Serves a `ShopWorld`'s scrape paths and its heal receiver on 127.0.0.1; a context manager."""

    PATHS = {"/metrics/kube-state": "kube_state", "/metrics/cadvisor": "cadvisor", "/metrics/istio": "istio"}

    def __init__(self, world: ShopWorld, *, secret: str) -> None:
        self.world, self.secret = world, secret
        self.heals: list[dict[str, Any]] = []  # each POST /heal: body, whether the signature held, answer
        self.healed = threading.Event()  # set when a verified action was applied (not a dry run)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                render = server.PATHS.get(self.path.split("?")[0])
                if render is None:
                    self.send_error(404)
                    return
                text = getattr(server.world, render)()
                self._answer(200, text.encode(), "text/plain; version=0.0.4")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer = server.receive(body, dict(self.headers.items()))
                self._answer(status, json.dumps(answer).encode(), "application/json")

            def log_message(self, format: str, *args: object) -> None:
                return

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._http.serve_forever, name="shop-world", daemon=True)

    @property
    def target(self) -> str:
        """Return ``host:port`` for Prometheus' scrape configs (each job with its metrics_path)."""
        return f"127.0.0.1:{self._http.server_address[1]}"

    @property
    def heal_url(self) -> str:
        """Return the URL the webhook executor posts approved actions to."""
        return f"http://{self.target}/heal"

    def receive(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Verify one executor request and apply it to the world; return (status, JSON answer)."""
        signed = verify_signature(
            self.secret, headers.get(TIMESTAMP_HEADER, ""), body, headers.get(SIGNATURE_HEADER, "")
        )
        try:
            request = json.loads(body)
        except ValueError:
            request = None
        record: dict[str, Any] = {"body": request, "signed": signed}
        self.heals.append(record)
        if not signed or not isinstance(request, dict):
            record["answer"] = {"ok": False, "detail": "bad signature or body"}
            return 401, record["answer"]
        if request.get("dry_run"):
            record["answer"] = {"ok": True, "detail": "dry run: nothing changed"}
            return 200, record["answer"]
        record["answer"] = self.world.heal(str(request.get("action")), str(request.get("target")))
        self.healed.set()
        return 200, record["answer"]

    def __enter__(self) -> WorldServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
