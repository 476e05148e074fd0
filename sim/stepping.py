"""A whole ``BatchCore.step`` in three compiled calls, for B = 1 (``IncidentEnv``) and any B alike.

A step on a small graph is bound by per-call overhead: every kernel call, numpy call and attribute
lookup costs about a microsecond whatever the array size. So a step is

1. ``begin_step``: decode and check the actions, let their time pass, end transient faults that ran
   out, run the handlers (``sim.kernels.prepare_actions``, ``advance``, ``sim.handlers.apply_actions``);
2. in NumPy, only where faults changed or incidents restart: ``BatchState.refresh`` (two BLAS
   products and NumPy's log); then ``sim.dynamics.propagated`` (NumPy's log, the propagation matrix
   product, NumPy's exp: kept there so every number stays the one NumPy computes);
3. ``observe_all``: error rates, p99, impact, noisy metrics, alerts, features, edges (the kernels of
   ``sim.kernels``), then ``settle_step``: reward, cost, totals, ends of episodes, autoreset.

Each formula lives once, in the kernels these call; the argument tuples are built once per core
(``BatchCore._kernel_args``) from arrays that are updated in place, and each kernel is bound to
their types once (``bind``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from numba import njit

from sim.handlers import Acted, apply_actions
from sim.kernels import M_UTIL, advance, observe, observe_links, prepare_actions, settle, spread_metrics

_LCG_A, _LCG_C = np.uint64(6364136223846793005), np.uint64(1442695040888963407)


def bind(kernel: Any, *args: Any) -> Callable[..., Any]:
    """Return ``kernel`` compiled (or loaded from its cache) for the types of ``args``, called directly.

    A call then skips numba's type dispatch, about 75 ns per array (3 us of a 4.6 us call with 40
    arrays at B = 1). Only for arguments of exactly these types (the same dtypes and dimensions,
    C-contiguous, writeable): the compiled entry point does not check them.
    """
    return kernel.compile(tuple(numba.typeof(a) for a in args))  # type: ignore[no-any-return]


@njit(cache=True)
def noise_start(lcg: np.ndarray, pool: int, size: int) -> int:
    """Advance the 64-bit LCG in ``lcg`` (1,) uint64 and return where a noise window of ``size`` starts.

    Far cheaper than a Generator call and seeded through it (``BatchCore.reseed``); ``pool`` is the
    size of the fixed noise table.
    """
    lcg[0] = lcg[0] * _LCG_A + _LCG_C
    return int((lcg[0] >> np.uint64(24)) % np.uint64(pool - size))


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
def begin_step(
    acts: np.ndarray,
    choose: tuple,
    clock: tuple,
    acted: tuple,
    scratch: tuple,
    dt: np.ndarray,
    impact: np.ndarray,
    outcome: np.ndarray,
) -> int:
    """Check and run the actions ``acts`` (B,); return the number of live ones, -1 for an index out of range.

    ``choose``: (n services, n per-service actions, index of wait, static mask (S,), dynamic (A,),
    dynamic columns (3,), durations (A,), handler codes (A,)); ``clock``: (recency decay (3,), red
    herring ttl, leak_rate, herring, next_expiry, impact_rate); ``acted``: the fields of
    ``sim.handlers.Acted``; ``scratch``: (svc, act, valid, live, due, dirty) (B,). Writes ``dt``,
    ``impact`` (what users feel while the action runs) and ``outcome``; marks ``dirty`` environments.
    """
    n, a, wait, static_flat, dynamic, dyn_cols, duration_s, codes = choose
    decay, herring_ttl_s, leak_rate, herring, next_expiry, impact_rate = clock
    svc, act, valid, live, due, dirty = scratch
    w = Acted(*acted)
    n_live = prepare_actions(
        acts, n, a, wait, static_flat, dynamic, dyn_cols, w.replicas, w.rate_limited, duration_s,
        impact_rate, svc, act, valid, live, dt, impact,
    )  # fmt: skip
    if n_live < 0:
        return -1
    if advance(
        dt, decay, herring_ttl_s, w.leak, leak_rate, herring, w.ages, w.recent, w.elapsed_s, next_expiry, due
    ):
        _expire(due, w.elapsed_s, w.sev, w.ttl, dirty)
    apply_actions(codes, svc, act, valid, live, w, outcome)
    for b in range(dirty.shape[0]):
        dirty[b] = dirty[b] or w.changed[b]
    return n_live


@njit(cache=True)
def observe_all(
    prop: np.ndarray,
    state: tuple,
    consts: tuple,
    out: tuple,
    observed: np.ndarray,
    alerts: np.ndarray,
    globs: np.ndarray,
) -> None:
    """Evaluate and observe every environment from the propagated ``prop`` (2, B, N).

    ``state``: (seen, fail_prev, present, held, fault_alerts, recent, partition, replicas, load_f,
    elapsed_s, lcg); ``consts``: (frontends, breach_scale, frontend_share, alert thresholds (6, N),
    frontend kinds, src, dst, base_replicas, inv_base_load, retry gain, workload row, noise table);
    ``out``: (true (B, 6, N), impact_rate, slo_ok, features, edge_features, traffic_ratio). The noise of
    the metrics and then of the edges and services come from two windows of the noise table.
    """
    seen, fail_prev, present, held, fault_alerts, recent, partition, replicas, load_f, elapsed_s, lcg = state
    (
        frontends,
        breach_scale,
        share,
        thresholds,
        fe_kind,
        src,
        dst,
        base_replicas,
        inv_load,
        gain,
        row,
        pool,
    ) = consts
    true, impact_rate, slo_ok, features, edge_features, traffic_ratio = out
    spread_metrics(prop, seen, frontends, breach_scale, share, true, fail_prev, impact_rate, slo_ok)
    batch, rows, n = true.shape
    size = batch * rows * n
    start = noise_start(lcg, pool.size, size)
    noise = pool[start : start + size].reshape((batch, rows, n))
    observe(
        true, noise, thresholds, present, held, fault_alerts, recent, elapsed_s, fe_kind, observed, alerts,
        features, globs,
    )  # fmt: skip
    size = batch * (src.size + n)
    start = noise_start(lcg, pool.size, size)
    links = pool[start : start + size].reshape((batch, src.size + n))
    observe_links(
        partition, fail_prev, src, dst, present, replicas, base_replicas, load_f, inv_load, gain, links, row,
        edge_features, traffic_ratio, features,
    )  # fmt: skip


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
