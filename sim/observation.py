"""What the agent sees: per-service feature vectors plus the graph, built by one function.

``encode_features`` is the single encoder. The simulator calls it on its batched arrays every step;
``build_observation`` calls it on plain inputs (per-service metric dicts, the firing alerts, recent
deploy/config changes and actions, the service graph), so ``remediation/`` can build exactly the same
features, in the same order, from a live incident timeline.

Per-service features, in order (``FEATURES``), every value in [0, 1]:

==  =====================  ==============================================================
 0  error_rate             observed error rate (0 when telemetry is missing)
 1  latency_p99            log10(1 + p99 ms) / 5  (1.0 = 100 s)
 2  cpu                    CPU utilisation of the service's pods
 3  memory                 memory use as a share of the limit
 4  saturation             min(load / capacity, 2) / 2
 5  availability           share of the service's pods ready
 6  telemetry_missing      1 when no metrics arrived for the service
 7  alert_HighErrorRate    1 while the alert fires on the service (7..14: ``ALERTS`` order)
 8  alert_HighLatency
 9  alert_HighCPU
10  alert_HighMemory
11  alert_Saturated
12  alert_ServiceDown
13  alert_DiskFull
14  alert_CertificateExpired
15  recent_deploy          exp(-age / 30 min) of the service's latest deploy, 0 when none
16  recent_config_change   exp(-age / 30 min) of its latest config change
17  recent_action          exp(-age / 10 min) of the latest remediation action on it
18  replica_deficit        max(0, 1 - replicas / normal replicas): 1 = scaled to zero
19  traffic_excess         min(max(request rate / normal - 1, 0), 3) / 3: 1 = four times normal
20  kind_frontend          one-hot kind (20..24: frontend, service, database, cache, queue)
21  kind_service
22  kind_database
23  kind_cache
24  kind_queue
25  stateful               1 for stateful services
26  in_degree              min(callers / 16, 1)
27  out_degree             min(callees / 16, 1)
==  =====================  ==============================================================

The two workload features read as "normal" (0) when unknown. They tell apart faults that look alike
in the six metrics: a service scaled to zero from a datastore outage (both are down; only one has no
replicas), a traffic surge from a starved node (both saturate; only one has more requests). Live
snapshots carry them as the metrics ``replicas`` (the running replica count, compared with the
topology's ``replicas``) and ``traffic_ratio`` (request rate over its normal, e.g. over the same time
last week).

Global features (``GLOBALS``): elapsed time since the incident opened (hours, capped at 1), share of
services with a firing alert, worst observed frontend error rate. The root cause is never part of it.

Per-edge features (``EDGE_FEATURES``), one row per call edge caller -> callee, in the topology's edge
order: ``edge_error_rate``, the share of the caller's calls to that callee that fail, as a service mesh
or client-side metrics report it (Istio's ``istio_requests_total`` by source and destination, or a
client library's per-upstream counters); 0 when the caller's telemetry is missing. It is what tells a
network partition or an expired certificate (the caller fails, the callee looks healthy) from a fault of
the caller itself. Live metric snapshots carry it as ``error_rate_to:<callee>`` keys (``EDGE_METRIC``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np

from playbooks.models import SERVICE_KINDS
from sim.kernels import encode, encode_globals_into, encode_links
from sim.topology import Topology

METRICS: tuple[str, ...] = ("error_rate", "latency_p99_ms", "cpu", "memory", "saturation", "availability")
ALERTS: tuple[str, ...] = (
    "HighErrorRate",
    "HighLatency",
    "HighCPU",
    "HighMemory",
    "Saturated",
    "ServiceDown",
    "DiskFull",
    "CertificateExpired",
)
STATIC_FEATURES: tuple[str, ...] = (
    *(f"kind_{k}" for k in SERVICE_KINDS),
    "stateful",
    "in_degree",
    "out_degree",
)
FEATURES: tuple[str, ...] = (
    "error_rate",
    "latency_p99",
    "cpu",
    "memory",
    "saturation",
    "availability",
    "telemetry_missing",
    *(f"alert_{a}" for a in ALERTS),
    "recent_deploy",
    "recent_config_change",
    "recent_action",
    "replica_deficit",
    "traffic_excess",
    *STATIC_FEATURES,
)
GLOBALS: tuple[str, ...] = ("elapsed_h", "share_alerting", "frontend_error_rate")
EDGE_FEATURES: tuple[str, ...] = ("edge_error_rate",)
EDGE_METRIC = "error_rate_to:"  # metric key prefix of a per-callee error rate in a live snapshot
WORKLOAD_METRICS: tuple[str, ...] = ("replicas", "traffic_ratio")  # live metric names of the workload rows
N_FEATURES = len(FEATURES)
N_EDGE_FEATURES = len(EDGE_FEATURES)
CHANGE_DECAY_S = 1800.0
ACTION_DECAY_S = 600.0
_M0 = 0
_MISSING = len(METRICS)
_A0 = _MISSING + 1
_CHANGES = _A0 + len(ALERTS)
_W0 = _CHANGES + 3  # replica_deficit, traffic_excess
_S0 = _W0 + 2
_NO_SRC = np.zeros(0, dtype=np.int64)
WORKLOAD_ROW = _W0  # row of replica_deficit in the (B, F, N) block; traffic_excess is the next one
RECENCY_DECAY = np.array([-1.0 / CHANGE_DECAY_S, -1.0 / CHANGE_DECAY_S, -1.0 / ACTION_DECAY_S])[None, :, None]


class Observation(NamedTuple):
    """One observation: services in index order, features per service, the call edges, global features."""

    services: tuple[str, ...]
    nodes: np.ndarray  # (N, F) float32, FEATURES order
    edges: np.ndarray  # (E, 2) int64, caller index -> callee index
    globals: np.ndarray  # (G,) float32, GLOBALS order
    edge_values: np.ndarray | None = None  # (E, EF) float32, EDGE_FEATURES order; None = all unknown (0)


def static_features(topology: Topology) -> np.ndarray:
    """Return the (S, N) graph features of a topology (kind one-hot, stateful, degrees)."""
    n = topology.n_services
    out = np.zeros((len(STATIC_FEATURES), n))
    for i, kind in enumerate(topology.kinds):
        out[SERVICE_KINDS.index(kind), i] = 1.0
    out[5] = topology.stateful
    out[6] = np.minimum(np.bincount(topology.dst, minlength=n) / 16.0, 1.0)
    out[7] = np.minimum(np.bincount(topology.src, minlength=n) / 16.0, 1.0)
    return out


def recency(ages: np.ndarray) -> np.ndarray:
    """Return the (B, 3, N) recency features from ages in seconds (deploy, config change, action; inf = never)."""
    return np.exp(ages * RECENCY_DECAY)


def encode_features(
    values: np.ndarray,
    present: np.ndarray,
    alerts: np.ndarray,
    recent: np.ndarray,
    static: np.ndarray | None,
    out: np.ndarray | None = None,
    workload: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Encode raw per-service signals into the (B, F, N) feature block, FEATURES order along axis 1.

    Args:
        values: (B, M, N) raw metrics in METRICS order (ms for latency, ratios for the rest).
        present: (B, N) bool, False where the service's telemetry is missing.
        alerts: (B, A, N) bool, ALERTS order, True while firing.
        recent: (B, 3, N) ``recency(ages)`` of the latest deploy, config change and action.
        static: (S, N) graph features from ``static_features``; None leaves those rows of ``out`` as they
            are (a caller reusing ``out`` writes them once).
        out: optional (B, F, N) float32 array to write into.
        workload: optional (replica ratio, traffic ratio), each (B, N), for the workload rows
            (``sim.kernels.encode_links``); None reads as normal (both rows 0).

    Returns:
        The (B, F, N) float32 features (``out`` when given); transpose to (B, N, F) for per-node rows.
    """
    batch, _, n = values.shape
    if out is None:
        out = np.empty((batch, N_FEATURES, n), dtype=np.float32)
    # rows 0..17, compiled: metrics clipped to [0, 1] (latency as log10(1 + ms) / 5, saturation as
    # min(util, 2) / 2) and zeroed where telemetry is missing, telemetry_missing, alert flags, recency
    encode(values, present, alerts, recent, out)
    if workload is None:
        out[:, _W0 : _W0 + 2] = 0.0
    else:
        no_edges = np.zeros((batch, 0, N_EDGE_FEATURES), dtype=np.float32)
        replicas, traffic = workload
        encode_links(no_edges[:, :, 0], _NO_SRC, present, replicas, np.ones(n), traffic, _W0, no_edges, out)
    if static is not None:
        out[:, _S0:] = static
    return out


def encode_globals(
    elapsed_s: np.ndarray, alerts: np.ndarray, features: np.ndarray, frontends: np.ndarray
) -> np.ndarray:
    """Return (B, G) global features.

    Args:
        elapsed_s: (B,) seconds since the incident opened.
        alerts: (B, A, N) bool firing alerts.
        features: (B, F, N) encoded features (for the observed frontend error rates).
        frontends: indices of the frontend services (may be empty).
    """
    out = np.empty((elapsed_s.shape[0], len(GLOBALS)), dtype=np.float32)
    encode_globals_into(elapsed_s, alerts, features, frontends, out)
    return out


def _age_s(now: datetime, at: Any) -> float:
    when = datetime.fromisoformat(at.replace("Z", "+00:00")) if isinstance(at, str) else at
    if not isinstance(when, datetime):
        raise ValueError(f"expected a timestamp, got {at!r}")
    return max(0.0, (now - when).total_seconds())


def _read_metrics(
    topology: Topology, metrics: Mapping[str, Mapping[str, float]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (values (1, M, N), present (1, N), edge errors (1, E), replica ratio (1, N), traffic ratio (1, N))."""
    n = topology.n_services
    index = topology.index
    values = np.zeros((1, len(METRICS), n))
    present = np.zeros((1, n), dtype=bool)
    edge_of = {(int(a), int(b)): e for e, (a, b) in enumerate(zip(topology.src, topology.dst, strict=True))}
    edge_errors = np.zeros((1, len(edge_of)))
    replica_ratio, traffic_ratio = np.ones((1, n)), np.ones((1, n))
    for service, row in metrics.items():
        i = index.get(service)
        if i is None:
            continue
        present[0, i] = True
        replicas, traffic = row.get("replicas"), row.get("traffic_ratio")
        if replicas is not None and math.isfinite(float(replicas)):
            replica_ratio[0, i] = float(replicas) / max(float(topology.replicas[i]), 1.0)
        if traffic is not None and math.isfinite(float(traffic)):
            traffic_ratio[0, i] = float(traffic)
        for j, name in enumerate(METRICS):
            value = row.get(name)
            if value is not None and math.isfinite(float(value)):
                values[0, j, i] = float(value)
        for key, value in row.items():
            if key.startswith(EDGE_METRIC) and value is not None and math.isfinite(float(value)):
                e = edge_of.get((i, index.get(key[len(EDGE_METRIC) :], -1)))
                if e is not None:
                    edge_errors[0, e] = float(value)
    return values, present, edge_errors, replica_ratio, traffic_ratio


def _ages(
    topology: Topology,
    changes: Iterable[Mapping[str, Any]],
    actions: Iterable[Mapping[str, Any]],
    now: datetime,
) -> np.ndarray:
    """Return (1, 3, N) seconds since the last deploy, config change and action per service (inf: never)."""
    index = topology.index
    ages = np.full((1, 3, topology.n_services), np.inf)
    for event in changes:
        i = index.get(str(event.get("service")))
        slot = {"deploy": 0, "config_change": 1}.get(str(event.get("type")))
        if i is not None and slot is not None:
            ages[0, slot, i] = min(ages[0, slot, i], _age_s(now, event["at"]))
    for action in actions:
        i = index.get(str(action.get("target")))
        if i is not None:
            ages[0, 2, i] = min(ages[0, 2, i], _age_s(now, action["at"]))
    return ages


def build_observation(
    *,
    topology: Topology,
    metrics: Mapping[str, Mapping[str, float]],
    alerts: Iterable[Mapping[str, Any]] = (),
    changes: Iterable[Mapping[str, Any]] = (),
    actions: Iterable[Mapping[str, Any]] = (),
    now: datetime,
    opened_at: datetime | None = None,
) -> Observation:
    """Build the observation from plain inputs, as a live incident timeline provides them.

    Args:
        topology: the service graph (``sim.resolve.resolve_topology`` turns a name or file into one).
        metrics: latest values per service, keys from METRICS; a service absent here counts as
            telemetry missing, an absent key as 0. ``error_rate_to:<callee>`` keys give the error rate
            of the service's calls to that callee (the edge feature; unknown callees are ignored);
            ``replicas`` and ``traffic_ratio`` the workload features (absent = normal).
        alerts: firing alerts, each with ``name`` and ``service`` (``status`` other than firing is skipped;
            unknown names and services are ignored).
        changes: deploy and config events, each with ``type`` (deploy / config_change), ``service``, ``at``.
        actions: remediation actions taken, each with ``target`` and ``at``.
        now: the moment the observation describes (timezone-aware).
        opened_at: when the incident opened (defaults to ``now``).

    Returns:
        The Observation, with the same features in the same order as the simulator's.
    """
    n = topology.n_services
    index = topology.index
    values, present, edge_errors, replica_ratio, traffic_ratio = _read_metrics(topology, metrics)
    fired = np.zeros((1, len(ALERTS), n), dtype=bool)
    for alert in alerts:
        i = index.get(str(alert.get("service")))
        alert_name = str(alert.get("name"))
        if i is not None and alert_name in ALERTS and alert.get("status", "firing") == "firing":
            fired[0, ALERTS.index(alert_name), i] = True
    ages = _ages(topology, changes, actions, now)
    block = encode_features(values, present, fired, recency(ages), static_features(topology))
    edge_values = np.empty((1, edge_errors.shape[1], N_EDGE_FEATURES), dtype=np.float32)
    encode_links(
        edge_errors, topology.src, present, replica_ratio, np.ones(n), traffic_ratio, _W0, edge_values, block
    )
    frontends = np.array([i for i, k in enumerate(topology.kinds) if k == "frontend"], dtype=np.int64)
    elapsed = np.array([0.0 if opened_at is None else _age_s(now, opened_at)])
    return Observation(
        services=topology.services,
        nodes=np.ascontiguousarray(block[0].T),
        edges=np.stack([topology.src, topology.dst], axis=1),
        globals=encode_globals(elapsed, fired, block, frontends)[0],
        edge_values=edge_values[0],
    )
