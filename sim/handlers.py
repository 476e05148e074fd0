"""What each catalog action does to the simulated system: one compiled pass over the environments.

``apply_actions`` runs every environment's action at once (each environment takes one action and
changes only its own row, so the order of environments does not matter); ``BatchCore._apply`` calls
it for B = 1 (``IncidentEnv``) and for any B alike. Actions whose id the simulator does not know (a
catalog extended by a user, or ``wait``) take their time and cost and change nothing: their code in
``handler_codes`` is -1.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from playbooks.models import SERVICE_KINDS
from sim.faults import FAULT_INDEX

NO_EFFECT, SUCCEEDED, FAILED, HARMFUL = 0, 1, 2, 3
RECENT_S = 7200.0  # a deploy or config change this recent can be rolled back / reverted
SIDE_EFFECT_TTL_S = {"restart": 900.0, "failover": 120.0, "drain": 300.0, "flush": 900.0}
HANDLERS = (
    "restart_service",
    "rollback_deploy",
    "revert_config",
    "scale_out",
    "scale_in",
    "failover_datastore",
    "clear_disk",
    "rotate_certificate",
    "drain_node",
    "flush_cache",
    "warm_cache",
    "enable_rate_limiting",
    "disable_rate_limiting",
    "increase_connection_pool",
    "escalate",
)
"""The actions the simulator models; an action's handler code is its position here."""
HANDLED = frozenset(HANDLERS)

_K = FAULT_INDEX
_CRASH, _LEAK, _BAD, _CONFIG = _K["crash_loop"], _K["memory_leak"], _K["bad_deploy"], _K["config_error"]
_ZERO, _OUTAGE, _DISK, _CERT = (
    _K["scale_to_zero"],
    _K["datastore_outage"],
    _K["disk_full"],
    _K["certificate_expiry"],
)
_NOISY, _STAMPEDE, _CORRUPT = _K["noisy_neighbor"], _K["cache_stampede"], _K["cache_corruption"]
_POOL = _K["connection_pool_exhaustion"]
_CACHE = SERVICE_KINDS.index("cache")
_TTL_RESTART, _TTL_FAILOVER = SIDE_EFFECT_TTL_S["restart"], SIDE_EFFECT_TTL_S["failover"]
_TTL_DRAIN, _TTL_FLUSH = SIDE_EFFECT_TTL_S["drain"], SIDE_EFFECT_TTL_S["flush"]
_M_MEM, _M_UTIL = 3, 4  # rows of the (B, 6, N) true metrics (sim.kernels.M_MEM, M_UTIL)
_CLEARS = {  # handlers that only end one fault kind
    "clear_disk": _DISK,
    "rotate_certificate": _CERT,
    "warm_cache": _STAMPEDE,
    "increase_connection_pool": _POOL,
}


def handler_codes(ids: tuple[str, ...]) -> np.ndarray:
    """Return (len(ids),) int64: each action id's handler code, -1 for ids the simulator ignores."""
    return np.array([HANDLERS.index(a) if a in HANDLED else -1 for a in ids], dtype=np.int64)


class Acted(NamedTuple):
    """Everything a handler reads or changes, in one record (numba takes a NamedTuple of arrays as is).

    The BatchState arrays (B, ...) the actions change, this step's true metrics and clock, the (B,)
    ``changed`` flags (set where an environment's faults changed, never cleared here: ``BatchCore``
    passes its flags of environments to refresh) and the topology's constants (N,) / (E,).
    """

    sev: np.ndarray  # (B, K, N)
    ttl: np.ndarray  # (B, K, N)
    partition: np.ndarray  # (B, E)
    leak: np.ndarray  # (B, N)
    replicas: np.ndarray  # (B, N)
    rate_limited: np.ndarray  # (B, N) bool
    has_prev_version: np.ndarray  # (B, N) bool
    has_prev_config: np.ndarray  # (B, N) bool
    version: np.ndarray  # (B, N) int
    config_version: np.ndarray  # (B, N) int
    ages: np.ndarray  # (B, 3, N)
    recent: np.ndarray  # (B, 3, N)
    true: np.ndarray  # (B, 6, N) true metrics before the action takes effect
    elapsed_s: np.ndarray  # (B,)
    changed: np.ndarray  # (B,) bool, set
    base_replicas: np.ndarray  # (N,)
    stateful: np.ndarray  # (N,) bool
    kind_id: np.ndarray  # (N,)
    has_backend: np.ndarray  # (N,) bool
    src: np.ndarray  # (E,)
    dst: np.ndarray  # (E,)


@njit(cache=True)
def _clear(w: Acted, b: int, k: int, n: int) -> bool:
    """Clear one fault kind at (b, n); return whether it was active."""
    had = w.sev[b, k, n] > 0
    w.sev[b, k, n] = 0.0
    w.ttl[b, k, n] = np.inf
    if had:
        w.changed[b] = True
    return had


@njit(cache=True)
def _inject(w: Acted, b: int, k: int, n: int, ttl_s: float) -> None:
    """Start a fault caused by an action, clearing by itself after ``ttl_s``."""
    w.sev[b, k, n] = 1.0
    w.ttl[b, k, n] = w.elapsed_s[b] + ttl_s
    w.changed[b] = True


@njit(cache=True)
def _healthy_at(w: Acted, b: int, n: int) -> bool:
    """Whether the target has no fault of its own (no fault on it, no cut edge touching it)."""
    for k in range(w.sev.shape[1]):
        if w.sev[b, k, n] > 0:
            return False
    for e in range(w.src.shape[0]):
        if (w.src[e] == n or w.dst[e] == n) and w.partition[b, e] != 0.0:
            return False
    return True


@njit(cache=True)
def _harm_datastore(w: Acted, b: int, n: int, ttl_s: float) -> bool:
    """A healthy stateful target loses its primary (a cache comes back cold); return whether it did."""
    if not (w.stateful[n] and _healthy_at(w, b, n)):
        return False
    cold_cache = w.kind_id[n] == _CACHE and w.has_backend[n]
    _inject(w, b, _STAMPEDE if cold_cache else _OUTAGE, n, ttl_s)
    return True


@njit(cache=True)
def _undo(w: Acted, b: int, n: int, slot: int, ends: tuple[int, ...]) -> int:
    """Go back one deploy (slot 0) or config change (slot 1) if recent; clear the faults it brought."""
    has_prev = w.has_prev_version if slot == 0 else w.has_prev_config
    version = w.version if slot == 0 else w.config_version
    if not (w.ages[b, slot, n] < RECENT_S and has_prev[b, n]):
        return NO_EFFECT
    version[b, n] -= 1
    has_prev[b, n] = False
    w.ages[b, slot, n] = 0.0  # going back is itself a deploy / config change
    w.recent[b, slot, n] = 1.0
    fixed = False
    for k in ends:
        fixed = _clear(w, b, k, n) or fixed  # every kind is cleared
    return SUCCEEDED if fixed else NO_EFFECT


@njit(cache=True)
def _escalate(w: Acted, b: int) -> int:
    """A human expert removes one cause (the first active fault, kind-major) by hand."""
    sev = w.sev
    for k in range(sev.shape[1]):
        for m in range(sev.shape[2]):
            if sev[b, k, m] > 0:
                sev[b, k, m] = 0.0
                w.ttl[b, k, m] = np.inf
                w.replicas[b, m] = max(w.replicas[b, m], w.base_replicas[m])
                w.leak[b, m] = 0.0
                w.changed[b] = True
                return SUCCEEDED
    cut = False
    for e in range(w.partition.shape[1]):
        cut = cut or w.partition[b, e] != 0.0
    if cut:
        w.partition[b, :] = 0.0
        w.changed[b] = True
        return SUCCEEDED
    return NO_EFFECT


@njit(cache=True)
def _handle(code: int, b: int, n: int, w: Acted) -> int:
    """Run one handler on environment ``b``, target ``n``; return its outcome code."""
    sev, true = w.sev, w.true
    if code == 0:  # restart_service: ends crash loops, resets leaked memory; hurts a healthy datastore
        harm = _harm_datastore(w, b, n, _TTL_RESTART)
        fixed = _clear(w, b, _CRASH, n)
        leaking = sev[b, _LEAK, n] > 0
        relieved = leaking and true[b, _M_MEM, n] > 0.75
        if leaking:
            w.leak[b, n] = 0.0
        return HARMFUL if harm else (SUCCEEDED if fixed or relieved else NO_EFFECT)
    if code == 1:  # rollback_deploy: ends the faults the new version brought
        out = _undo(w, b, n, 0, (_BAD, _CRASH, _LEAK))
        if out == SUCCEEDED:
            w.leak[b, n] = 0.0
        return out
    if code == 2:  # revert_config: ends a config error
        return _undo(w, b, n, 1, (_CONFIG,))
    replicas = w.replicas
    if code == 3:  # scale_out: two more replicas (back to the normal count from zero)
        replicas[b, n] = w.base_replicas[n] if replicas[b, n] < 1 else replicas[b, n] + 2
        fixed = _clear(w, b, _ZERO, n)
        return SUCCEEDED if fixed or true[b, _M_UTIL, n] > 0.95 else NO_EFFECT
    if code == 4:  # scale_in: one replica fewer; harmful when the rest cannot carry the load
        before = replicas[b, n]
        after = max(before - 1, 1.0)
        replicas[b, n] = after
        return HARMFUL if true[b, _M_UTIL, n] * before / after > 1.0 and after < before else NO_EFFECT
    if code == 5:  # failover_datastore: ends an outage; a short outage on a healthy datastore
        harm = _healthy_at(w, b, n)
        fixed = _clear(w, b, _OUTAGE, n)
        if harm:
            _inject(w, b, _OUTAGE, n, _TTL_FAILOVER)
        return SUCCEEDED if fixed else (HARMFUL if harm else NO_EFFECT)
    return _handle_more(code, b, n, w)


@njit(cache=True)
def _handle_more(code: int, b: int, n: int, w: Acted) -> int:
    """The handlers of codes 6 and above (see ``_handle``)."""
    partition, src, dst = w.partition, w.src, w.dst
    if code == 8:  # drain_node: away from a noisy neighbour or a broken network path
        harm = _harm_datastore(w, b, n, _TTL_DRAIN)
        fixed = _clear(w, b, _NOISY, n)
        healed = False
        for e in range(src.shape[0]):
            if src[e] == n or dst[e] == n:
                healed = healed or partition[b, e] != 0.0
                partition[b, e] -= partition[b, e]
        if healed:
            w.changed[b] = True
        return HARMFUL if harm else (SUCCEEDED if fixed or healed else NO_EFFECT)
    if code == 9:  # flush_cache: ends corruption; a healthy cache goes cold and stampedes its database
        fixed = _clear(w, b, _CORRUPT, n)
        cold = not fixed and _healthy_at(w, b, n) and w.has_backend[n]
        if cold:
            _inject(w, b, _STAMPEDE, n, _TTL_FLUSH)
        return SUCCEEDED if fixed else (HARMFUL if cold else NO_EFFECT)
    if code == 11:  # enable_rate_limiting: mitigates overload, never removes its cause
        w.rate_limited[b, n] = True
        return SUCCEEDED if w.true[b, _M_UTIL, n] > 1.0 else NO_EFFECT
    if code == 12:  # disable_rate_limiting
        w.rate_limited[b, n] = False
        return NO_EFFECT
    if code == 14:  # escalate
        return _escalate(w, b)
    k = _DISK if code == 6 else (_CERT if code == 7 else (_STAMPEDE if code == 10 else _POOL))
    return SUCCEEDED if _clear(w, b, k, n) else NO_EFFECT


@njit(cache=True)
def apply_actions(
    codes: np.ndarray,
    svc: np.ndarray,
    act: np.ndarray,
    valid: np.ndarray,
    live: np.ndarray,
    acted: tuple,
    outcome: np.ndarray,
) -> None:
    """Run each live environment's action; ``outcome`` (B,) gets its code, FAILED where invalid.

    ``acted``: the fields of ``Acted`` in order (a plain tuple: numba unboxes it faster); ``changed``
    gets set where an environment's faults changed. A targeted live action also marks its service as
    just acted on (age 0, recency 1).
    """
    w = Acted(*acted)
    for b in range(svc.shape[0]):
        outcome[b] = NO_EFFECT if valid[b] else FAILED
        if not live[b]:
            continue
        code = codes[act[b]]
        if code >= 0:
            outcome[b] = _handle(code, b, max(svc[b], 0), w)
        if svc[b] >= 0:
            w.ages[b, 2, svc[b]] = 0.0
            w.recent[b, 2, svc[b]] = 1.0
