"""Discover the team's service graph from what Prometheus already measures.

Edges (caller -> callee) come from the service mesh and tracing metrics seen within a window:

* Istio ``istio_requests_total``: ``source_workload`` -> ``destination_workload`` (with their
  ``*_namespace`` labels; a callee outside the mesh falls back to ``destination_service_name``);
* Linkerd ``response_total{direction="outbound"}``: ``deployment`` / ``statefulset`` -> ``dst_deployment``
  / ``dst_statefulset`` (namespaces ``namespace`` and ``dst_namespace``);
* OpenTelemetry / Tempo service graphs ``traces_service_graph_request_total``: ``client`` -> ``server``.

kube-state-metrics tells each node's Kubernetes kind, replicas, container images and ports, from which
`bot.feeds.workloads` derives the node's ``kind`` and ``stateful``. The result is node-link JSON that
`sim.topology.load_topology` reads (every node also carries ``namespace``). Mesh gateways stay out.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.feeds.errors import DiscoveryError
from bot.feeds.workloads import Workload, is_gateway, node_attributes, owner_of
from remediation.errors import JsonGetError
from remediation.httpget import get_json

WINDOW = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
Key = tuple[str, str]  # (namespace, workload name); namespace "" when the source does not say
Labels = dict[str, str]

ISTIO = (
    "group by (source_workload, source_workload_namespace, destination_workload, "
    "destination_workload_namespace, destination_service_name, destination_service_namespace) "
    "(last_over_time(istio_requests_total[{w}]))"
)
LINKERD = (
    "group by (namespace, deployment, statefulset, daemonset, dst_namespace, dst_deployment, "
    'dst_statefulset, dst_daemonset) (last_over_time(response_total{{direction="outbound"}}[{w}]))'
)
TEMPO = "group by (client, server) (last_over_time(traces_service_graph_request_total[{w}]))"
KSM_REPLICAS = {
    "Deployment": "max by (namespace, deployment) (last_over_time(kube_deployment_spec_replicas[{w}]))",
    "StatefulSet": "max by (namespace, statefulset) (last_over_time(kube_statefulset_replicas[{w}]))",
    "DaemonSet": "max by (namespace, daemonset) "
    "(last_over_time(kube_daemonset_status_desired_number_scheduled[{w}]))",
}
KSM_IMAGES = "group by (namespace, pod, image) (last_over_time(kube_pod_container_info[{w}]))"
KSM_PORTS = "group by (namespace, endpoint, port_number) (last_over_time(kube_endpoint_ports[{w}]))"
WORKLOAD_LABELS = {"Deployment": "deployment", "StatefulSet": "statefulset", "DaemonSet": "daemonset"}


@dataclass
class Found:
    """What discovery collected: workloads by (namespace, name) and caller -> callee edges with their sources."""

    workloads: dict[Key, Workload] = field(default_factory=dict)
    edges: dict[tuple[Key, Key], set[str]] = field(default_factory=dict)

    def workload(self, key: Key, source: str, kind: str = "") -> Workload:
        """Return the workload at ``key`` (created when new), noting who saw it."""
        found = self.workloads.setdefault(key, Workload(name=key[1], namespace=key[0]))
        found.sources.add(source)
        found.workload_kind = found.workload_kind or kind
        return found

    def edge(self, a: Key, b: Key, source: str) -> None:
        """Record that ``a`` calls ``b`` (gateways, self-calls and unnamed ends are skipped)."""
        if not a[1] or not b[1] or a == b or is_gateway(b[1]):
            return
        self.workload(b, source)
        if is_gateway(a[1]):
            self.workload(b, source).sources.add("ingress")  # marks b as a frontend
            return
        self.workload(a, source)
        self.edges.setdefault((a, b), set()).add(source)


class PrometheusClient:
    """Instant queries against Prometheus' HTTP API (``/api/v1/query``), one evaluation time for all."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, at: datetime | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise DiscoveryError(f"--prometheus: expected an http(s):// URL, got {base_url!r}")
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self.at = at or datetime.now(UTC)

    def promql(self, expr: str) -> list[tuple[Labels, float]]:
        """Return the (labels, value) samples of an instant vector; raise DiscoveryError with the reason."""
        params = urllib.parse.urlencode({"query": expr, "time": f"{self.at.timestamp():.3f}"})
        where = f"Prometheus at {self.base}"
        try:
            body = get_json(f"{self.base}/api/v1/query?{params}", timeout=self.timeout)
        except JsonGetError as exc:
            if exc.kind == "http":
                raise DiscoveryError(f"{where} refused a query: {exc}") from None  # HTTP <code> <reason>
            if exc.kind == "network":
                raise DiscoveryError(f"cannot reach {where}: {exc.reason}") from None
            raise DiscoveryError(f"{where} answered something that is not JSON") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            reason = body.get("error", "unknown error") if isinstance(body, dict) else "unexpected answer"
            raise DiscoveryError(f"{where}: {reason}")
        samples = []
        for item in (body.get("data") or {}).get("result") or []:
            try:
                samples.append((dict(item["metric"]), float(item["value"][1])))
            except (KeyError, IndexError, TypeError, ValueError):
                continue
        return samples


def _first(labels: Labels, names: Iterable[tuple[str, str]]) -> tuple[str, str]:
    """Return (value, Kubernetes kind) of the first non-empty label of ``names`` ((label, kind) pairs)."""
    for label, kind in names:
        value = labels.get(label, "")
        if value and value != "unknown":
            return value, kind
    return "", ""


def _istio(found: Found, rows: list[Labels]) -> None:
    for r in rows:
        src = r.get("source_workload", "")
        a = (r.get("source_workload_namespace", ""), "" if src == "unknown" else src)
        b_name, _ = _first(r, (("destination_workload", ""), ("destination_service_name", "")))
        b_ns = r.get("destination_workload_namespace", "")
        if b_ns in ("", "unknown"):
            b_ns = r.get("destination_service_namespace", "")
        found.edge(a, (b_ns, b_name), "istio")


def _linkerd(found: Found, rows: list[Labels]) -> None:
    ends = [(label, kind) for kind, label in WORKLOAD_LABELS.items()]
    for r in rows:
        a_name, a_kind = _first(r, ends)
        b_name, b_kind = _first(r, [(f"dst_{label}", kind) for label, kind in ends])
        a, b = (r.get("namespace", ""), a_name), (r.get("dst_namespace", ""), b_name)
        found.edge(a, b, "linkerd")
        for key, kind in ((a, a_kind), (b, b_kind)):
            if key in found.workloads:
                found.workload(key, "linkerd", kind)


def _tempo(found: Found, rows: list[Labels]) -> None:
    for r in rows:
        found.edge(("", r.get("client", "")), ("", r.get("server", "")), "tempo")


def inventory_from_kube_state(client: PrometheusClient, window: str) -> dict[Key, Workload]:
    """Return every workload kube-state-metrics knows, with kind, replicas, images (via pods) and ports."""
    inventory: dict[Key, Workload] = {}
    names: dict[str, dict[str, str]] = {}  # namespace -> {workload: Kubernetes kind}
    for kind, expr in KSM_REPLICAS.items():
        for labels, value in client.promql(expr.format(w=window)):
            key = (labels.get("namespace", ""), labels.get(WORKLOAD_LABELS[kind], ""))
            if key[1]:
                names.setdefault(key[0], {})[key[1]] = kind
                inventory[key] = Workload(key[1], key[0], kind, int(value), sources={"kube-state-metrics"})
    for labels, _ in client.promql(KSM_IMAGES.format(w=window)):
        ns = labels.get("namespace", "")
        owner = owner_of(labels.get("pod", ""), names.get(ns, {}))
        if owner and labels.get("image"):
            inventory[(ns, owner)].images.add(labels["image"])
    for labels, _ in client.promql(KSM_PORTS.format(w=window)):
        key = (labels.get("namespace", ""), labels.get("endpoint", ""))
        if key in inventory and labels.get("port_number", "").isdigit():
            inventory[key].ports.add(int(labels["port_number"]))
    return inventory


def _enrich(found: Found, inventory: dict[Key, Workload], *, add_all: bool) -> None:
    """Merge inventory records into the traffic's nodes (by name where traffic gave no namespace).

    With ``add_all`` every inventory workload becomes a node, traffic or not (``--kubernetes``).
    """
    by_name: dict[str, set[Key]] = {}
    for key in [*inventory, *found.workloads]:
        if key[0]:
            by_name.setdefault(key[1], set()).add(key)
    renamed: dict[Key, Key] = {}
    for key, workload in list(found.workloads.items()):
        if key in inventory:
            workload.merge(inventory[key])
        elif not key[0] and len(by_name.get(key[1], ())) == 1:
            (target,) = by_name[key[1]]  # a tracing-only node: adopt the one workload of that name
            workload.namespace = target[0]
            if target in inventory:
                workload.merge(inventory[target])
            renamed[key] = target
    for old, new in renamed.items():
        moved = found.workloads.pop(old)
        if new in found.workloads:
            found.workloads[new].merge(moved)
        else:
            found.workloads[new] = moved
    if renamed:
        found.edges = _rekey_edges(found.edges, renamed)
    if add_all:
        for key, workload in inventory.items():
            found.workloads.setdefault(key, workload)


def _rekey_edges(
    edges: dict[tuple[Key, Key], set[str]], renamed: dict[Key, Key]
) -> dict[tuple[Key, Key], set[str]]:
    moved: dict[tuple[Key, Key], set[str]] = {}
    for (a, b), via in edges.items():
        pair = (renamed.get(a, a), renamed.get(b, b))
        if pair[0] != pair[1]:
            moved.setdefault(pair, set()).update(via)
    return moved


def _only(found: Found, namespaces: set[str]) -> None:
    """Keep the nodes in ``namespaces`` (and those whose namespace no source told) and edges between them."""
    keep = {k for k in found.workloads if not k[0] or k[0] in namespaces}
    found.workloads = {k: w for k, w in found.workloads.items() if k in keep}
    found.edges = {e: v for e, v in found.edges.items() if e[0] in keep and e[1] in keep}


def _node_ids(keys: Iterable[Key]) -> dict[Key, str]:
    """Return each node's id: the workload name, or ``namespace/name`` where two namespaces share a name."""
    counts: dict[str, int] = {}
    for _, name in keys:
        counts[name] = counts.get(name, 0) + 1
    return {k: (k[1] if counts[k[1]] == 1 or not k[0] else f"{k[0]}/{k[1]}") for k in keys}


def to_node_link(found: Found, *, name: str, source: dict[str, Any]) -> dict[str, Any]:
    """Return the node-link document (sorted, so two discoveries of the same world compare equal)."""
    ids = _node_ids(found.workloads)
    called = {b for _, b in found.edges}
    callers = {a for a, _ in found.edges}
    # frontends: what an ingress gateway calls; without a gateway in sight, what calls others unseen
    gateway = any("ingress" in w.sources for w in found.workloads.values())
    nodes = []
    for key, workload in sorted(found.workloads.items(), key=lambda kv: ids[kv[0]]):
        entry = "ingress" in workload.sources if gateway else key in callers and key not in called
        nodes.append({"id": ids[key], **node_attributes(workload, frontend=entry)})
    edges = [
        {"source": ids[a], "target": ids[b], "via": sorted(via)}
        for (a, b), via in sorted(found.edges.items(), key=lambda e: (ids[e[0][0]], ids[e[0][1]]))
    ]
    graph = {"name": name, "edge_meaning": "source calls or depends on target", "discovered": source}
    return {"directed": True, "multigraph": False, "graph": graph, "nodes": nodes, "edges": edges}


@dataclass(frozen=True)
class DiscoverOptions:
    """Where and how far back to look."""

    prometheus: str
    window: str = "1h"
    namespaces: tuple[str, ...] = ()
    name: str = "discovered"
    timeout: float = 10.0


def discover(
    options: DiscoverOptions, *, workloads: Callable[[], list[Workload]] | None = None
) -> dict[str, Any]:
    """Query Prometheus (and ``workloads``, the Kubernetes listing, when given); return node-link JSON.

    Raise DiscoveryError when Prometheus cannot be queried or nothing was found.
    """
    if not WINDOW.fullmatch(options.window):
        raise DiscoveryError(
            f"--window: expected a Prometheus duration such as 1h or 30m, got {options.window!r}"
        )
    client = PrometheusClient(options.prometheus, timeout=options.timeout)
    found = Found()
    _istio(found, [labels for labels, _ in client.promql(ISTIO.format(w=options.window))])
    _linkerd(found, [labels for labels, _ in client.promql(LINKERD.format(w=options.window))])
    _tempo(found, [labels for labels, _ in client.promql(TEMPO.format(w=options.window))])
    inventory = inventory_from_kube_state(client, options.window)
    listed = workloads() if workloads is not None else []
    for w in listed:
        key = (w.namespace, w.name)
        if key in inventory:
            inventory[key].merge(w)
        else:
            inventory[key] = w
    _enrich(found, inventory, add_all=workloads is not None)
    if options.namespaces:
        _only(found, set(options.namespaces))
    if not found.workloads:
        where = f" in namespace(s) {', '.join(options.namespaces)}" if options.namespaces else ""
        raise DiscoveryError(
            f"discovery found no services{where}: Prometheus at {client.base} has no istio_requests_total, "
            f"response_total or traces_service_graph_request_total series in the last {options.window}"
            + (" and Kubernetes listed no workloads" if workloads is not None else "")
            + "; check that the mesh's or tracer's metrics are scraped, or widen --window"
        )
    source = {
        "prometheus": client.base,
        "window": options.window,
        "namespaces": list(options.namespaces),
        "kubernetes": workloads is not None,
        "at": client.at.isoformat().replace("+00:00", "Z"),
    }
    return to_node_link(found, name=options.name, source=source)
