"""The probable root cause of an incident, read from its timeline and the service graph.

Failure spreads from a callee to its callers (edge A -> B: A calls B), so the service that best explains
the symptoms is the one every anomalous service depends on, itself anomalous or blamed by its callers'
per-callee error rates. Only the signals before the first remediation action count (an action moves the
symptoms); notes and the recorded root cause are never read, so the inference can be checked against
them. Deterministic: the same timeline and graph give the same answer, ties broken by name.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from sim.observation import EDGE_METRIC

# how strongly a firing alert says "this service is unwell" (0..1)
ALERT_WEIGHT: Mapping[str, float] = {
    "ServiceDown": 1.0,
    "HighErrorRate": 0.8,
    "DiskFull": 0.9,
    "CertificateExpired": 0.3,  # the callers fail, not the service itself
    "HighLatency": 0.6,
    "Saturated": 0.6,
    "HighMemory": 0.5,
    "HighCPU": 0.4,
}
# alerts that name their own service as the place of the fault, whatever the graph says
LOCAL_ALERTS: Mapping[str, float] = {"DiskFull": 1.5, "CertificateExpired": 2.5}
ANOMALOUS = 0.3  # a service with at least this much anomaly is a symptom to explain
EDGE_BLAME = 3.0  # weight of callers' per-callee error rates against the callee
INTRINSIC_BONUS = 0.5  # a symptom no callee causes (pods down, CPU, memory) marks a place of fault
CHANGE_BONUS = 0.3  # a deploy or config change shortly before, on a service that is unwell


@dataclass(frozen=True)
class Inferred:
    """The service that best explains the symptoms, the fault kind where it can be told, and why."""

    service: str | None
    fault: str | None
    score: float
    evidence: tuple[str, ...]
    runner_up: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON form (``service``, ``fault``, ``evidence``, ``score``, ``runner_up``)."""
        return {
            "service": self.service,
            "fault": self.fault,
            "evidence": list(self.evidence),
            "score": round(self.score, 3),
            "runner_up": self.runner_up,
        }


@dataclass
class Signals:
    """What the timeline says about each service before anyone acted."""

    alerts: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    worst: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    blame: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))  # callee -> caller
    changes: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


def _number(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _keep_worst(worst: dict[str, float], key: str, value: float) -> None:
    low = key in ("availability", "replicas")
    old = worst.get(key)
    if old is None or (value < old if low else value > old):
        worst[key] = value


def _metrics(signals: Signals, service: str, values: Mapping[str, Any]) -> None:
    for key, raw in values.items():
        value = _number(raw)
        if value is None:
            continue
        if str(key).startswith(EDGE_METRIC):
            callee = str(key)[len(EDGE_METRIC) :]
            signals.blame[callee][service] = max(value, signals.blame[callee].get(service, 0.0))
        else:
            _keep_worst(signals.worst[service], str(key), value)


def read_signals(events: Iterable[Mapping[str, Any]]) -> Signals:
    """Collect alerts, worst metrics, per-callee error rates and changes up to the first action."""
    signals = Signals()
    for event in events:
        kind, service = event.get("type"), event.get("service")
        if kind in ("action", "resolved"):
            break
        if not isinstance(service, str) or not service:
            continue
        if kind == "alert" and event.get("status") == "firing":
            signals.alerts[service].add(str(event.get("name", "")))
        elif kind == "metrics" and isinstance(event.get("values"), Mapping):
            _metrics(signals, service, event["values"])
        elif kind in ("deploy", "config_change"):
            signals.changes[service].add(str(kind))
    return signals


def anomaly(signals: Signals, service: str) -> float:
    """Return how unwell a service looks on its own (0..1) from its alerts and worst metrics."""
    score = max((ALERT_WEIGHT.get(a, 0.3) for a in signals.alerts.get(service, ())), default=0.0)
    worst = signals.worst.get(service, {})
    if (err := worst.get("error_rate")) is not None and err >= 0.05:
        score = max(score, min(1.0, 0.4 + err))
    if (avail := worst.get("availability")) is not None and avail < 0.9:
        score = max(score, min(1.0, 1.0 - avail + 0.3))
    if (lat := worst.get("latency_p99_ms")) is not None and lat >= 500:
        score = max(score, 0.5)
    if (sat := worst.get("saturation")) is not None and sat >= 0.9:
        score = max(score, 0.5)
    return score


def _blamed(signals: Signals, service: str) -> float:
    """Return the worst error rate a caller sees calling this service."""
    return max((r for r in signals.blame.get(service, {}).values() if r >= 0.01), default=0.0)


def _local(signals: Signals, service: str) -> float:
    return sum(LOCAL_ALERTS.get(a, 0.0) for a in signals.alerts.get(service, ()))


def infer(events: Iterable[Mapping[str, Any]], graph: nx.DiGraph | None) -> Inferred:
    """Return the service whose failure best explains the timeline's symptoms on ``graph``.

    score(c) = weight of the symptoms c explains - weight of those it does not + c's own anomaly +
    blame from its callers' error rates - the errors it passes on to a callee + its local alerts. A
    symptom is explained by c when it is c's, or when c is downstream of it and the symptom is one a
    callee can cause (errors, latency; not pods down, CPU, memory or a surge of its own traffic).
    """
    events = list(events)
    signals = read_signals(events)
    if not _any_sign(signals):  # nothing before the first action: read the whole timeline
        signals = read_signals(e for e in events if e.get("type") != "action")
    g = graph if graph is not None else nx.DiGraph()
    nodes = sorted(set(g.nodes) | set(signals.alerts) | set(signals.worst) | set(signals.blame))
    sick = {s: a for s in nodes if (a := anomaly(signals, s)) >= ANOMALOUS}
    if not sick and not any(_blamed(signals, s) for s in nodes):
        return Inferred(None, None, 0.0, ("no alert or metric points at any service",))
    reach = {s: _reach(signals, g, s) for s in sick}
    scores: dict[str, float] = {}
    for c in nodes:
        explained = sum(a for s, a in sick.items() if c in reach[s])
        missed = sum(sick.values()) - explained
        own = anomaly(signals, c)
        scores[c] = (
            explained
            - missed
            + own
            + EDGE_BLAME * (_blamed(signals, c) - _passed(signals, c))
            + _local(signals, c)
            + 0.25 * own * _depth(g, c)
            + (INTRINSIC_BONUS if intrinsic(signals, c) else 0.0)
            + (CHANGE_BONUS if signals.changes.get(c) and own > 0 else 0.0)
        )
    ranked = sorted(nodes, key=lambda c: (-scores[c], c))
    best = ranked[0]
    return Inferred(
        best,
        fault_of(signals, g, best),
        scores[best],
        tuple(_evidence(signals, g, best, sick)),
        ranked[1] if len(ranked) > 1 else None,
    )


def _any_sign(signals: Signals) -> bool:
    return bool(signals.alerts or signals.blame or any(anomaly(signals, s) for s in signals.worst))


def intrinsic(signals: Signals, service: str) -> bool:
    """Return whether the service shows a symptom no callee causes (pods down, CPU, memory, own surge)."""
    alerts = signals.alerts.get(service, set())
    worst = signals.worst.get(service, {})
    return bool(
        alerts & {"ServiceDown", "HighCPU", "HighMemory", *LOCAL_ALERTS}
        or worst.get("availability", 1.0) < 0.9
        or worst.get("replicas", 1.0) == 0.0
        or worst.get("traffic_ratio", 1.0) >= 2.0
    )


def _reach(signals: Signals, g: nx.DiGraph, service: str) -> set[str]:
    """Return the services whose failure could explain this one's symptoms (itself included)."""
    if service not in g:
        return {service}
    fronts = {c for c in _caches_before(g, service) if signals.alerts.get(c) or _blamed(signals, c)}
    if intrinsic(signals, service) and _passed(signals, service) < 0.05:
        return {service} | fronts  # a cold cache in front overloads a database: a callee cannot
    return set(nx.descendants(g, service)) | {service} | fronts


def _caches_before(g: nx.DiGraph, database: str) -> set[str]:
    """Return the caches in front of a database (read by services that also call the database)."""
    if g.nodes[database].get("kind") != "database":
        return set()
    readers = set(g.predecessors(database))
    return {c for r in readers for c in g.successors(r) if g.nodes[c].get("kind") == "cache"}


def _passed(signals: Signals, service: str) -> float:
    """Return the worst error rate this service sees calling one of its callees (errors it passes on)."""
    return max((by.get(service, 0.0) for by in signals.blame.values()), default=0.0)


def _depth(g: nx.DiGraph, service: str) -> float:
    """Return 1 for a leaf of the call graph (a datastore), less the more it calls."""
    if service not in g:
        return 0.0
    return 1.0 / (1.0 + g.out_degree(service))


def _evidence(signals: Signals, g: nx.DiGraph, best: str, sick: Mapping[str, float]) -> list[str]:
    out: list[str] = []
    alerts = sorted(signals.alerts.get(best, ()))
    if alerts:
        out.append(f"{best} fired {', '.join(alerts)}")
    worst = signals.worst.get(best, {})
    shown = [f"{k} {worst[k]:g}" for k in ("error_rate", "latency_p99_ms", "availability") if k in worst]
    if shown:
        out.append(f"{best} worst metrics: {', '.join(shown)}")
    for caller, rate in sorted(signals.blame.get(best, {}).items()):
        if rate >= 0.01:
            out.append(f"edge {caller} -> {best}: {rate:.0%} of calls failed")
    dependents = sorted(s for s in sick if s != best and s in g and best in nx.descendants(g, s))
    if dependents:
        out.append(
            f"explains {len(dependents)} symptomatic caller(s) through the graph: {', '.join(dependents)}"
        )
    unexplained = sorted(s for s in sick if s != best and s not in dependents)
    if unexplained:
        out.append(f"does not explain: {', '.join(unexplained)}")
    for change in sorted(signals.changes.get(best, ())):
        out.append(f"a {change.replace('_', ' ')} on {best} came before the incident")
    return out


def fault_of(signals: Signals, g: nx.DiGraph, service: str) -> str | None:
    """Return the fault kind the signals of ``service`` point to, or None when they do not tell."""
    alerts = signals.alerts.get(service, set())
    worst = signals.worst.get(service, {})
    changes = signals.changes.get(service, set())
    kind = g.nodes[service].get("kind") if service in g else None
    rules: tuple[tuple[bool, str], ...] = (
        ("CertificateExpired" in alerts, "certificate_expiry"),
        ("DiskFull" in alerts, "disk_full"),
        (worst.get("replicas", 1.0) == 0.0, "scale_to_zero"),
        ("ServiceDown" in alerts and kind in ("database", "queue", "cache"), "datastore_outage"),
        ("ServiceDown" in alerts and worst.get("availability", 1.0) < 0.6, "crash_loop"),
        (worst.get("traffic_ratio", 1.0) >= 2.0 and kind not in ("database", "cache"), "traffic_surge"),
        ("HighMemory" in alerts and "deploy" in changes, "memory_leak"),
        ("config_change" in changes, "config_error"),
        ("deploy" in changes and worst.get("availability", 1.0) < 0.6, "crash_loop"),
        ("deploy" in changes, "bad_deploy"),
        (_blamed(signals, service) > 0 and kind == "cache", "cache_corruption"),
        (_blamed(signals, service) > 0 and not alerts, "network_partition"),
        (worst.get("latency_p99_ms", 0.0) >= 800 and "HighCPU" not in alerts, "connection_pool_exhaustion"),
        ("HighCPU" in alerts or "Saturated" in alerts, "noisy_neighbor"),
    )
    return next((fault for matched, fault in rules if matched), None)
