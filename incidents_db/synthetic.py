"""Deterministic, realistic-looking `remediate.incident/v1` history for samples, tests and benchmarks.

This is not the simulator (that lives in `sim/` and models dynamics); it strings together the timeline
shapes real incidents have (a trigger, alerts, metric snapshots, a wrong first try, the fix, recovery)
so the store, the importer and mining can be exercised at any size. Same seed, same records.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from incidents_db.schema import FORMAT, iso

# Online Boutique (Google's microservices demo): service -> (kind, the services that call it).
ONLINE_BOUTIQUE: dict[str, tuple[str, tuple[str, ...]]] = {
    "frontend": ("frontend", ("loadgenerator",)),
    "adservice": ("service", ("frontend",)),
    "cartservice": ("service", ("frontend", "checkoutservice")),
    "checkoutservice": ("service", ("frontend",)),
    "currencyservice": ("service", ("frontend", "checkoutservice")),
    "emailservice": ("service", ("checkoutservice",)),
    "paymentservice": ("service", ("checkoutservice",)),
    "productcatalogservice": ("service", ("frontend", "checkoutservice", "recommendationservice")),
    "recommendationservice": ("service", ("frontend",)),
    "shippingservice": ("service", ("frontend", "checkoutservice")),
    "redis-cart": ("cache", ("cartservice",)),
}

BASELINE = {"error_rate": 0.002, "latency_p99_ms": 180.0, "cpu": 0.35, "memory": 0.45, "availability": 0.999}


@dataclass(frozen=True)
class FaultShape:
    """How one kind of fault shows up and what fixes it."""

    fault: str
    kinds: tuple[str, ...]
    alert: str
    symptoms: tuple[tuple[str, float], ...]
    fix: str
    trigger: str | None = None
    title: str = ""


FAULTS: tuple[FaultShape, ...] = (
    FaultShape(
        "bad_deploy",
        ("frontend", "service"),
        "HighErrorRate",
        (("error_rate", 0.15), ("availability", 0.9)),
        "rollback_deploy",
        "deploy",
        "{svc} errors after deploy",
    ),
    FaultShape(
        "memory_leak",
        ("frontend", "service"),
        "HighMemoryUsage",
        (("memory", 0.95), ("latency_p99_ms", 900.0)),
        "restart_service",
        None,
        "{svc} memory climbing, pods OOM-killed",
    ),
    FaultShape(
        "traffic_spike",
        ("frontend", "service"),
        "HighLatency",
        (("cpu", 0.97), ("latency_p99_ms", 2400.0)),
        "scale_out",
        None,
        "{svc} latency under a traffic spike",
    ),
    FaultShape(
        "bad_config",
        ("frontend", "service", "cache"),
        "HighErrorRate",
        (("error_rate", 0.3), ("availability", 0.8)),
        "revert_config",
        "config_change",
        "{svc} failing after a config change",
    ),
    FaultShape(
        "cert_expired",
        ("frontend", "service"),
        "TLSHandshakeFailures",
        (("error_rate", 0.6), ("availability", 0.4)),
        "rotate_certificate",
        None,
        "TLS handshakes to {svc} failing",
    ),
    FaultShape(
        "disk_full",
        ("service", "cache"),
        "DiskAlmostFull",
        (("saturation", 0.99), ("error_rate", 0.05)),
        "clear_disk",
        None,
        "{svc} volume full",
    ),
    FaultShape(
        "pool_exhausted",
        ("service",),
        "ConnectionPoolExhausted",
        (("latency_p99_ms", 3000.0), ("error_rate", 0.08)),
        "increase_connection_pool",
        None,
        "{svc} timing out waiting for connections",
    ),
    FaultShape(
        "cache_node_down",
        ("cache",),
        "CacheUnavailable",
        (("availability", 0.2), ("latency_p99_ms", 1500.0)),
        "failover_datastore",
        None,
        "{svc} primary unreachable",
    ),
    FaultShape(
        "noisy_neighbor",
        ("frontend", "service"),
        "HighLatency",
        (("latency_p99_ms", 1200.0), ("cpu", 0.9)),
        "drain_node",
        None,
        "{svc} slow on a crowded node",
    ),
    FaultShape(
        "transient_network",
        ("frontend", "service", "cache"),
        "PacketLoss",
        (("error_rate", 0.04),),
        "wait",
        None,
        "Intermittent errors calling {svc}",
    ),
)

UNMAPPED_ACTIONS = ("bump_jvm_heap", "manual_vacuum", "restart_ingress_controller")
ACTORS = ("U024BE7LH", "U03ABCD12", "U05ZYXW98", "U01QWERTY")


def _metrics(svc: str, at: datetime, values: dict[str, float]) -> dict[str, Any]:
    return {"at": iso(at), "type": "metrics", "service": svc, "values": values}


def _healthy(rng: random.Random) -> dict[str, float]:
    return {k: round(v * rng.uniform(0.9, 1.1), 4) if k != "availability" else v for k, v in BASELINE.items()}


Events = list[dict[str, Any]]


def _trigger(rng: random.Random, shape: FaultShape, svc: str, t: datetime) -> Events:
    """Return the deploy or config change that set the incident off (none for the other shapes)."""
    if shape.trigger == "deploy":
        return [
            {
                "at": iso(t - timedelta(minutes=2)),
                "type": "deploy",
                "service": svc,
                "version": f"v{rng.randint(1, 4)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
            }
        ]
    if shape.trigger == "config_change":
        return [
            {
                "at": iso(t - timedelta(minutes=3)),
                "type": "config_change",
                "service": svc,
                "change": rng.choice(("timeout_ms 2000 -> 200", "max_conns 100 -> 10", "feature flag on")),
            }
        ]
    return []


def _onset(
    rng: random.Random,
    shape: FaultShape,
    svc: str,
    caller: str | None,
    severity: str,
    t: datetime,
    events: Events,
) -> tuple[dict[str, float], dict[str, float]]:
    """Record the first alerts and metrics; return the sick service's and its caller's metric values."""
    sick = _healthy(rng)
    for metric, value in shape.symptoms:
        sick[metric] = round(value * rng.uniform(0.85, 1.1), 4)
    value = next(iter(dict(shape.symptoms).values()))
    events.append(
        {
            "at": iso(t),
            "type": "alert",
            "status": "firing",
            "name": shape.alert,
            "service": svc,
            "labels": {"severity": "page" if severity in ("sev1", "sev2") else "ticket", "team": "shop"},
            "value": round(value, 4),
        }
    )
    events.append(_metrics(svc, t, sick))
    caller_values = _healthy(rng)
    if caller:
        caller_values["error_rate"] = round(sick.get("error_rate", 0.01) * 0.5 + 0.01, 4)
        events.append(_metrics(caller, t, caller_values))
        if rng.random() < 0.5:
            events.append(
                {
                    "at": iso(t + timedelta(seconds=30)),
                    "type": "alert",
                    "status": "firing",
                    "name": "UpstreamErrors",
                    "service": caller,
                    "labels": {"severity": "ticket"},
                }
            )
    return sick, caller_values


def _tries(
    rng: random.Random, shape: FaultShape, svc: str
) -> list[tuple[str, str | None, str, dict[str, Any]]]:
    """Return the actions taken, in order: sometimes a wrong or failed first try, then the fix."""
    tries: list[tuple[str, str | None, str, dict[str, Any]]] = []
    roll = rng.random()
    if roll < 0.3 and shape.fix != "restart_service":
        tries.append(("restart_service", svc, "no_effect", {}))
    elif roll < 0.4:
        tries.append((rng.choice(UNMAPPED_ACTIONS), svc, rng.choice(("no_effect", "unknown")), {}))
    elif roll < 0.47:
        tries.append((shape.fix, svc, "failed", {}))
    fix_params: dict[str, Any] = {}
    if shape.fix == "scale_out":
        fix_params = {"replicas": rng.randint(1, 4)}
    elif shape.fix == "increase_connection_pool":
        fix_params = {"size": rng.choice((50, 100, 200))}
    tries.append((shape.fix, None if shape.fix == "wait" else svc, "succeeded", fix_params))
    return tries


def _respond(
    rng: random.Random,
    shape: FaultShape,
    svc: str,
    caller: str | None,
    values: tuple[dict[str, float], dict[str, float]],
    actor: str,
    t: datetime,
    events: Events,
) -> datetime:
    """Record the watching, the note and the actions with their effect; return the time reached."""
    sick, caller_values = values
    for _ in range(rng.randint(1, 3)):
        t += timedelta(minutes=rng.randint(1, 3))
        events.append(_metrics(svc, t, sick))
        if caller:
            events.append(_metrics(caller, t, caller_values))
    t += timedelta(minutes=rng.randint(1, 3))
    events.append({"at": iso(t), "type": "note", "actor": actor, "text": f"looking at {svc} ({shape.alert})"})
    for action, target, outcome, params in _tries(rng, shape, svc):
        t += timedelta(minutes=rng.randint(1, 4))
        events.append(
            {
                "at": iso(t),
                "type": "action",
                "action": action,
                "target": target,
                "params": params,
                "actor": actor,
                "outcome": outcome,
            }
        )
        t += timedelta(minutes=rng.randint(2, 5))
        after = sick if outcome != "succeeded" else _healthy(rng)
        events.append(_metrics(svc, t, after))
        if caller:
            events.append(_metrics(caller, t, _healthy(rng) if outcome == "succeeded" else sick))
    return t


def _close(
    rng: random.Random, shape: FaultShape, svc: str, actor: str, t: datetime, events: Events
) -> datetime:
    """Record the alert resolving, metrics back to baseline and the closing; return when it resolved."""
    t += timedelta(minutes=rng.randint(1, 3))
    events.append({"at": iso(t), "type": "alert", "status": "resolved", "name": shape.alert, "service": svc})
    for _ in range(rng.randint(2, 4)):
        t += timedelta(minutes=rng.randint(1, 3))
        events.append(_metrics(svc, t, _healthy(rng)))
    events.append({"at": iso(t), "type": "note", "actor": actor, "text": "back to baseline, closing"})
    t += timedelta(minutes=1)
    events.append({"at": iso(t), "type": "resolved"})
    return t


def _incident(
    rng: random.Random, opened: datetime, names: list[str], incident_id: str, open_fraction: float
) -> tuple[dict[str, Any], datetime | None]:
    """Return one incident record opened at ``opened``, and when it resolved (None: left open)."""
    shape = rng.choice(FAULTS)
    svc = rng.choice([n for n in names if ONLINE_BOUTIQUE[n][0] in shape.kinds])
    callers = [c for c in ONLINE_BOUTIQUE[svc][1] if c in ONLINE_BOUTIQUE]
    caller = rng.choice(callers) if callers else None
    severity = rng.choices(("sev1", "sev2", "sev3", "sev4"), weights=(1, 3, 4, 2))[0]
    events = _trigger(rng, shape, svc, opened)
    values = _onset(rng, shape, svc, caller, severity, opened, events)
    actor = rng.choice(ACTORS)
    t = _respond(rng, shape, svc, caller, values, actor, opened, events)
    record: dict[str, Any] = {
        "format": FORMAT,
        "id": incident_id,
        "title": shape.title.format(svc=svc),
        "severity": severity,
        "topology": "online-boutique",
        "services": [svc] + ([caller] if caller else []),
        "opened_at": iso(opened),
        "root_cause": {"service": svc, "fault": shape.fault},
    }
    if rng.random() < open_fraction:
        record["events"] = events
        return record, None
    t = _close(rng, shape, svc, actor, t, events)
    record["resolved_at"] = iso(t)
    record["events"] = events
    return record, t


def generate_incidents(
    count: int,
    *,
    seed: int = 0,
    start: datetime | None = None,
    open_fraction: float = 0.05,
    id_prefix: str = "INC-",
    first_number: int = 1,
) -> Iterator[dict[str, Any]]:
    """Yield `count` incident records (dicts in `remediate.incident/v1`), deterministic by `seed`.

    Args:
        count: how many incidents.
        seed: random seed; the same seed gives the same records.
        start: time of the first incident (default 2026-01-01T00:00:00Z); later ones follow.
        open_fraction: share of incidents left open (no `resolved_at`).
        id_prefix: prefix of the ids (`INC-1`, `INC-2`, ...).
        first_number: number of the first id.

    Returns:
        An iterator of records, about 20 events each.
    """
    rng = random.Random(seed)
    clock = start or datetime(2026, 1, 1, tzinfo=UTC)
    names = sorted(ONLINE_BOUTIQUE)
    for number in range(first_number, first_number + count):
        clock += timedelta(minutes=rng.randint(30, 600), seconds=rng.randint(0, 59))
        record, closed = _incident(rng, clock, names, f"{id_prefix}{number}", open_fraction)
        yield record
        if closed is not None:
            clock = max(clock, closed)
