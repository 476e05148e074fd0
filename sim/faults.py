"""Fault kinds, their ground-truth fixes, and random incident scenarios.

Each fault kind has a target kind set, the catalog action that fixes it (the ground truth the oracle
uses and the tests check), and an effect vector on the per-service channels the dynamics read.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from sim.errors import ScenarioError
from sim.sampling import CHANGE_TYPES, DEPLOY, Drawn, draw_fault
from sim.sampling import draw_scenarios as _draw
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


@lru_cache(maxsize=64)
def draw_tables(topology: Topology) -> tuple[Any, ...]:
    """Return the lookup arrays of the compiled draw (``sim.sampling``), cached per topology."""
    n = topology.n_services
    pools = [candidates(topology, k) for k in FAULT_KINDS]
    cand = np.zeros((len(FAULT_KINDS), max(n, 1)), dtype=np.int64)
    for k, pool in enumerate(pools):
        cand[k, : len(pool)] = pool
    ptr = np.concatenate([[0], np.cumsum(np.bincount(topology.dst, minlength=n))]).astype(np.int64)
    return (
        np.array([k for k, pool in enumerate(pools) if pool], dtype=np.int64),
        cand,
        np.array([len(p) for p in pools], dtype=np.int64),
        ptr,  # the callers of service i, in edge order (Topology.callers): src[order][ptr[i]:ptr[i + 1]]
        np.ascontiguousarray(topology.src[np.argsort(topology.dst, kind="stable")], dtype=np.int64),
        _frontends(topology),
        np.array([CHANGE_TYPES[k.change_event] for k in FAULT_KINDS], dtype=np.int64),
        np.array([k.change_p for k in FAULT_KINDS]),
        np.array([k.needs_peer for k in FAULT_KINDS], dtype=bool),
        FAULT_INDEX["traffic_surge"],
    )


def sample_fault(topology: Topology, rng: np.random.Generator, kind: str | None = None) -> FaultSpec:
    """Draw one fault (of ``kind`` or of any kind that fits this topology) on a random service."""
    t = draw_tables(topology)
    kinds = np.array([FAULT_INDEX[fault_kind(kind).id]]) if kind else t[0]
    if kind and not t[2][kinds[0]]:
        raise ScenarioError(f"topology {topology.name!r} has no service fault {kind} can strike")
    k, target, peer, severity, ttl = draw_fault(rng, kinds, t[1], t[2], t[3], t[4], t[8], t[9])
    names = topology.services
    return FaultSpec(
        FAULT_IDS[k], names[target], None if peer < 0 else names[peer], severity, None if ttl != ttl else ttl
    )


def draw_scenarios(
    topology: Topology,
    rng: np.random.Generator,
    count: int,
    *,
    faults: Sequence[FaultSpec | Mapping[str, Any]] | None = None,
    max_faults: int = 2,
    herring_p: float = 0.4,
    missing_telemetry_p: float = 0.05,
) -> Drawn:
    """Draw ``count`` incidents as arrays (``sample_scenario`` for each, in turn, from the same ``rng``)."""
    specs = None if faults is None else parse_faults(topology, faults)
    t = draw_tables(topology)
    if specs is None and not t[0].size:
        raise ScenarioError(f"topology {topology.name!r} has no service any fault can strike")
    out = Drawn(count, topology.n_services, max_faults if specs is None else len(specs))
    if specs is not None:
        given = drawn_of(topology, [Scenario(faults=specs)])
        for name in ("kind", "target", "peer", "severity", "ttl", "n_faults"):
            getattr(out, name)[:] = getattr(given, name)[0]
    _draw(rng, t, specs is not None, max_faults, herring_p, missing_telemetry_p, out.arrays())
    return out


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
    specs = None if faults is None else parse_faults(topology, faults)
    drawn = draw_scenarios(
        topology, rng, 1, faults=specs, max_faults=max_faults, herring_p=herring_p,
        missing_telemetry_p=missing_telemetry_p,
    )  # fmt: skip
    scenario = scenario_of(topology, drawn, 0)
    return scenario if specs is None else replace(scenario, faults=specs)


def scenario_of(topology: Topology, drawn: Drawn, j: int) -> Scenario:
    """Return row ``j`` of drawn scenarios as a ``Scenario``."""
    names = topology.services
    faults = []
    for f in range(int(drawn.n_faults[j])):
        peer, ttl = int(drawn.peer[j, f]), float(drawn.ttl[j, f])
        faults.append(
            FaultSpec(
                FAULT_IDS[drawn.kind[j, f]], names[drawn.target[j, f]], None if peer < 0 else names[peer],
                float(drawn.severity[j, f]), None if math.isnan(ttl) else ttl,
            )
        )  # fmt: skip
    changes = tuple(
        ChangeEvent(
            "deploy" if drawn.change[j, c] == DEPLOY else "config_change",
            names[drawn.change_at[j, c]],
            float(drawn.change_age[j, c]),
        )
        for c in range(int(drawn.n_changes[j]))
    )
    pick = _names(topology)
    return Scenario(
        faults=tuple(faults),
        changes=changes,
        herrings=tuple(pick[drawn.herring[j]].tolist()),
        no_telemetry=tuple(pick[drawn.missing[j]].tolist()),
        no_exporter=tuple(pick[drawn.no_exporter[j]].tolist()),
        load_scale=float(drawn.load_scale[j]),
    )


def drawn_of(topology: Topology, scenarios: Sequence[Scenario]) -> Drawn:
    """Return given scenarios as arrays (the inverse of ``scenario_of``)."""
    f = max((max(len(s.faults), len(s.changes) - 1) for s in scenarios), default=1)
    out = Drawn(len(scenarios), topology.n_services, f)
    idx = topology.index
    for b, sc in enumerate(scenarios):
        for j, spec in enumerate(sc.faults):
            out.kind[b, j], out.target[b, j] = FAULT_INDEX[spec.kind], idx[spec.target]
            out.peer[b, j] = -1 if spec.peer is None else idx[spec.peer]
            out.severity[b, j] = spec.severity
            out.ttl[b, j] = np.nan if spec.ttl_s is None else spec.ttl_s
        out.n_faults[b] = len(sc.faults)
        for j, ch in enumerate(sc.changes):
            out.change[b, j] = CHANGE_TYPES[ch.type]
            out.change_at[b, j], out.change_age[b, j] = idx[ch.service], ch.age_s
        out.n_changes[b] = len(sc.changes)
        for column, listed in ((out.herring, sc.herrings), (out.missing, sc.no_telemetry)):
            column[b, [idx[s] for s in listed]] = True
        out.no_exporter[b, [idx[s] for s in sc.no_exporter]] = True
        out.load_scale[b] = sc.load_scale
    return out


class Scenarios(Sequence[Scenario | None]):
    """The scenario of each of B environments, built from the drawn arrays when first read."""

    def __init__(self, topology: Topology, n_envs: int) -> None:
        self.topology = topology
        self._made: list[Scenario | None] = [None] * n_envs
        self._rows: list[tuple[Drawn, int] | None] = [None] * n_envs

    def set(self, envs: Sequence[int], drawn: Drawn, given: Sequence[Scenario] | None) -> None:
        """Environment ``envs[j]`` now runs scenario ``j`` of ``drawn`` (``given[j]`` when given)."""
        for j, b in enumerate(envs):
            self._made[b] = None if given is None else given[j]
            self._rows[b] = (drawn, j)

    def __len__(self) -> int:
        return len(self._made)

    def __getitem__(self, b: int) -> Scenario | None:  # type: ignore[override]
        made, row = self._made[b], self._rows[b]
        if made is None and row is not None:
            made = self._made[b] = scenario_of(self.topology, *row)
        return made
