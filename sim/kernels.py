"""Compiled inner loops of a step: one pass over (environment, service) instead of ~150 numpy calls.

A step on a small graph is bound by per-call overhead, not arithmetic: each numpy call costs about a
microsecond whatever the array size. These numba kernels compute the same formulas, in the same
order, element by element (the numpy expressions they replace are quoted in ``sim/dynamics.py`` and
``sim/observation.py``). Only the dense propagation stays a BLAS matrix product between two kernels.
``cache=True`` keeps the compiled code in ``__pycache__``, so only the first run ever compiles.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# metric rows of the (B, 6, N) block, METRICS order (sim.dynamics re-exports them)
M_ERR, M_P99, M_CPU, M_MEM, M_UTIL, M_AVAIL = range(6)
_LCG_A, _LCG_C = np.uint64(6364136223846793005), np.uint64(1442695040888963407)


@njit(cache=True)
def own_behaviour(
    base_mem: np.ndarray,
    base_lat: np.ndarray,
    replicas: np.ndarray,
    up_f: np.ndarray,
    cap_f: np.ndarray,
    load_f: np.ndarray,
    fail_prev: np.ndarray,
    rate_limited: np.ndarray,
    ok_f: np.ndarray,
    lat_f: np.ndarray,
    cpu_f: np.ndarray,
    leak: np.ndarray,
    herring: np.ndarray,
    retry_gain: float,
    timeout_ms: float,
    out: np.ndarray,
    x: np.ndarray,
) -> None:
    """Each service on its own: fill memory, utilisation, CPU, availability of ``out`` (B, 6, N).

    ``x`` (2, B, N) receives what propagation spreads to callers: the own success share (at least
    0.001; the caller takes its log in place) and the own latency. Terms that are zero without a leak, a rate limit or a red herring are added
    anyway (adding 0 or multiplying by 1 is exact), so there is no branch per batch.
    """
    batch, n = replicas.shape
    for b in range(batch):
        for i in range(n):
            mem = min(base_mem[i] + leak[b, i], 1.0)
            oom = min(max(mem - 0.9, 0.0) * 10.0, 1.0)  # share of pods being OOM-killed
            up = up_f[b, i] * (1.0 - 0.6 * oom)
            ready = replicas[b, i] * up
            cap = ready * cap_f[b, i]
            load = load_f[b, i] * (1.0 + retry_gain * fail_prev[b, i])
            served = min(load, 0.9 * cap) if rate_limited[b, i] else load
            util = min(served / max(cap, 1e-6), 50.0)
            kept = 1.0 / max(util, 1.0)  # share served; the rest is dropped or timed out
            ok = ok_f[b, i] * kept
            if rate_limited[b, i]:
                ok *= 1.0 - 0.5 * (load - served) / load  # rate-limited clients back off
            ok *= 1.0 - 0.5 * oom
            if ready < 1e-3:
                ok = 0.0
            q = min(util, 0.95)
            lat = lat_f[b, i] + base_lat[i] * (2.0 * q / (1.0 - q)) + timeout_ms * (1.0 - kept)
            lat += 200.0 * oom
            lat += 400.0 * herring[b, i]
            cpu = min(cpu_f[b, i] + 0.75 * min(util, 1.3), 1.0)
            cpu = min(cpu + 0.3 * herring[b, i], 1.0)
            out[b, M_MEM, i] = mem
            out[b, M_UTIL, i] = util
            out[b, M_CPU, i] = cpu if ready > 0.0 else 0.0
            out[b, M_AVAIL, i] = up if replicas[b, i] > 0.0 else 0.0
            x[0, b, i] = max(ok, 1e-3)  # the caller takes the log: numpy's SIMD log is ~10x faster
            x[1, b, i] = lat


@njit(cache=True)
def spread_metrics(
    prop: np.ndarray,
    seen: np.ndarray,
    frontends: np.ndarray,
    breach_scale: np.ndarray,
    entry_share: np.ndarray,
    out: np.ndarray,
    fail: np.ndarray,
    impact: np.ndarray,
    slo_ok: np.ndarray,
) -> None:
    """Error rate and p99 into ``out`` and ``fail`` (B, N) from the propagated ``prop`` (2, B, N).

    ``prop[0]`` is the success share after propagation (the caller exponentiates the log sums),
    ``prop[1]`` the propagated latency.

    Per environment: ``impact``, the user impact per minute, and ``slo_ok``, every entry point within
    its SLO (see ``sim.dynamics.evaluate``).
    """
    batch, n = seen.shape
    for b in range(batch):
        for i in range(n):
            err = 1.0 - prop[0, b, i]
            out[b, M_ERR, i] = err
            out[b, M_P99, i] = min(prop[1, b, i], 30000.0)
            fail[b, i] = min(err + seen[b, i], 1.0)
        total = 0.0
        ok = True
        for j in range(frontends.size):
            f = frontends[j]
            fe_err = out[b, M_ERR, f]
            fe_slow = out[b, M_P99, f] * breach_scale[j]  # 0.25 = twice the normal p99
            breach = min(max(fe_slow - 0.25, 0.0), 1.0)
            total += min(fe_err + 0.5 * breach, 1.0) * entry_share[j]
            ok = ok and max(fe_err * 12.5, fe_slow) < 0.25  # 12.5 x 2 % = 0.25
        impact[b] = total
        slo_ok[b] = ok


@njit(cache=True)
def observe_alerts(
    true: np.ndarray,
    noise: np.ndarray,
    thresholds: np.ndarray,
    present: np.ndarray,
    held: np.ndarray,
    fault_alerts: np.ndarray,
    observed: np.ndarray,
    alerts: np.ndarray,
) -> None:
    """Noisy metrics into ``observed`` and Prometheus-style alerts into ``alerts`` (B, 8, N).

    Observed values keep their physical bounds: error rate, CPU, memory and availability in [0, 1],
    p99 and saturation (load / capacity, above 1 when overloaded) at least 0.
    Metric alerts fire above their threshold (``ServiceDown``: availability below 0.5) where telemetry
    arrives; HighLatency and HighCPU only when the condition also held at the previous evaluation.
    ``held`` (B, 6, N) is read and then overwritten with this evaluation's conditions.
    """
    batch, rows, n = true.shape
    for b in range(batch):
        for m in range(rows):
            below = m == M_AVAIL  # ServiceDown fires below its threshold
            two = m in (M_P99, M_CPU)
            for i in range(n):
                v = max(true[b, m, i] * noise[b, m, i], 0.0)
                if m != M_P99 and m != M_UTIL:  # shares stay shares: noise never reports 104 % available
                    v = min(v, 1.0)
                observed[b, m, i] = v
                cond = (v < 0.5 if below else v > thresholds[m, i]) and present[b, i]
                alerts[b, m, i] = cond and held[b, m, i] if two else cond
                held[b, m, i] = cond
        for m in range(fault_alerts.shape[1]):
            for i in range(n):
                alerts[b, rows + m, i] = fault_alerts[b, m, i]


@njit(cache=True)
def encode(
    values: np.ndarray, present: np.ndarray, alerts: np.ndarray, recent: np.ndarray, out: np.ndarray
) -> None:
    """The dynamic rows of ``sim.observation.encode_features`` (0 .. 17), FEATURES order."""
    batch, rows, n = values.shape
    n_alerts = alerts.shape[1]
    for b in range(batch):  # row by row: contiguous inner loops
        for m in range(rows):
            for i in range(n):
                v = max(values[b, m, i], 0.0)
                if m == 1:
                    f = min(math.log10(1.0 + v) * 0.2, 1.0)
                elif m == 4:
                    f = min(v, 2.0) * 0.5
                else:
                    f = min(v, 1.0)
                out[b, m, i] = f if present[b, i] else 0.0
        for i in range(n):
            out[b, rows, i] = 0.0 if present[b, i] else 1.0
        for a in range(n_alerts):
            for i in range(n):
                out[b, rows + 1 + a, i] = 1.0 if alerts[b, a, i] else 0.0
        for c in range(recent.shape[1]):
            for i in range(n):
                out[b, rows + 1 + n_alerts + c, i] = recent[b, c, i]


@njit(cache=True)
def encode_globals_into(
    elapsed_s: np.ndarray, alerts: np.ndarray, features: np.ndarray, frontends: np.ndarray, out: np.ndarray
) -> None:
    """``sim.observation.encode_globals``: elapsed hours, share of services alerting, worst frontend error."""
    batch, n_alerts, n = alerts.shape
    for b in range(batch):
        out[b, 0] = min(elapsed_s[b] * (1.0 / 3600.0), 1.0)
        firing = 0
        for i in range(n):
            any_alert = False
            for a in range(n_alerts):
                any_alert = any_alert or alerts[b, a, i]
            firing += any_alert
        out[b, 1] = firing * (1.0 / n)
        worst = np.float32(0.0)
        for j in range(frontends.size):
            v = features[b, 0, frontends[j]]
            worst = v if j == 0 or v > worst else worst
        out[b, 2] = worst


@njit(cache=True)
def observe(
    true: np.ndarray,
    noise: np.ndarray,
    thresholds: np.ndarray,
    present: np.ndarray,
    held: np.ndarray,
    fault_alerts: np.ndarray,
    recent: np.ndarray,
    elapsed_s: np.ndarray,
    frontends: np.ndarray,
    observed: np.ndarray,
    alerts: np.ndarray,
    features: np.ndarray,
    globs: np.ndarray,
) -> None:
    """``observe_alerts``, ``encode`` and ``encode_globals_into`` in one call (one dispatch per step)."""
    observe_alerts(true, noise, thresholds, present, held, fault_alerts, observed, alerts)
    encode(observed, present, alerts, recent, features)
    encode_globals_into(elapsed_s, alerts, features, frontends, globs)


@njit(cache=True)
def encode_links(
    edge_errors: np.ndarray,
    src: np.ndarray,
    present: np.ndarray,
    replicas: np.ndarray,
    base_replicas: np.ndarray,
    traffic_ratio: np.ndarray,
    workload_row: int,
    edge_out: np.ndarray,
    features: np.ndarray,
) -> None:
    """Encode per-edge error rates into ``edge_out`` (B, E, 1) and the two workload rows of ``features``.

    Edge: the error rate clipped to [0, 1], 0 where the caller's telemetry is missing. Rows
    ``workload_row`` and ``workload_row + 1``: replica_deficit = clip(1 - replicas / base_replicas, 0, 1)
    and traffic_excess = clip((traffic_ratio - 1) / 3, 0, 1), 0 where telemetry is missing.
    ``edge_errors`` may be a view of ``edge_out`` (each element is read before it is written).
    """
    batch, n = present.shape
    for b in range(batch):
        for e in range(src.shape[0]):
            edge_out[b, e, 0] = min(max(edge_errors[b, e], 0.0), 1.0) if present[b, src[e]] else 0.0
        for i in range(n):
            seen = present[b, i]
            deficit = 1.0 - replicas[b, i] / base_replicas[i]
            excess = (traffic_ratio[b, i] - 1.0) / 3.0
            features[b, workload_row, i] = min(max(deficit, 0.0), 1.0) if seen else 0.0
            features[b, workload_row + 1, i] = min(max(excess, 0.0), 1.0) if seen else 0.0


@njit(cache=True)
def observe_links(
    partition: np.ndarray,
    fail_prev: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    present: np.ndarray,
    replicas: np.ndarray,
    base_replicas: np.ndarray,
    load_f: np.ndarray,
    inv_base_load: np.ndarray,
    retry_gain: float,
    noise: np.ndarray,
    workload_row: int,
    edge_out: np.ndarray,
    traffic_out: np.ndarray,
    features: np.ndarray,
) -> None:
    """What the simulator's telemetry reports per edge and per service, encoded by ``encode_links``.

    ``noise`` (B, E + N) holds the relative noise factors, edges first. A call over an edge fails when
    the edge is partitioned or the callee fails it: (1 - (1 - min(partition, 1)) * (1 - fail_prev[dst]))
    x noise. ``traffic_out`` (B, N) gets the noisy request rate over normal, retries included.
    """
    batch, n = replicas.shape
    n_edges = src.shape[0]
    for b in range(batch):
        for e in range(n_edges):
            ok = (1.0 - min(partition[b, e], 1.0)) * (1.0 - fail_prev[b, dst[e]])
            edge_out[b, e, 0] = min((1.0 - ok) * noise[b, e], 1.0)  # a share of calls: at most all of them
        for i in range(n):
            load = load_f[b, i] * (1.0 + retry_gain * fail_prev[b, i])
            traffic_out[b, i] = load * inv_base_load[i] * noise[b, n_edges + i]
    encode_links(
        edge_out[:, :, 0],
        src,
        present,
        replicas,
        base_replicas,
        traffic_out,
        workload_row,
        edge_out,
        features,
    )


@njit(cache=True)
def noise_start(lcg: np.ndarray, pool: int, size: int) -> int:
    """Advance the 64-bit LCG in ``lcg`` (1,) uint64 and return where a noise window of ``size`` starts.

    Far cheaper than a Generator call and seeded through it (``BatchCore.reseed``); ``pool`` is the
    size of the fixed noise table.
    """
    lcg[0] = lcg[0] * _LCG_A + _LCG_C
    return int((lcg[0] >> np.uint64(24)) % np.uint64(pool - size))


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
