"""The vectorised dynamics: per-topology constants, the batched state, and one evaluation of it.

Model (all arrays (B, N): B environments, N services; see docs/simulator.md):

* Traffic enters at frontends (or, without frontends, at services nobody calls) and flows along edges:
  a callee receives ``weight`` times its caller's load. That normal load is fixed per topology; faults
  multiply it locally (surges, a cold cache's database) and retries amplify it where calls fail.
* Each service has ready replicas, capacity, and its *own* error rate and latency from its faults and
  its utilisation (queueing latency, requests beyond capacity fail).
* Failure and latency spread to callers. With ``ok = log(1 - error)``:
  ``ok[c] = own_ok[c] + sum_d w[c,d] * (ok[d] + seen_ok[d])`` (a request fails when a call it needs
  fails; ``seen`` is failure only callers see, such as an expired certificate) and
  ``p99[c] = own[c] + sum_d w[c,d] * p99[d]``, solved as a power series over the call graph truncated at
  ``depth`` hops (weights of a caller add up to at most 1, so cycles converge).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import networkx as nx
import numpy as np
from numba import njit

from playbooks.models import SERVICE_KINDS
from sim.derived import derive
from sim.faults import (
    FAULT_IDS,
    cache_backends,
    effect_matrix,
)
from sim.kernels import M_AVAIL, M_CPU, M_ERR, M_MEM, M_P99, M_UTIL, own_behaviour, spread_metrics  # noqa: F401 (M_*: re-exported)
from sim.observation import static_features
from sim.topology import Topology

MAX_DEPTH = 12
DENSE_MAX = 1000  # services; above it propagation sweeps the edge list (O(E) memory) instead
ENTRY_RPS = 100.0
TIMEOUT_MS = 1000.0
BASE_UTIL = {"frontend": 0.35, "service": 0.3, "database": 0.35, "cache": 0.25, "queue": 0.3}
BASE_LAT_MS = {"frontend": 25.0, "service": 15.0, "database": 6.0, "cache": 1.5, "queue": 3.0}
RETRY_GAIN = 1.5  # callers retry failed calls: load on a failing service grows by up to 150 %
_EFFECTS_T = np.ascontiguousarray(effect_matrix().T)  # (C, K)


@dataclass(frozen=True, eq=False)
class Statics:
    """Per-topology constants, computed once: normal load, capacity, propagation operators."""

    topology: Topology
    n: int
    depth: int
    kind_id: np.ndarray  # (N,) index into SERVICE_KINDS
    is_frontend: np.ndarray  # (N,) bool
    entry_share: np.ndarray  # (N,) share of user traffic entering here, sums to 1
    frontend_share: np.ndarray  # (len(frontends),) entry_share of the entry points
    base_replicas: np.ndarray  # (N,) float
    base_load: np.ndarray  # (N,) rps at normal traffic
    cap_per_replica: np.ndarray  # (N,) rps one ready replica serves
    base_lat: np.ndarray  # (N,) own latency at zero load, ms
    base_mem: np.ndarray  # (N,) memory share at rest
    backend_pairs: np.ndarray  # (2, P) int64: (cache, database behind it), one column per pair
    has_backend: np.ndarray  # (N,) bool: a cache with a database behind it
    up: np.ndarray | None  # (N, N) dense (M^T), M = sum_k W^k; None when sweeping
    up_seen: np.ndarray | None  # (N, N) dense (M W)^T
    static: np.ndarray  # (S, N) graph features
    healthy_p99: np.ndarray  # (N,) p99 latency with no fault, ms
    frontends: np.ndarray  # indices of the services users reach (where impact is measured)
    breach_scale: np.ndarray  # (len(frontends),) 1 / (8 * healthy p99)
    inv_healthy_p99: np.ndarray  # (N,) 1 / healthy p99
    slo_p99: np.ndarray  # (len(frontends),) twice the healthy p99: the latency SLO of the entry points
    total_replicas: float  # replicas of the whole topology at normal size

    def propagate(self, own: np.ndarray, seen: np.ndarray | None = None) -> np.ndarray:
        """Return ``sum_k W^k (own + W seen)`` row-wise for (B, N) arrays: what callers inherit."""
        if self.up is not None and self.up_seen is not None:
            out = own @ self.up
            if seen is not None:
                out += seen @ self.up_seen
            return out
        x = own if seen is None else own + self._callees_sum(seen)
        out = x
        for _ in range(self.depth):
            out = x + self._callees_sum(out)
        return out

    def propagate_pair(
        self, x: np.ndarray, seen_log: np.ndarray, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Propagate (2, B, N) [log own success, own latency] at once; return (2, B, N).

        Dense: one matrix product for both rows (the ``seen`` term is ``BatchState.seen_up``, added by the
        caller), into ``out`` when given. Sweeping: ``seen_log`` is folded into the first row here and
        ``seen_up`` stays 0.
        """
        if self.up is not None:
            rows = (2 * x.shape[1], self.n)
            return np.matmul(
                x.reshape(rows), self.up, out=None if out is None else out.reshape(rows)
            ).reshape(x.shape)
        return np.stack([self.propagate(x[0], seen_log), self.propagate(x[1])])

    def _callees_sum(self, v: np.ndarray) -> np.ndarray:
        """Return (B, N) with sum over callees d of w[c, d] * v[:, d] for each caller c."""
        t = self.topology
        out = np.empty_like(v)
        _callees_sum_kernel(np.ascontiguousarray(v), _indptr(t), t.dst, t.weights, out)
        return out


@lru_cache(maxsize=64)
def _indptr(t: Topology) -> np.ndarray:
    """Return (N + 1,) offsets: the edges of caller c are ``indptr[c]:indptr[c + 1]`` (edges sorted by caller)."""
    return np.concatenate([[0], np.cumsum(np.bincount(t.src, minlength=t.n_services))]).astype(np.int64)


@njit(cache=True)
def _callees_sum_kernel(
    v: np.ndarray, indptr: np.ndarray, dst: np.ndarray, weights: np.ndarray, out: np.ndarray
) -> None:
    # one pass over the edge list per environment, in edge order: a numpy gather and reduceat over
    # (B, E) took 14 ms a hop at 2,000 services and B = 64 (benchmarks/bench_scale.py)
    for b in range(v.shape[0]):
        for c in range(v.shape[1]):
            acc = 0.0
            for e in range(indptr[c], indptr[c + 1]):
                acc += v[b, dst[e]] * weights[e]
            out[b, c] = acc


def _depth(t: Topology) -> int:
    g = nx.DiGraph()
    g.add_nodes_from(range(t.n_services))
    g.add_edges_from(zip(t.src.tolist(), t.dst.tolist(), strict=True))
    longest = nx.dag_longest_path_length(nx.condensation(g))
    cyclic = not nx.is_directed_acyclic_graph(g)
    return int(min(MAX_DEPTH, longest + (2 if cyclic else 0)))


def _series(w: np.ndarray, depth: int) -> np.ndarray:
    """Return sum_{k=0..depth} W^k."""
    total = np.eye(w.shape[0])
    term = np.eye(w.shape[0])
    for _ in range(depth):
        term = term @ w
        total += term
    return total


def _spread_to_callees(t: Topology, x: np.ndarray, depth: int) -> np.ndarray:
    """Return ``x @ sum_{k=0..depth} W^k`` for an (N,) row by sweeping the edge list (O(E) memory)."""
    total, term = x.astype(float), x.astype(float)
    for _ in range(depth):
        term = np.bincount(t.dst, weights=term[t.src] * t.weights, minlength=t.n_services)
        total += term
    return total


def _stable_jitter(name: str) -> float:
    """Return a number in [0, 1) fixed by the service name, so constants never depend on run order."""
    h = 2166136261
    for ch in name.encode():
        h = ((h ^ ch) * 16777619) & 0xFFFFFFFF
    return h / 2**32


@lru_cache(maxsize=32)
def statics(topology: Topology) -> Statics:
    """Return the constants of a topology (cached per topology object)."""
    t = topology
    n = t.n_services
    kinds = np.array([SERVICE_KINDS.index(k) for k in t.kinds])
    is_frontend = kinds == 0
    in_degree = np.bincount(t.dst, minlength=n)
    entry = is_frontend.copy() if is_frontend.any() else in_degree == 0
    if not entry.any():
        entry[:] = True
    entry_share = entry / entry.sum()
    depth = _depth(t)
    # dense operators beat sparse sweeps (a gather and a reduce per hop) at every size up to 500
    # services on one CPU core: numpy's per-call cost dominates the sweeps; see benchmarks/bench_sim.py.
    # Above DENSE_MAX nothing (N, N) is built: the (N, N) power series alone took 30 s and 130 MB at
    # 2,000 services (benchmarks/bench_scale.py)
    dense = n <= DENSE_MAX
    series: np.ndarray | None = None
    w: np.ndarray | None = None
    if dense:
        w = np.zeros((n, n))
        w[t.src, t.dst] = t.weights
        series = _series(w, depth)
        load = (entry * ENTRY_RPS) @ series  # row vector: callee gets w * caller load
    else:
        load = _spread_to_callees(t, entry * ENTRY_RPS, depth)
    load = np.maximum(load, 1.0)  # services nobody reaches still see health checks
    jitter = np.array([_stable_jitter(s) for s in t.services])
    util = np.array([BASE_UTIL[k] for k in t.kinds]) * (0.85 + 0.3 * jitter)
    replicas = t.replicas.astype(float)
    cap = load / (replicas * util)
    pairs = [(i, db) for i, k in enumerate(t.kinds) if k == "cache" for db in cache_backends(t, i).tolist()]
    backend_pairs = np.array(pairs, dtype=np.int64).reshape(-1, 2).T
    st = Statics(
        topology=t,
        n=n,
        depth=depth,
        kind_id=kinds,
        is_frontend=is_frontend,
        entry_share=entry_share,
        frontend_share=entry_share[np.flatnonzero(entry)],
        base_replicas=replicas,
        base_load=load,
        cap_per_replica=cap,
        base_lat=np.array([BASE_LAT_MS[k] for k in t.kinds]) * (0.7 + 0.6 * jitter),
        base_mem=0.35 + 0.25 * jitter,
        backend_pairs=backend_pairs,
        has_backend=np.bincount(backend_pairs[0], minlength=n) > 0,
        up=None if series is None else np.ascontiguousarray(series.T),
        up_seen=None if series is None or w is None else np.ascontiguousarray((series @ w).T),
        static=static_features(t),
        healthy_p99=np.zeros(n),
        frontends=np.flatnonzero(entry),
        breach_scale=np.zeros(int(entry.sum())),
        inv_healthy_p99=np.zeros(n),
        slo_p99=np.zeros(int(entry.sum())),
        total_replicas=float(replicas.sum()),
    )
    block = np.zeros((1, 6, n))
    evaluate(st, BatchState.healthy(st, 1), block)
    object.__setattr__(st, "healthy_p99", block[0, M_P99].copy())
    object.__setattr__(st, "breach_scale", 1.0 / (8.0 * st.healthy_p99[st.frontends]))
    object.__setattr__(st, "inv_healthy_p99", 1.0 / st.healthy_p99)
    object.__setattr__(st, "slo_p99", 2.0 * st.healthy_p99[st.frontends])
    return st


class BatchState:
    """The mutable state of B environments on one topology (arrays (B, N) unless noted).

    ``sev``/``ttl``/``partition`` are the faults; ``refresh`` turns them into the derived arrays
    (``ok_f``, ``cap_f``, ...) that ``evaluate`` reads every step, so a step never loops over faults.
    """

    def __init__(self, st: Statics, batch: int) -> None:
        n, k = st.n, len(FAULT_IDS)
        self.replicas = np.tile(st.base_replicas, (batch, 1))
        self.sev = np.zeros((batch, k, n))  # fault severity, 0 = not active
        self.ttl = np.full((batch, k, n), np.inf)  # elapsed seconds at which a transient fault clears
        self.partition = np.zeros((batch, st.topology.n_edges))  # per edge, 1 = calls time out
        self.leak = np.zeros((batch, n))  # memory leaked so far, share of the limit
        self.herring = np.zeros((batch, n))  # passing symptom level, decays to 0
        self.rate_limited = np.zeros((batch, n), dtype=bool)
        self.has_prev_version = np.zeros((batch, n), dtype=bool)
        self.has_prev_config = np.zeros((batch, n), dtype=bool)
        self.ages = np.full((batch, 3, n), np.inf)  # seconds since deploy, config change, action
        self.recent = np.zeros((batch, 3, n))  # recency(ages), kept up to date by multiplication
        self.version = np.ones((batch, n), dtype=np.int64)
        self.config_version = np.ones((batch, n), dtype=np.int64)
        self.fail_prev = np.zeros((batch, n))  # failure callers saw last evaluation (drives retries)
        self.present = np.ones((batch, n), dtype=bool)  # telemetry arrives
        self.exporter = np.ones((batch, n), dtype=bool)  # disk / certificate exporters installed
        self.held = np.zeros((batch, 6, n), dtype=bool)  # metric alert condition held at the last evaluation
        self.load_scale = np.ones((batch, 1))
        # derived from the faults by refresh()
        self.ok_f = np.ones((batch, n))  # 1 - own error share from faults
        self.up_f = np.ones((batch, n))  # share of replicas not taken down by faults
        self.cap_f = np.tile(st.cap_per_replica, (batch, 1))  # capacity per ready replica
        self.load_f = np.tile(st.base_load, (batch, 1))  # offered load before retries
        self.lat_f = np.tile(st.base_lat, (batch, 1))  # own latency at zero load plus fault latency
        self.cpu_f = np.full((batch, n), 0.08)  # CPU floor plus fault CPU
        self.seen = np.zeros((batch, n))  # share of calls into the service failing at the caller
        self.seen_log = np.zeros((batch, n))  # log(1 - seen)
        self.seen_up = np.zeros((batch, n))  # seen_log @ up_seen: what callers inherit from it (dense only)
        self.leak_rate = np.zeros((batch, n))  # memory growth per second
        self.cause = np.zeros(batch, dtype=bool)  # any fault other than a surge is active
        self.fault_alerts = np.zeros((batch, 2, n), dtype=bool)  # DiskFull, CertificateExpired firing

    @classmethod
    def healthy(cls, st: Statics, batch: int) -> BatchState:
        """Return a state with no fault at all."""
        return cls(st, batch)

    def take(self, envs: np.ndarray | slice) -> BatchState:
        """Return the state of some environments (views for a slice, copies for an index array)."""
        part = object.__new__(BatchState)
        for name, value in vars(self).items():
            setattr(part, name, value[envs])
        return part

    def refresh(self, st: Statics, envs: np.ndarray) -> None:
        """Recompute the derived arrays of the given environments from their active faults."""
        sev = self.sev[envs]
        eff = np.matmul(_EFFECTS_T, sev)  # (C, K) @ (b, K, N) -> (b, C, N)
        seen = np.empty((sev.shape[0], st.n))
        t = st.topology
        derive(
            envs, eff, sev, self.partition[envs], (st.backend_pairs, t.src, t.weights, st.cap_per_replica,
            st.base_load, st.base_lat), TIMEOUT_MS, (self.ok_f, self.up_f, self.cap_f, self.load_f, self.lat_f,
            self.cpu_f, self.seen, self.leak_rate, self.fault_alerts, self.cause, self.load_scale, self.exporter),
            seen,
        )  # fmt: skip
        seen_log = np.log(np.maximum(1.0 - seen, 1e-3))
        self.seen_log[envs] = seen_log
        if st.up_seen is not None:
            self.seen_up[envs] = seen_log @ st.up_seen  # changes only with the faults: not every step


def evaluate(
    st: Statics, s: BatchState, out: np.ndarray, fail: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate every environment into ``out`` (B, 6, N) (METRICS order); return (impact, fail, slo_ok).

    ``impact`` is the user-facing impact per minute: the failed share of frontend requests plus half
    the latency breach (p99 beyond twice normal, full at ten times). ``fail`` is the share of calls into
    each service that fail at the caller, which drives retries at the next evaluation (written into the
    given array, which may be ``s.fail_prev`` itself). ``slo_ok`` (B,) says every entry point is under
    2 % errors and twice its normal p99.

    Per service (``sim.kernels.own_behaviour``): memory = min(base + leak, 1), past 90 % pods are
    OOM-killed; ready = replicas x share up; utilisation = load x (1 + RETRY_GAIN x fail_prev) / capacity
    (capped at 50); the share beyond capacity is dropped and adds a timeout; queueing latency grows as
    q / (1 - q). Then ``ok = log(success)`` and latency spread to callers through the dense operators
    (one matrix product for both) and ``sim.kernels.spread_metrics`` turns them into error rates, p99,
    impact and SLO.
    """
    batch = out.shape[0]
    prop = propagated(st, s, out)
    fail = np.empty((batch, st.n)) if fail is None else fail
    impact = np.empty(batch)
    slo_ok = np.empty(batch, dtype=bool)
    spread_metrics(prop, s.seen, st.frontends, st.breach_scale, st.frontend_share, out, fail, impact, slo_ok)
    return impact, fail, slo_ok


def propagated(
    st: Statics,
    s: BatchState,
    out: np.ndarray,
    own: Callable[..., None] = own_behaviour,
    scratch: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """The first half of ``evaluate``: each service on its own into ``out``, then spread to callers.

    Returns (2, B, N): the success share and the latency each service shows after propagation, which
    ``sim.kernels.spread_metrics`` turns into error rates, p99, impact and SLO. ``own``:
    ``sim.kernels.own_behaviour``, or the same bound to the caller's argument types (``sim.stepping.bind``);
    ``scratch``: two (2, B, N) arrays to use instead of new ones (the result is the second when dense).
    """
    x, prop = (np.empty((2, out.shape[0], st.n)), None) if scratch is None else scratch
    own(
        st.base_mem, st.base_lat, s.replicas, s.up_f, s.cap_f, s.load_f, s.fail_prev, s.rate_limited,
        s.ok_f, s.lat_f, s.cpu_f, s.leak, s.herring, RETRY_GAIN, TIMEOUT_MS, out, x,
    )  # fmt: skip
    x0 = x[0]
    np.log(x0, out=x0)  # failure composes in log-success space
    prop = st.propagate_pair(x, s.seen_log, prop)
    p0 = prop[0]
    np.add(p0, s.seen_up, out=p0)
    np.exp(p0, out=p0)
    return prop
