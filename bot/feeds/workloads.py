"""What a workload is: its Kubernetes kind, images and ports, and the service kind and statefulness they imply.

Discovery (`bot.feeds.discover`) collects `Workload` records from kube-state-metrics series or from the
Kubernetes API (`bot.feeds.kube`) and turns each into a topology node: a known datastore image or port
makes it a database, cache or queue (stateful); a StatefulSet is stateful; a workload an ingress
gateway calls, or one nobody calls that calls others, is a frontend; everything else is a service.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Image name fragments (the last path segment of the repository, before the tag) -> service kind.
DATASTORE_IMAGES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"postgres|postgis|mysql|mariadb|mongo|cassandra|scylla|cockroach|clickhouse"), "database"),
    (
        re.compile(r"elasticsearch|opensearch|etcd|influxdb|timescale|couchdb|neo4j|spanner-emulator"),
        "database",
    ),
    (re.compile(r"redis|memcached|valkey|keydb|dragonfly|hazelcast"), "cache"),
    (re.compile(r"rabbitmq|kafka|redpanda|nats|pulsar|activemq|zookeeper"), "queue"),
)
# Well-known listening ports -> service kind.
DATASTORE_PORTS: dict[int, str] = {
    5432: "database", 3306: "database", 27017: "database", 9042: "database", 26257: "database",
    9200: "database", 2379: "database", 8123: "database", 8086: "database",
    6379: "cache", 11211: "cache",
    5672: "queue", 9092: "queue", 4222: "queue", 6650: "queue", 61616: "queue", 2181: "queue",
}  # fmt: skip
# Mesh and ingress infrastructure: not services of the team; what they call is a frontend.
GATEWAY = re.compile(r"(ingress|egress)-?gateway|ingress-nginx|traefik|^unknown$")
# Pod name suffixes Kubernetes adds: ReplicaSet hash + pod hash, StatefulSet ordinal, DaemonSet pod hash.
POD_SUFFIX = {
    "Deployment": re.compile(r"-[a-z0-9]{5,10}-[a-z0-9]{5}$"),
    "StatefulSet": re.compile(r"-\d+$"),
    "DaemonSet": re.compile(r"-[a-z0-9]{5}$"),
}


@dataclass
class Workload:
    """One workload as discovery sees it (a node of the graph to be)."""

    name: str
    namespace: str = ""
    workload_kind: str = ""  # Deployment, StatefulSet, DaemonSet, or "" when only traffic names it
    replicas: int | None = None
    images: set[str] = field(default_factory=set)
    ports: set[int] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)  # istio, linkerd, tempo, kube-state-metrics, kubernetes

    def merge(self, other: Workload) -> None:
        """Fold what another record of the same workload knows into this one."""
        self.namespace = self.namespace or other.namespace
        self.workload_kind = self.workload_kind or other.workload_kind
        self.replicas = self.replicas if self.replicas is not None else other.replicas
        self.images |= other.images
        self.ports |= other.ports
        self.sources |= other.sources


def is_gateway(name: str) -> bool:
    """Return whether a workload name is mesh or ingress infrastructure (kept out of the graph)."""
    return bool(GATEWAY.search(name))


def image_kind(image: str) -> str | None:
    """Return the datastore kind an image names (``docker.io/library/redis:7`` -> cache), else None."""
    repo = image.rsplit("@", 1)[0]
    last = repo.rsplit("/", 1)[-1].split(":", 1)[0].lower()
    for pattern, kind in DATASTORE_IMAGES:
        if pattern.search(last):
            return kind
    return None


def datastore_kind(workload: Workload) -> str | None:
    """Return database, cache or queue when an image or a port says so, else None."""
    for image in sorted(workload.images):
        found = image_kind(image)
        if found:
            return found
    for port in sorted(workload.ports):
        if port in DATASTORE_PORTS:
            return DATASTORE_PORTS[port]
    return None


def owner_of(pod: str, names: dict[str, str]) -> str | None:
    """Return the workload (of ``names``: workload -> Kubernetes kind) a pod belongs to, else None.

    ``carts-7d9f8b6c5-x2x9z`` belongs to Deployment ``carts``; ``carts-db-0`` to StatefulSet ``carts-db``.
    The longest matching workload name wins, so ``carts-db-0`` is not taken for ``carts``.
    """
    best: str | None = None
    for name, kind in names.items():
        if not pod.startswith(name + "-"):
            continue
        pattern = POD_SUFFIX.get(kind)
        if (
            pattern is not None
            and pattern.fullmatch(pod[len(name) :])
            and (best is None or len(name) > len(best))
        ):
            best = name
    return best


def node_attributes(workload: Workload, *, frontend: bool) -> dict[str, object]:
    """Return the node-link attributes of a workload (``id`` is set by the caller)."""
    kind = datastore_kind(workload)
    stateful = kind is not None or workload.workload_kind == "StatefulSet"
    if kind is None:
        kind = "frontend" if frontend else "service"
    attrs: dict[str, object] = {"kind": kind, "stateful": stateful}
    if workload.replicas is not None:
        attrs["replicas"] = min(max(1, workload.replicas), 100_000)
    attrs["namespace"] = workload.namespace
    if workload.workload_kind:
        attrs["workload_kind"] = workload.workload_kind
    attrs["sources"] = sorted(workload.sources)
    return attrs
