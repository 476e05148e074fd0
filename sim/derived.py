"""What a step reads from the faults, compiled: ``BatchState.refresh`` between its two matrix products.

``refresh`` turns the active faults into per-service arrays (own error share, capacity, load, ...)
whenever they change. The effect sum (a matrix product over fault kinds) and ``seen_log @ up_seen``
stay BLAS products and the log stays NumPy's, so the numbers are the ones the NumPy version gave; this
kernel does everything in between, element by element, in the order NumPy did it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.faults import AVLOSS, CAPLOSS, CPU, ERR, FAULT_INDEX, LAT, LEAK, LOAD, SEEN, STAMPEDE_LOAD

_STAMPEDE, _SURGE = FAULT_INDEX["cache_stampede"], FAULT_INDEX["traffic_surge"]
_DISK, _CERT = FAULT_INDEX["disk_full"], FAULT_INDEX["certificate_expiry"]


@njit(cache=True)
def derive(
    envs: np.ndarray,
    eff: np.ndarray,
    sev: np.ndarray,
    part: np.ndarray,
    consts: tuple,
    timeout_ms: float,
    s: tuple,
    seen: np.ndarray,
) -> None:
    """Write the derived arrays of environments ``envs`` (row j of ``eff``/``sev``/``part`` is envs[j]).

    ``eff`` (b, C, N) holds the effect sums and is updated in place (stampede load, cut edges);
    ``consts``: (backend_pairs (2, P), src, weights, cap_per_replica, base_load, base_lat);
    ``s``: the BatchState arrays (ok_f, up_f, cap_f, load_f, lat_f, cpu_f, seen, leak_rate,
    fault_alerts, cause, load_scale, exporter); ``seen`` (b, N) receives the seen share for the log.
    """
    pairs, src, weights, cap_per_replica, base_load, base_lat = consts
    cause = s[9]
    batch, kinds, n = sev.shape
    stampede = np.zeros(n)
    cut = np.zeros(n)
    for j in range(batch):
        b = envs[j]
        stampede[:] = 0.0  # each stampeding cache's load lands on its databases
        for p in range(pairs.shape[1]):
            stampede[pairs[1, p]] += sev[j, _STAMPEDE, pairs[0, p]]
        for i in range(n):
            eff[j, LOAD, i] += STAMPEDE_LOAD * stampede[i]
        cut_any = False
        for e in range(part.shape[1]):
            cut_any = cut_any or part[j, e] != 0.0
        if cut_any:
            cut[:] = 0.0
            for e in range(src.size):
                cut[src[e]] += part[j, e] * weights[e]
            for i in range(n):
                eff[j, ERR, i] += cut[i]
                eff[j, LAT, i] += timeout_ms * cut[i]
        _rows(j, b, eff, sev, cap_per_replica, base_load, base_lat, s, seen)
        any_cause = False
        for k in range(kinds):
            for i in range(n):
                any_cause = any_cause or (k != _SURGE and sev[j, k, i] > 0)
        for e in range(part.shape[1]):
            any_cause = any_cause or part[j, e] > 0
        cause[b] = any_cause


@njit(cache=True)
def _rows(j, b, eff, sev, cap_per_replica, base_load, base_lat, s, seen):  # type: ignore[no-untyped-def]
    """The per-service derived values of environment ``b`` from row ``j`` of ``eff`` and ``sev``."""
    ok_f, up_f, cap_f, load_f, lat_f, cpu_f, seen_s, leak_rate, fault_alerts, _, load_scale, exporter = s
    for i in range(sev.shape[2]):
        ok_f[b, i] = 1.0 - min(eff[j, ERR, i], 1.0)
        up_f[b, i] = 1.0 - min(eff[j, AVLOSS, i], 1.0)
        cap_f[b, i] = cap_per_replica[i] * (1.0 - min(eff[j, CAPLOSS, i], 0.95))
        load_f[b, i] = base_load[i] * load_scale[b, 0] * (1.0 + eff[j, LOAD, i])
        lat_f[b, i] = base_lat[i] + eff[j, LAT, i]
        cpu_f[b, i] = 0.08 + eff[j, CPU, i]
        seen[j, i] = min(eff[j, SEEN, i], 1.0)
        seen_s[b, i] = seen[j, i]
        leak_rate[b, i] = eff[j, LEAK, i]
        fault_alerts[b, 0, i] = sev[j, _DISK, i] > 0 and exporter[b, i]
        fault_alerts[b, 1, i] = sev[j, _CERT, i] > 0 and exporter[b, i]
