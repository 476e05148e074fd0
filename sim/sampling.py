"""The scenario draw, compiled: faults, change events, red herrings and blind spots as arrays.

``sim.faults.sample_scenario`` and ``sample_fault`` and the batched core's resets all draw here, from
the caller's ``numpy.random.Generator`` (numba draws from the same bit generator with NumPy's own
algorithms, so a seed gives the same scenario, number for number, as the plain Python draw did).
A drawn scenario is a row of a ``Drawn`` record (``sim.faults`` turns rows into ``Scenario`` objects and
back); ``t`` below is ``sim.faults.draw_tables``: (possible kinds, candidates (K, N), candidate counts
(K,), callers CSR pointer (N + 1,) and indices (E,), frontend (N,), change type (K,), change share (K,),
needs a peer (K,), the surge kind).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

DEPLOY, CONFIG = 1, 2  # change event types (0: the fault kind comes with none)
CHANGE_TYPES = {None: 0, "deploy": DEPLOY, "config_change": CONFIG}


class Drawn:
    """B drawn scenarios as arrays (F faults and F + 1 change events at most per scenario)."""

    def __init__(self, batch: int, n: int, max_faults: int) -> None:
        f = max(max_faults, 1)
        self.kind = np.zeros((batch, f), dtype=np.int64)
        self.target = np.zeros((batch, f), dtype=np.int64)
        self.peer = np.full((batch, f), -1, dtype=np.int64)  # -1: none
        self.severity = np.zeros((batch, f))
        self.ttl = np.full((batch, f), np.nan)  # NaN: until fixed
        self.n_faults = np.zeros(batch, dtype=np.int64)
        self.change = np.zeros((batch, f + 1), dtype=np.int64)  # DEPLOY or CONFIG, oldest first
        self.change_at = np.zeros((batch, f + 1), dtype=np.int64)
        self.change_age = np.zeros((batch, f + 1))
        self.n_changes = np.zeros(batch, dtype=np.int64)
        self.herring = np.zeros((batch, n), dtype=bool)  # services with a passing symptom
        self.missing = np.zeros((batch, n), dtype=bool)
        self.no_exporter = np.zeros((batch, n), dtype=bool)
        self.load_scale = np.ones(batch)

    def arrays(self) -> tuple[np.ndarray, ...]:
        """Return the arrays in the order the kernels take them."""
        return (
            self.kind, self.target, self.peer, self.severity, self.ttl, self.n_faults, self.change,
            self.change_at, self.change_age, self.n_changes, self.herring, self.missing, self.no_exporter,
            self.load_scale,
        )  # fmt: skip


@njit(cache=True)
def draw_fault(
    rng: np.random.Generator,
    kinds: np.ndarray,
    cand: np.ndarray,
    cand_n: np.ndarray,
    caller_ptr: np.ndarray,
    caller_idx: np.ndarray,
    needs_peer: np.ndarray,
    surge: int,
) -> tuple[int, int, int, float, float]:
    """Draw one fault of one of ``kinds`` on a random service: (kind, target, peer, severity, ttl).

    ``peer`` is -1 unless the kind needs one (a caller of the target); ``ttl`` is NaN unless the fault
    is transient (a surge, 30 % of the time).
    """
    kind = kinds[rng.integers(0, kinds.size)]
    target = cand[kind, rng.integers(0, cand_n[kind])]
    severity = rng.uniform(0.7, 1.3)
    ttl = math.nan
    if kind == surge and rng.random() < 0.3:
        ttl = rng.uniform(600, 1800)
    peer = -1
    if needs_peer[kind]:
        lo, hi = caller_ptr[target], caller_ptr[target + 1]
        peer = caller_idx[lo + rng.integers(0, hi - lo)]
    return kind, target, peer, severity, ttl


@njit(cache=True)
def _draw_faults(rng, t, max_faults, b, out):  # type: ignore[no-untyped-def]
    """Draw 1..max_faults faults into row ``b`` of ``out`` (a fault drawn twice on a service counts once)."""
    kind, target, peer, severity, ttl, n_faults = out[:6]
    n = 1 + rng.integers(0, max_faults) if max_faults > 1 else 1
    nf = 0
    for _ in range(n):
        k, m, p, s, life = draw_fault(rng, t[0], t[1], t[2], t[3], t[4], t[8], t[9])
        seen = False
        for j in range(nf):
            seen = seen or (kind[b, j] == k and target[b, j] == m)
        if not seen:
            kind[b, nf], target[b, nf], peer[b, nf], severity[b, nf], ttl[b, nf] = k, m, p, s, life
            nf += 1
    n_faults[b] = nf


@njit(cache=True)
def _draw_context(rng, t, herring_p, missing_p, b, out):  # type: ignore[no-untyped-def]
    """Draw the rest of scenario ``b`` given its faults: change events, red herrings, blind spots, load."""
    kind, target, _, _, _, n_faults, change, change_at, change_age, n_changes, herring = out[:11]
    missing, no_exporter, load_scale = out[11], out[12], out[13]
    frontend, change_of, change_p = t[5], t[6], t[7]
    n = frontend.size
    nc = 0
    for j in range(n_faults[b]):  # a draw only for kinds that may come without their change
        k = kind[b, j]
        if change_of[k] and (change_p[k] >= 1.0 or rng.random() < change_p[k]):
            change[b, nc], change_at[b, nc], change_age[b, nc] = (
                change_of[k],
                target[b, j],
                rng.uniform(120, 1500),
            )
            nc += 1
    causes = np.zeros(n, dtype=np.bool_)
    for j in range(n_faults[b]):
        causes[target[b, j]] = True
    if rng.random() < herring_p and not causes.all():
        # a harmless recent change somewhere else, and a service with a passing symptom
        others = np.flatnonzero(~causes)
        change[b, nc] = DEPLOY if rng.random() < 0.6 else CONFIG
        change_at[b, nc] = others[rng.integers(0, others.size)]
        change_age[b, nc] = rng.uniform(300, 3000)
        nc += 1
        backends = np.flatnonzero(~causes & ~frontend)
        if backends.size:
            herring[b, backends[rng.integers(0, backends.size)]] = True
    for j in range(1, nc):  # oldest first, ties in draw order (a stable sort)
        c, at, age = change[b, j], change_at[b, j], change_age[b, j]
        i = j
        while i > 0 and change_age[b, i - 1] < age:
            change[b, i], change_at[b, i], change_age[b, i] = (
                change[b, i - 1],
                change_at[b, i - 1],
                change_age[b, i - 1],
            )
            i -= 1
        change[b, i], change_at[b, i], change_age[b, i] = c, at, age
    n_changes[b] = nc
    missing[b] = rng.random(n) < missing_p
    no_exporter[b] = rng.random(n) < 0.3
    load_scale[b] = rng.uniform(0.8, 1.2)


@njit(cache=True)
def draw_scenarios(
    rng: np.random.Generator,
    t: tuple,
    given: bool,
    max_faults: int,
    herring_p: float,
    missing_p: float,
    out: tuple,
) -> None:
    """Draw one scenario per row of ``out`` (``Drawn.arrays()``), in row order.

    ``given``: the faults are already in every row (``sim.faults.parse_faults``); only the rest is drawn.
    """
    for b in range(out[5].shape[0]):
        if not given:
            _draw_faults(rng, t, max_faults, b, out)
        _draw_context(rng, t, herring_p, missing_p, b, out)


@njit(cache=True)
def start_scenarios(
    rows: np.ndarray,
    out: tuple,
    sv: tuple,
    src: np.ndarray,
    dst: np.ndarray,
    base_mem: np.ndarray,
    kinds: tuple,
) -> None:
    """Write scenario ``j`` of ``out`` into environment ``rows[j]`` of a healthy state ``sv``.

    ``sv``: (sev, ttl, partition, replicas, leak, load_scale, ages, has_prev_version, version,
    has_prev_config, config_version, herring, present, exporter); ``kinds``: the fault kinds
    network_partition, scale_to_zero, memory_leak. A partition cuts the edge from its peer to its
    target; a transient fault's deadline is its ttl (a new incident starts at 0 elapsed seconds).
    """
    kind, target, peer, severity, ttl, n_faults, change, change_at, change_age, n_changes = out[:10]
    herring, missing, no_exporter, load_scale = out[10:]
    sev, life, partition, replicas, leak, scale, ages, prev_version, version, prev_config, config_version = (
        sv[:11]
    )
    herring_s, present, exporter = sv[11:]
    cut_kind, zero_kind, leak_kind = kinds
    for j in range(rows.size):
        b = rows[j]
        scale[b, 0] = load_scale[j]
        for f in range(n_faults[j]):
            k, n = kind[j, f], target[j, f]
            if k == cut_kind and peer[j, f] >= 0:
                for e in range(src.size):
                    if src[e] == peer[j, f] and dst[e] == n:
                        partition[b, e] = severity[j, f]
                continue
            sev[b, k, n] = severity[j, f]
            if not math.isnan(ttl[j, f]):
                life[b, k, n] = ttl[j, f]
            if k == zero_kind:
                replicas[b, n] = 0.0
            if k == leak_kind:
                leak[b, n] = max(0.86 - base_mem[n], 0.0)
        for c in range(n_changes[j]):
            n = change_at[j, c]
            if change[j, c] == DEPLOY:
                ages[b, 0, n], prev_version[b, n], version[b, n] = change_age[j, c], True, 2
            else:
                ages[b, 1, n], prev_config[b, n], config_version[b, n] = change_age[j, c], True, 2
        for n in range(present.shape[1]):
            if herring[j, n]:
                herring_s[b, n] = 1.0
            if missing[j, n]:
                present[b, n] = False
            if no_exporter[j, n]:
                exporter[b, n] = False


@njit(cache=True)
def reset_rows(rows: np.ndarray, arrays: tuple, rows_from: tuple) -> None:
    """Copy ``rows_from[a]`` (M,) into row ``rows[j]`` of each (B, M) ``arrays[a]`` (one dtype per call)."""
    for a in range(len(arrays)):
        arr, row = arrays[a], rows_from[a]
        for j in range(rows.size):
            arr[rows[j], :] = row
