"""A canary in the simulator: one action applied to a share of the target's replicas only.

The simulator keeps one fault severity per (fault, service), and a service's symptoms are linear in it,
so "the fix reached a share of the replicas" is the step's change of severities scaled by that share:
a fault the action ends keeps ``1 - share`` of its severity, a fault it causes starts at ``share``.
What only the full rollout consumes (the previous version or config to go back to) is kept, so the
rest of the rollout still can. The undo takes the canary's change of severities back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.core import BatchCore, StepResult

# per-service state a canary must not use up: the rest of the rollout still goes back to it
KEPT = ("version", "config_version", "has_prev_version", "has_prev_config")


@dataclass(frozen=True)
class CanaryRun:
    """One canary step: its result, and the change of severities it made (K, N), for its undo."""

    result: StepResult
    delta: np.ndarray


def canary_share(replicas: int, share: float) -> tuple[int, float]:
    """Return (replicas the canary runs on, at least one; their share of all ``replicas``)."""
    total = max(int(replicas), 1)
    count = min(total, max(1, int(share * total)))
    return count, count / total


def _refresh(core: BatchCore, env: int) -> None:
    core._dirty[env] = True  # the faults changed: the derived arrays and the observation follow
    core._refresh_dirty()
    core._observe(slice(None))


def canary_step(core: BatchCore, index: int, share: float, env: int = 0) -> CanaryRun:
    """Run flat action ``index`` in ``env`` on ``share`` of the target's replicas (others wait)."""
    s = core.state
    sev0, ttl0, leak0 = s.sev[env].copy(), s.ttl[env].copy(), s.leak[env].copy()
    kept = {name: getattr(s, name)[env].copy() for name in KEPT}
    wait = core.st.n * core.n_actions + core.table.index("wait") - core.n_actions
    chosen = np.full(core.n_envs, wait)
    chosen[env] = index
    result = core.step(chosen)
    sev1, ttl1 = s.sev[env].copy(), s.ttl[env].copy()
    expired = ttl0 <= core.elapsed_s[env]  # cleared by time passing, not by the action
    blended = np.where(expired, sev1, sev0 + share * (sev1 - sev0))
    s.sev[env] = blended
    s.ttl[env] = np.where((sev0 <= 0) & (sev1 > 0), ttl1, np.where(expired, ttl1, ttl0))
    s.leak[env] = np.where(s.leak[env] < leak0, leak0 * (1.0 - share), s.leak[env])
    for name, value in kept.items():
        getattr(s, name)[env] = value
    _refresh(core, env)
    return CanaryRun(result, blended - np.where(expired, sev1, sev0))


def undo_canary(core: BatchCore, delta: np.ndarray, env: int = 0) -> None:
    """Take a canary's change of severities back (what it ended returns, what it caused ends)."""
    s = core.state
    s.sev[env] = np.clip(s.sev[env] - delta, 0.0, 1.0)
    s.ttl[env] = np.where(s.sev[env] <= 0, np.inf, s.ttl[env])
    _refresh(core, env)
