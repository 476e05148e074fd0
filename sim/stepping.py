"""A whole ``BatchCore.step`` in four compiled calls, for B = 1 (``IncidentEnv``) and any B alike.

A step on a small graph is bound by per-call overhead: every kernel call, numpy call and attribute
lookup costs about a microsecond whatever the array size. So a step is

1. ``begin_step``: decode and check the actions, let their time pass, end transient faults that ran
   out; ``sim.handlers.apply_actions`` runs the live actions;
2. in NumPy, only where faults changed or incidents restart: ``BatchState.refresh`` (two BLAS
   products and NumPy's log); then ``sim.dynamics.propagated`` (``own_behaviour``, NumPy's log, the
   propagation matrix product, NumPy's exp: kept there so every number stays the one NumPy computes);
3. ``sim.kernels.observe_all``: error rates, p99, impact, noisy metrics, alerts, features, edges;
   ``settle_step``: reward, cost, totals, ends of episodes, autoreset.

Each formula lives once. The argument tuples are built once per core (``BatchCore._kernel_args``) from
arrays that are updated in place, and each kernel is bound to their types once (``bind``). A compiled
function here calls only compiled functions of this file: numba's cache (``cache=True``) notices
changes to a function's own source file only, so a call into another file could run stale code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from numba import njit

from sim.actions import FAILED, NO_EFFECT
from sim.kernels import M_UTIL


def bind(kernel: Any, *args: Any) -> Callable[..., Any]:
    """Return ``kernel`` compiled (or loaded from its cache) for the types of ``args``, called directly.

    A call then skips numba's type dispatch, about 75 ns per array (3 us of a 4.6 us call with 40
    arrays at B = 1). Only for arguments of exactly these types (the same dtypes and dimensions,
    C-contiguous, writeable): the compiled entry point does not check them.
    """
    return kernel.compile(tuple(numba.typeof(a) for a in args))  # type: ignore[no-any-return]


@njit(cache=True)
def _expire(
    due: np.ndarray, elapsed_s: np.ndarray, sev: np.ndarray, ttl: np.ndarray, dirty: np.ndarray
) -> None:
    """End the transient faults whose deadline passed in the environments ``due`` marks."""
    for b in range(due.shape[0]):
        if not due[b]:
            continue
        for k in range(sev.shape[1]):
            for n in range(sev.shape[2]):
                if ttl[b, k, n] <= elapsed_s[b]:
                    sev[b, k, n] = 0.0
                    ttl[b, k, n] = np.inf
        dirty[b] = True


@njit(cache=True)
def advance(
    dt: np.ndarray,
    decay: np.ndarray,
    herring_ttl_s: float,
    leak: np.ndarray,
    leak_rate: np.ndarray,
    herring: np.ndarray,
    ages: np.ndarray,
    recent: np.ndarray,
    elapsed_s: np.ndarray,
    next_expiry: np.ndarray,
    due: np.ndarray,
) -> bool:
    """Let ``dt`` (B,) seconds pass: leaks grow, red herrings fade, ages and recency move on.

    ``due`` (B,) marks environments where a transient fault's deadline has passed; returns whether any.
    """
    batch, n = leak.shape
    any_due = False
    for b in range(batch):
        d = dt[b]
        for i in range(n):
            leak[b, i] += leak_rate[b, i] * d
            herring[b, i] = max(herring[b, i] - d / herring_ttl_s, 0.0)
        for c in range(ages.shape[1]):
            factor = math.exp(d * decay[c])
            for i in range(n):
                ages[b, c, i] += d
                recent[b, c, i] *= factor
        elapsed_s[b] += d
        due[b] = elapsed_s[b] >= next_expiry[b]
        any_due = any_due or due[b]
    return any_due


@njit(cache=True)
def prepare_actions(
    acts: np.ndarray,
    n: int,
    a: int,
    wait: int,
    static_flat: np.ndarray,
    dynamic: np.ndarray,
    cols: np.ndarray,
    replicas: np.ndarray,
    rate_limited: np.ndarray,
    duration_s: np.ndarray,
    impact_rate: np.ndarray,
    svc: np.ndarray,
    act: np.ndarray,
    valid: np.ndarray,
    live: np.ndarray,
    dt: np.ndarray,
    impact: np.ndarray,
) -> int:
    """Decode action indices (``BatchCore.decode``), check them against the mask, look up durations.

    ``cols`` holds the action columns of scale_in, enable_rate_limiting, disable_rate_limiting (-1 when
    the catalog lacks one). ``live``: valid and not ``wait``. ``impact``: what users feel while the
    action runs. Returns the number of live actions, or -1 when an index is out of range.
    """
    batch = acts.shape[0]
    size = static_flat.shape[0]
    n_live = 0
    for b in range(batch):
        if acts[b] < 0 or acts[b] >= size:
            return -1
    for b in range(batch):
        s, k = divmod(acts[b], a)
        if s >= n:
            k = a + acts[b] - n * a
            s = -1
        svc[b], act[b] = s, k
        ok = static_flat[acts[b]]
        if ok and dynamic[k]:
            i = min(acts[b] // a, n - 1)
            if k == cols[0]:
                ok = replicas[b, i] > 1
            elif k == cols[1]:
                ok = not rate_limited[b, i]
            elif k == cols[2]:
                ok = rate_limited[b, i]
        valid[b] = ok
        live[b] = ok and k != wait
        n_live += live[b]
        dt[b] = duration_s[k]
        impact[b] = impact_rate[b] * (dt[b] * (1.0 / 60.0))
    return n_live


@njit(cache=True)
def settle(
    act: np.ndarray,
    valid: np.ndarray,
    dt: np.ndarray,
    impact: np.ndarray,
    cost_usd: np.ndarray,
    risk_penalty: np.ndarray,
    replicas: np.ndarray,
    total_replicas: float,
    replica_cost_per_s: float,
    cost_weight: float,
    invalid_penalty: float,
    max_steps: int,
    cause: np.ndarray,
    surge: np.ndarray,
    util: np.ndarray,
    slo_ok: np.ndarray,
    steps: np.ndarray,
    impact_total: np.ndarray,
    cost_total: np.ndarray,
    reward: np.ndarray,
    cost: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
) -> None:
    """End of a step: cost (action plus extra replicas), reward, totals, terminated / truncated.

    Terminated = healthy: no cause left, no surge still overloading its target (util > 0.95), every
    entry point within its SLO (``BatchCore.healthy``).
    """
    batch, n = replicas.shape
    for b in range(batch):
        extra = 0.0
        for i in range(n):
            extra += replicas[b, i]
        extra -= total_replicas
        c = cost_usd[act[b]] + max(extra, 0.0) * replica_cost_per_s * dt[b]
        r = -impact[b] - cost_weight * c - risk_penalty[act[b]]
        if not valid[b]:
            r -= invalid_penalty
        cost[b], reward[b] = c, r
        steps[b] += 1
        impact_total[b] += impact[b]
        cost_total[b] += c
        ok = not cause[b] and slo_ok[b]
        for i in range(n):
            ok = ok and not (surge[b, i] > 0.0 and util[b, i] > 0.95)
        terminated[b] = ok
        truncated[b] = not ok and steps[b] >= max_steps


@njit(cache=True)
def begin_step(
    acts: np.ndarray,
    choose: tuple,
    clock: tuple,
    state: tuple,
    scratch: tuple,
    dt: np.ndarray,
    impact: np.ndarray,
    outcome: np.ndarray,
) -> int:
    """Check the actions ``acts`` (B,) and let their time pass; return the number of live ones (-1: out of range).

    ``choose``: (n services, n per-service actions, index of wait, static mask (S,), dynamic (A,),
    dynamic columns (3,), durations (A,)); ``clock``: (recency decay (3,), red herring ttl, leak_rate,
    herring, next_expiry, impact_rate); ``state``: (replicas, rate_limited, leak, ages, recent,
    elapsed_s, sev, ttl); ``scratch``: (svc, act, valid, live, due, dirty) (B,). Writes ``dt``,
    ``impact`` (what users feel while the action runs) and ``outcome`` as if no action had an effect
    (``sim.handlers.apply_actions`` runs the live ones next); marks ``dirty`` where a fault expired.
    """
    n, a, wait, static_flat, dynamic, dyn_cols, duration_s = choose
    decay, herring_ttl_s, leak_rate, herring, next_expiry, impact_rate = clock
    replicas, rate_limited, leak, ages, recent, elapsed_s, sev, ttl = state
    svc, act, valid, live, due, dirty = scratch
    n_live = prepare_actions(
        acts, n, a, wait, static_flat, dynamic, dyn_cols, replicas, rate_limited, duration_s, impact_rate,
        svc, act, valid, live, dt, impact,
    )  # fmt: skip
    if n_live < 0:
        return -1
    if advance(dt, decay, herring_ttl_s, leak, leak_rate, herring, ages, recent, elapsed_s, next_expiry, due):
        _expire(due, elapsed_s, sev, ttl, dirty)
    for b in range(outcome.shape[0]):
        outcome[b] = NO_EFFECT if valid[b] else FAILED
    return n_live


@njit(cache=True)
def settle_step(
    costs: tuple,
    episode: tuple,
    autoreset: bool,
    act: np.ndarray,
    valid: np.ndarray,
    dt: np.ndarray,
    result: tuple,
) -> None:
    """Reward, cost, totals and ends of episodes (``sim.kernels.settle``), then next-step autoreset.

    ``costs``: (cost_usd (A,), risk_penalty (A,), normal replica total, replica cost per second, cost
    weight, invalid penalty, max steps, surge kind); ``episode``: (replicas (B, N), sev (B, K, N), true
    (B, 6, N), cause, slo_ok, steps, impact_total, cost_total, needs_reset (B,)); ``result``: (reward,
    impact, cost, terminated, truncated, outcome). With ``autoreset`` an environment that needed a reset
    (it started over this step) reports reward, impact and cost 0, outcome 0 and neither end.
    ``needs_reset`` becomes terminated or truncated.
    """
    (
        cost_usd,
        risk_penalty,
        total_replicas,
        replica_cost_per_s,
        cost_weight,
        invalid_penalty,
        max_steps,
        surge,
    ) = costs
    replicas, sev, true, cause, slo_ok, steps, impact_total, cost_total, needs_reset = episode
    reward, impact, cost, terminated, truncated, outcome = result
    settle(
        act, valid, dt, impact, cost_usd, risk_penalty, replicas, total_replicas, replica_cost_per_s,
        cost_weight, invalid_penalty, max_steps, cause, sev[:, surge], true[:, M_UTIL], slo_ok, steps,
        impact_total, cost_total, reward, cost, terminated, truncated,
    )  # fmt: skip
    for b in range(needs_reset.shape[0]):
        if autoreset and needs_reset[b]:
            reward[b] = impact[b] = cost[b] = 0.0
            outcome[b] = 0
            terminated[b] = truncated[b] = False
            steps[b] = 0
            impact_total[b] = cost_total[b] = 0.0
        needs_reset[b] = terminated[b] or truncated[b]
