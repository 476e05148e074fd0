"""Verification in the simulator: pictures of a simulated incident, and one action judged after settling."""

from __future__ import annotations

import math

import numpy as np

from remediation.verification.canary import canary_tuning
from remediation.verification.judge import Judgement, Picture, Tuning, judge
from remediation.verification.live import callers, exposed, neighbours
from sim.canary import CanaryRun, canary_share, canary_step
from sim.core import BatchCore
from sim.observation import ALERTS, METRICS


def picture_of(core: BatchCore, env: int = 0) -> Picture:
    """Return the firing alerts and observed metrics of one simulated incident."""
    t = core.topology
    firing = frozenset((t.services[n], ALERTS[a]) for a, n in zip(*np.nonzero(core.alerts[env]), strict=True))
    metrics = {
        svc: {m: float(core.observed[env, i, n]) for i, m in enumerate(METRICS)}
        for n, svc in enumerate(t.services)
    }
    return Picture(firing, metrics)


def step_action(core: BatchCore, action: str, target: str | None, env: int = 0) -> None:
    """Run one action in environment ``env`` (the others wait)."""
    a = core.table.index(action)
    flat = (
        core.st.n * core.n_actions + a - core.n_actions
        if target is None
        else core.topology.index[target] * core.n_actions + a
    )
    chosen = np.full(core.n_envs, core.st.n * core.n_actions + core.table.index("wait") - core.n_actions)
    chosen[env] = flat
    core.step(chosen)


def _flat(core: BatchCore, action: str, target: str) -> int:
    return core.topology.index[target] * core.n_actions + core.table.index(action)


def _settle(core: BatchCore, settle_s: float, env: int) -> None:
    wait_s = float(core.table.duration_s[core.table.index("wait")]) or 60.0
    for _ in range(max(1, math.ceil(settle_s / wait_s))):
        step_action(core, "wait", None, env)


def canary_in_sim(
    core: BatchCore,
    action: str,
    target: str,
    *,
    share: float,
    settle_s: float,
    env: int = 0,
    tuning: Tuning | None = None,
) -> tuple[Judgement, CanaryRun]:
    """Run ``action`` on ``share`` of ``target``'s replicas (at least one), settle, judge it as a canary."""
    before = picture_of(core, env)
    _, part = canary_share(int(core.state.replicas[env, core.topology.index[target]]), share)
    run = canary_step(core, _flat(core, action, target), part, env)
    tuning = canary_tuning(tuning or Tuning(), part)  # a canary takes only its share of the errors away
    _settle(core, settle_s, env)
    t = core.topology
    verdict = judge(
        target=target, scope=callers(t, target), neighbours=neighbours(t, target), before=before,
        after=picture_of(core, env), exposed=exposed(t, before), waited=f"after {settle_s / 60:.0f} min",
        tuning=tuning,
    )  # fmt: skip
    return verdict, run


def verify_in_sim(
    core: BatchCore, action: str, target: str, *, settle_s: float, env: int = 0, tuning: Tuning | None = None
) -> Judgement:
    """Run ``action`` on ``target``, wait ``settle_s`` (whole ``wait`` steps), and judge it."""
    before = picture_of(core, env)
    step_action(core, action, target, env)
    wait_s = float(core.table.duration_s[core.table.index("wait")]) or 60.0
    for _ in range(max(1, math.ceil(settle_s / wait_s))):
        step_action(core, "wait", None, env)
    t = core.topology
    return judge(
        target=target,
        scope=callers(t, target),
        neighbours=neighbours(t, target),
        before=before,
        after=picture_of(core, env),
        exposed=exposed(t, before),
        waited=f"after {settle_s / 60:.0f} min",
        tuning=tuning,
    )
