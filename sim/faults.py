"""Fault kinds, their ground-truth fixes, and random incident scenarios.

Each fault kind has a target kind set, the catalog action that fixes it (the ground truth the oracle
uses and the tests check), and an effect vector on the per-service channels the dynamics read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from sim.errors import ScenarioError
from sim.topology import Topology

# Effect channels, per unit of fault severity (see docs/simulator.md):
#   ERR     own error rate added            LAT   own latency added (ms)
#   CAPLOSS share of capacity lost          LOAD  extra load, as a multiple of normal load
#   AVLOSS  share of replicas not ready     CPU   CPU added (steal, spin)
#   SEEN    share of calls *into* the service that fail at the caller (TLS, corrupt data)
#   LEAK    memory growth per second (share of the limit)
CHANNELS = ("err", "lat", "caploss", "load", "avloss", "cpu", "seen", "leak")
ERR, LAT, CAPLOSS, LOAD, AVLOSS, CPU, SEEN, LEAK = range(len(CHANNELS))


@dataclass(frozen=True)
class FaultKind:
    """One kind of fault: where it can strike, what fixes it, what it does, what the team sees first."""

    id: str
    description: str
    applies_to: tuple[str, ...]
    fix: str
    also_fixed_by: tuple[str, ...]
    effect: Mapping[int, float]
    change_event: str | None = None  # "deploy" or "config_change" shortly before the incident
    needs_peer: bool = False
    change_p: float = 1.0  # share of these incidents that come with ``change_event``

    def fix_given(self, *, undoable: bool) -> str:
        """Return the ground-truth fix; without a change left to undo, the first other action that fixes it.

        A crash loop after a deploy is rolled back; one with no deploy behind it (a bad node, an expired
        secret, a dependency down at start-up) is restarted: there is nothing to roll back.
        """
        if undoable or self.change_event is None or not self.also_fixed_by:
            return self.fix
        return self.also_fixed_by[0]


_SVC = ("frontend", "service")
_ANY = ("frontend", "service", "database", "cache", "queue")
_STORES = ("database", "cache", "queue")

FAULT_KINDS: tuple[FaultKind, ...] = (
    FaultKind("bad_deploy", "a new version throws errors on some requests", _SVC, "rollback_deploy", (),
              {ERR: 0.45, LAT: 60.0}, change_event="deploy"),
    FaultKind("config_error", "a config change points at a wrong endpoint or flag", _ANY, "revert_config", (),
              {ERR: 0.6, LAT: 30.0}, change_event="config_change"),
    FaultKind("memory_leak", "a new version leaks memory until pods are OOM-killed", _SVC, "rollback_deploy", (),
              {LEAK: 0.0004}, change_event="deploy"),
    FaultKind("traffic_surge", "load several times normal arrives at the service", _SVC, "scale_out", (),
              {LOAD: 3.0}),
    FaultKind("crash_loop", "pods crash on start and back off", _SVC, "rollback_deploy", ("restart_service",),
              {AVLOSS: 0.75, ERR: 0.2, CPU: 0.2}, change_event="deploy", change_p=0.5),
    FaultKind("datastore_outage", "the primary of a datastore is down", _STORES, "failover_datastore", (),
              {AVLOSS: 1.0, ERR: 1.0}),
    FaultKind("connection_pool_exhaustion", "requests wait for a database connection", _SVC,
              "increase_connection_pool", (), {LAT: 900.0, ERR: 0.25, CAPLOSS: 0.5}),
    FaultKind("disk_full", "a volume is full, writes fail", ("service", "database", "queue"), "clear_disk", (),
              {ERR: 0.55, LAT: 40.0}),
    FaultKind("certificate_expiry", "the service's TLS certificate expired, callers fail the handshake", _ANY,
              "rotate_certificate", (), {SEEN: 1.0}),
    FaultKind("network_partition", "calls from one service to another time out", _ANY, "drain_node", (),
              {}, needs_peer=True),
    FaultKind("scale_to_zero", "an autoscaler or a typo scaled the service to zero replicas",
              ("frontend", "service", "cache", "queue"), "scale_out", (), {}),
    FaultKind("noisy_neighbor", "the node is starved by a neighbour or failing hardware", _ANY, "drain_node", (),
              {CAPLOSS: 0.65, CPU: 0.45, LAT: 120.0}),
    FaultKind("cache_stampede", "the cache came back cold, every read goes to its database", ("cache",),
              "warm_cache", (), {ERR: 0.05}),
    FaultKind("cache_corruption", "the cache serves corrupt entries, callers fail to decode them", ("cache",),
              "flush_cache", (), {SEEN: 0.45}),
)  # fmt: skip
FAULT_IDS: tuple[str, ...] = tuple(k.id for k in FAULT_KINDS)
FAULT_INDEX: dict[str, int] = {k: i for i, k in enumerate(FAULT_IDS)}
STAMPEDE_LOAD = 3.0  # extra load on a database behind a cold cache, as a multiple of its normal load


def fault_kind(kind: str) -> FaultKind:
    """Return a fault kind by id, or raise ScenarioError listing the kinds that exist."""
    try:
        return FAULT_KINDS[FAULT_INDEX[kind]]
    except KeyError:
        raise ScenarioError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_IDS)}") from None


def effect_matrix() -> np.ndarray:
    """Return the (K, C) matrix of per-severity effects, fault kinds by channels."""
    out = np.zeros((len(FAULT_KINDS), len(CHANNELS)))
    for i, kind in enumerate(FAULT_KINDS):
        for channel, value in kind.effect.items():
            out[i, channel] = value
    return out


@dataclass(frozen=True)
class FaultSpec:
    """One injected fault: its kind, the service it strikes, and for a partition the caller cut off."""

    kind: str
    target: str
    peer: str | None = None
    severity: float = 1.0
    ttl_s: float | None = None  # clears by itself after this long (transient), None = until fixed


@dataclass(frozen=True)
class ChangeEvent:
    """A deploy or config change shortly before the incident (the cause, or a red herring)."""

    type: str  # "deploy" or "config_change"
    service: str
    age_s: float  # seconds before the incident opened


@dataclass(frozen=True)
class Scenario:
    """Everything random about one incident: faults, red herrings, changes, what telemetry is missing."""

    faults: tuple[FaultSpec, ...]
    changes: tuple[ChangeEvent, ...] = ()
    herrings: tuple[str, ...] = ()  # services with a transient, harmless symptom
    no_telemetry: tuple[str, ...] = ()  # services whose metrics never arrive
    no_exporter: tuple[str, ...] = ()  # services without disk/certificate exporters (no such alerts)
    load_scale: float = 1.0  # overall traffic level of this episode


@lru_cache(maxsize=64)
def _frontends(topology: Topology) -> np.ndarray:
    return np.array([k == "frontend" for k in topology.kinds], dtype=bool)


def cache_backends(topology: Topology, cache_pos: int) -> np.ndarray:
    """Return the databases behind a cache: those called by every service that reads the cache."""
    readers = topology.callers(cache_pos)
    found: set[int] = set()
    for reader in readers.tolist():
        for callee in topology.callees(reader).tolist():
            if topology.kinds[callee] == "database":
                found.add(callee)
    return np.array(sorted(found), dtype=np.int64)


def candidates(topology: Topology, kind: FaultKind) -> list[int]:
    """Return the services a fault kind can strike in this topology."""
    return list(_candidates(topology, kind.id))


@lru_cache(maxsize=256)
def _candidates(topology: Topology, kind_id: str) -> tuple[int, ...]:
    kind = fault_kind(kind_id)
    out = [i for i, k in enumerate(topology.kinds) if k in kind.applies_to]
    if kind.id == "cache_stampede":
        out = [i for i in out if cache_backends(topology, i).size]
    if kind.id in ("network_partition", "certificate_expiry", "cache_corruption"):
        out = [i for i in out if topology.callers(i).size]
    return tuple(out)


def check_fault(topology: Topology, spec: FaultSpec) -> FaultSpec:
    """Return the spec with a peer filled in where needed; raise ScenarioError if it cannot apply here."""
    kind = fault_kind(spec.kind)
    pos = topology.position(spec.target)
    if pos not in candidates(topology, kind):
        raise ScenarioError(
            f"fault {spec.kind} cannot strike {spec.target} ({topology.kinds[pos]}); it applies to "
            f"{', '.join(kind.applies_to)}"
            + (" with a database behind it" if kind.id == "cache_stampede" else "")
            + (" that has callers" if kind.id in ("network_partition", "certificate_expiry") else "")
        )
    if kind.needs_peer:
        callers = [topology.services[c] for c in topology.callers(pos).tolist()]
        peer = spec.peer or callers[0]
        if peer not in callers:
            raise ScenarioError(f"{peer} does not call {spec.target}; callers: {', '.join(callers)}")
        return FaultSpec(spec.kind, spec.target, peer, spec.severity, spec.ttl_s)
    return spec


def parse_faults(
    topology: Topology, faults: Iterable[FaultSpec | Mapping[str, Any]]
) -> tuple[FaultSpec, ...]:
    """Turn fault specs or ``{"kind", "target"[, "peer", "severity"]}`` mappings into checked specs."""
    out = []
    for item in faults:
        if isinstance(item, FaultSpec):
            spec = item
        elif isinstance(item, Mapping) and "kind" in item and "target" in item:
            spec = FaultSpec(
                kind=str(item["kind"]),
                target=str(item["target"]),
                peer=None if item.get("peer") is None else str(item["peer"]),
                severity=float(item.get("severity", 1.0)),
            )
        else:
            raise ScenarioError(f"a fault needs 'kind' and 'target', got {item!r}")
        out.append(check_fault(topology, spec))
    return tuple(out)


@lru_cache(maxsize=64)
def _possible(topology: Topology) -> list[FaultKind]:
    return [k for k in FAULT_KINDS if candidates(topology, k)]


@lru_cache(maxsize=64)
def _names(topology: Topology) -> np.ndarray:
    return np.array(topology.services, dtype=object)


def sample_fault(topology: Topology, rng: np.random.Generator, kind: str | None = None) -> FaultSpec:
    """Draw one fault (of ``kind`` or of any kind that fits this topology) on a random service."""
    kinds = [fault_kind(kind)] if kind else _possible(topology)
    chosen = kinds[int(rng.integers(len(kinds)))]
    pool = candidates(topology, chosen)
    if not pool:
        raise ScenarioError(f"topology {topology.name!r} has no service fault {chosen.id} can strike")
    target = topology.services[pool[int(rng.integers(len(pool)))]]
    severity = float(rng.uniform(0.7, 1.3))
    ttl = float(rng.uniform(600, 1800)) if chosen.id == "traffic_surge" and rng.random() < 0.3 else None
    peer = None
    if chosen.needs_peer:
        callers = topology.callers(topology.position(target))
        peer = topology.services[int(callers[int(rng.integers(len(callers)))])]
    return FaultSpec(chosen.id, target, peer, severity, ttl)


def sample_scenario(
    topology: Topology,
    rng: np.random.Generator,
    *,
    faults: Sequence[FaultSpec | Mapping[str, Any]] | None = None,
    max_faults: int = 2,
    herring_p: float = 0.4,
    missing_telemetry_p: float = 0.05,
) -> Scenario:
    """Draw an incident: 1..max_faults faults unless given, red herrings, change events, blind spots."""
    if faults is not None:
        specs = parse_faults(topology, faults)
    else:
        n = 1 + int(rng.integers(max_faults)) if max_faults > 1 else 1
        drawn: dict[tuple[str, str], FaultSpec] = {}
        for _ in range(n):
            spec = sample_fault(topology, rng)
            drawn.setdefault((spec.kind, spec.target), spec)
        specs = tuple(drawn.values())
    changes: list[ChangeEvent] = []
    for spec in specs:
        kind = fault_kind(spec.kind)
        # a draw only for kinds that may come without their change, so other scenarios stay as they were
        if kind.change_event and (kind.change_p >= 1.0 or rng.random() < kind.change_p):
            changes.append(ChangeEvent(kind.change_event, spec.target, float(rng.uniform(120, 1500))))
    herrings: list[str] = []
    causes = np.zeros(topology.n_services, dtype=bool)
    causes[[topology.index[f.target] for f in specs]] = True
    if rng.random() < herring_p and not causes.all():
        # a harmless recent change somewhere else, and a service with a passing symptom
        others = np.flatnonzero(~causes)
        changes.append(
            ChangeEvent(
                "deploy" if rng.random() < 0.6 else "config_change",
                topology.services[int(others[rng.integers(others.size)])],
                float(rng.uniform(300, 3000)),
            )
        )
        backends = np.flatnonzero(~causes & ~_frontends(topology))
        if backends.size:
            herrings.append(topology.services[int(backends[rng.integers(backends.size)])])
    names = _names(topology)
    missing = tuple(names[rng.random(topology.n_services) < missing_telemetry_p].tolist())
    no_exporter = tuple(names[rng.random(topology.n_services) < 0.3].tolist())
    return Scenario(
        faults=specs,
        changes=tuple(sorted(changes, key=lambda c: -c.age_s)),
        herrings=tuple(herrings),
        no_telemetry=missing,
        no_exporter=no_exporter,
        load_scale=float(rng.uniform(0.8, 1.2)),
    )
