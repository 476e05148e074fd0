"""A deterministic generator of realistic random microservice topologies (5 to 2,000 services).

Shape, from the edge inwards: a few frontends call a layered service mesh (each layer mostly calls
the next one, sometimes one further down); the deepest services own datastores. Databases are often
shared by two or three services, caches sit in front of a database (the services that read the
cache also call its database, so a cold cache moves its load onto the database), queues connect
producers with consumers. A few back-edges make cycles, as real systems have.
"""

from __future__ import annotations

import numpy as np

from sim.errors import TopologyError
from sim.topology import DEFAULT_REPLICAS, Topology, parse_topology

MIN_SERVICES = 5
MAX_SERVICES = 2000
TEAMS = ("checkout", "catalog", "identity", "payments", "platform", "search", "growth", "data")


def _counts(n: int) -> dict[str, int]:
    """Split n services into kinds: ~4% frontends, ~10% databases, ~7% caches, ~4% queues."""
    frontends = int(np.clip(round(n * 0.04), 1, 8))
    databases = max(1, round(n * 0.10))
    caches = round(n * 0.07) if n >= 10 else 0
    queues = round(n * 0.04) if n >= 20 else 0
    services = n - frontends - databases - caches - queues
    return {
        "frontend": frontends,
        "service": services,
        "database": databases,
        "cache": caches,
        "queue": queues,
    }


def _pick(rng: np.random.Generator, pool: list[str], k: int) -> list[str]:
    """Return up to ``k`` distinct members of ``pool``, drawn with ``rng``."""
    k = min(k, len(pool))
    return [pool[j] for j in rng.choice(len(pool), size=k, replace=False)] if k else []


def _attach_datastores(
    rng: np.random.Generator,
    edges: set[tuple[str, str]],
    layers: list[list[str]],
    databases: list[str],
    caches: list[str],
    queues: list[str],
) -> None:
    """Add the edges to the datastores: owners to databases, readers to caches, producers and consumers to queues."""
    n_layers = len(layers)
    owners = [svc for layer in layers[max(0, n_layers - 2) :] for svc in layer]
    # each database gets one owner, some get a second or third (shared datastores)
    for db in databases:
        for owner in _pick(rng, owners, 1 + int(rng.random() < 0.35) + int(rng.random() < 0.15)):
            edges.add((owner, db))
    for cache in caches:
        db = databases[int(rng.integers(len(databases)))]
        readers = [a for a, b in edges if b == db] or _pick(rng, owners, 1)
        for reader in readers:
            edges.add((reader, cache))
            edges.add((reader, db))
    for queue in queues:
        for producer in _pick(rng, owners, 2):
            edges.add((producer, queue))
        for consumer in _pick(rng, [s for layer in layers for s in layer], 1):
            edges.add((consumer, queue))


def generate_topology(n_services: int, *, seed: int = 0, name: str | None = None) -> Topology:
    """Return a random topology of exactly ``n_services`` services; the same seed gives the same graph."""
    if isinstance(n_services, bool) or not isinstance(n_services, int):
        raise TopologyError(f"topology size must be an integer, got {n_services!r}")
    if not MIN_SERVICES <= n_services <= MAX_SERVICES:
        raise TopologyError(
            f"topology size must be {MIN_SERVICES}..{MAX_SERVICES} services, got {n_services}"
        )
    rng = np.random.default_rng([seed, n_services])
    counts = _counts(n_services)
    n_layers = int(np.clip(round(np.log2(counts["service"])), 1, 6))
    nodes: list[dict[str, object]] = []
    edges: set[tuple[str, str]] = set()

    def add(node_id: str, kind: str, tier: str) -> str:
        nodes.append(
            {
                "id": node_id,
                "kind": kind,
                "stateful": kind in ("database", "cache", "queue"),
                "replicas": int(DEFAULT_REPLICAS[kind] + (rng.integers(0, 3) if kind != "database" else 0)),
                "tier": tier,
                "team": TEAMS[int(rng.integers(len(TEAMS)))],
            }
        )
        return node_id

    frontends = [add(f"frontend-{i}", "frontend", "edge") for i in range(counts["frontend"])]
    layer_of = rng.integers(0, n_layers, size=counts["service"])
    layer_of[:n_layers] = np.arange(min(n_layers, counts["service"]))  # every layer has a service
    layers: list[list[str]] = [[] for _ in range(n_layers)]
    for i, layer in enumerate(sorted(layer_of.tolist())):
        layers[layer].append(add(f"svc-{layer}-{i:03d}", "service", f"layer-{layer}"))
    databases = [add(f"db-{i:02d}", "database", "data") for i in range(counts["database"])]
    caches = [add(f"cache-{i:02d}", "cache", "data") for i in range(counts["cache"])]
    queues = [add(f"queue-{i:02d}", "queue", "data") for i in range(counts["queue"])]

    def pick(pool: list[str], k: int) -> list[str]:
        return _pick(rng, pool, k)

    for fe in frontends:
        for callee in pick(layers[0], int(rng.integers(2, 6))):
            edges.add((fe, callee))
    for depth, layer in enumerate(layers[:-1]):
        for svc in layer:
            for callee in pick(layers[depth + 1], int(rng.integers(1, 4))):
                edges.add((svc, callee))
            if depth + 2 < n_layers and rng.random() < 0.2:
                edges.add((svc, pick(layers[depth + 2], 1)[0]))
    # every service needs a caller, or it would never see traffic
    for depth in range(n_layers):
        called = {b for _, b in edges}
        for svc in layers[depth]:
            if svc not in called:
                edges.add((pick(layers[depth - 1] if depth else frontends, 1)[0], svc))
    _attach_datastores(rng, edges, layers, databases, caches, queues)
    # a few back-edges: a deeper service calling back up (cycles are legal)
    for _ in range(counts["service"] // 30 if n_layers > 1 else 0):
        deep = int(rng.integers(1, n_layers))
        edges.add((pick(layers[deep], 1)[0], pick(layers[int(rng.integers(0, deep))], 1)[0]))
    document = {
        "graph": {"name": name or f"generated-{n_services}-s{seed}"},
        "nodes": nodes,
        "edges": [{"source": a, "target": b} for a, b in sorted(edges)],
    }
    return parse_topology(document, source="<generated>", name=name or f"generated-{n_services}-s{seed}")
