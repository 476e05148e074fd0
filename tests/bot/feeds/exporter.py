"""A test exporter: a real HTTP server whose /metrics shows a small world's Istio, Linkerd, Tempo and
kube-state-metrics series in Prometheus' text format, for a real Prometheus to scrape.

Reusable: build a `MeshWorld` (workloads and who calls whom), start `MetricsExporter(world)`, point a
Prometheus at ``exporter.target`` (see `tests.bot.feeds.promserver`). ``extra`` series (cAdvisor, alert
inputs) can be added or changed while it runs with `MetricsExporter.set_extra`; counters grow by
``step`` on every scrape so rates are non-zero.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


@dataclass(frozen=True)
class Pod:
    """A workload as kube-state-metrics shows it."""

    name: str
    namespace: str = "shop"
    kind: str = "Deployment"  # Deployment or StatefulSet
    replicas: int = 2
    image: str = "example.com/shop/app:1.0"
    ports: tuple[int, ...] = ()

    def pod_names(self) -> list[str]:
        """Return pod names the way Kubernetes makes them (ReplicaSet + pod hash, or StatefulSet ordinal)."""
        if self.kind == "StatefulSet":
            return [f"{self.name}-{i}" for i in range(self.replicas)]
        digest = hashlib.sha1(self.name.encode()).hexdigest()
        return [f"{self.name}-{digest[:9]}-{digest[10 + i : 15 + i]}" for i in range(self.replicas)]


@dataclass
class MeshWorld:
    """Who exists and who calls whom, by the metric family that reports it (names, not namespaces)."""

    pods: list[Pod] = field(default_factory=list)
    istio: list[tuple[str, str]] = field(default_factory=list)  # (source, destination) workload names
    linkerd: list[tuple[str, str]] = field(default_factory=list)
    tempo: list[tuple[str, str]] = field(default_factory=list)  # (client, server) service names

    def pod(self, name: str) -> Pod:
        """Return the workload named ``name`` (a plain Deployment in ``shop`` when the world lacks it)."""
        return next((p for p in self.pods if p.name == name), Pod(name))


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return "{" + inner + "}"


def _istio(world: MeshWorld, count: int) -> list[str]:
    lines = ["# TYPE istio_requests_total counter"]
    for src, dst in world.istio:
        a, b = world.pod(src), world.pod(dst)
        labels = _labels(
            reporter="source", source_workload=a.name, source_workload_namespace=a.namespace,
            destination_workload=b.name, destination_workload_namespace=b.namespace,
            destination_service_name=b.name, destination_service_namespace=b.namespace, response_code="200",
        )  # fmt: skip
        lines.append(f"istio_requests_total{labels} {count}")
    return lines


def _linkerd(world: MeshWorld, count: int) -> list[str]:
    lines = ["# TYPE response_total counter"]
    for src, dst in world.linkerd:
        a, b = world.pod(src), world.pod(dst)
        src_label = "statefulset" if a.kind == "StatefulSet" else "deployment"
        dst_label = "dst_statefulset" if b.kind == "StatefulSet" else "dst_deployment"
        labels = _labels(
            direction="outbound", namespace=a.namespace, **{src_label: a.name}, dst_namespace=b.namespace,
            **{dst_label: b.name}, classification="success", status_code="200",
        )  # fmt: skip
        lines.append(f"response_total{labels} {count}")
    return lines


def _tempo(world: MeshWorld, count: int) -> list[str]:
    lines = ["# TYPE traces_service_graph_request_total counter"]
    lines += [
        f"traces_service_graph_request_total{_labels(client=a, server=b)} {count}" for a, b in world.tempo
    ]
    return lines


def _kube_state(world: MeshWorld) -> list[str]:
    lines = [
        "# TYPE kube_deployment_spec_replicas gauge",
        "# TYPE kube_statefulset_replicas gauge",
        "# TYPE kube_pod_container_info gauge",
        "# TYPE kube_endpoint_ports gauge",
    ]
    for p in world.pods:
        if p.kind == "StatefulSet":
            lines.append(
                f"kube_statefulset_replicas{_labels(namespace=p.namespace, statefulset=p.name)} {p.replicas}"
            )
        else:
            lines.append(
                f"kube_deployment_spec_replicas{_labels(namespace=p.namespace, deployment=p.name)} {p.replicas}"
            )
        for pod in p.pod_names():
            labels = _labels(
                namespace=p.namespace, pod=pod, container=p.name, image=p.image, container_id="x"
            )
            lines.append(f"kube_pod_container_info{labels} 1")
        for port in p.ports:
            labels = _labels(
                namespace=p.namespace, endpoint=p.name, port_number=str(port), port_protocol="TCP"
            )
            lines.append(f"kube_endpoint_ports{labels} 1")
    return lines


class MetricsExporter:
    """Serves /metrics for a `MeshWorld` on 127.0.0.1 (an ephemeral port); a context manager."""

    def __init__(self, world: MeshWorld, *, step: int = 10) -> None:
        self._lock = threading.Lock()
        self._world = world
        self._extra: Callable[[], str] | str = ""
        self._scrapes = 0
        self.step = step
        self.scraped = threading.Event()  # set on the first scrape
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = exporter.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                exporter.scraped.set()

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="test-exporter", daemon=True)

    @property
    def target(self) -> str:
        """Return ``host:port`` for a Prometheus scrape config."""
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def set_world(self, world: MeshWorld) -> None:
        """Replace the world the next scrapes show."""
        with self._lock:
            self._world = world

    def set_extra(self, extra: Callable[[], str] | str) -> None:
        """Add raw exposition text (or a function returning it) after the world's series."""
        with self._lock:
            self._extra = extra

    def render(self) -> str:
        """Return the exposition text for one scrape (counters grow by ``step`` per scrape)."""
        with self._lock:
            self._scrapes += 1
            world, extra, count = self._world, self._extra, self._scrapes * self.step
        lines = _istio(world, count) + _linkerd(world, count) + _tempo(world, count) + _kube_state(world)
        text = "\n".join(lines) + "\n"
        more = extra() if callable(extra) else extra
        return text + (more if not more or more.endswith("\n") else more + "\n")

    def start(self) -> MetricsExporter:
        """Start serving in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> MetricsExporter:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
