"""Reference policies: random, oracle (knows the faults), a greedy heuristic, and a noisy human operator.

Each policy looks at one environment of a ``BatchCore`` and returns a ``Choice`` (action id, target
service or None for global actions); ``index_of`` turns a choice into the core's action index.
Only the oracle reads hidden state; the others see what a team sees (alerts, metrics, changes).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple, Protocol

import numpy as np

from sim.actions import true_fix
from sim.core import BatchCore
from sim.errors import PolicyError
from sim.faults import FaultSpec
from sim.observation import ALERTS

RECENT_CHANGE_S = 7200.0


class Choice(NamedTuple):
    """One decision: a catalog action id and its target service (None for wait / escalate)."""

    action: str
    target: str | None


class Policy(Protocol):
    """Anything that picks the next action for one environment of a core."""

    name: str

    def __call__(self, core: BatchCore, env: int) -> Choice:
        """Return the next action for environment ``env``."""
        ...


def index_of(core: BatchCore, choice: Choice) -> int:
    """Return the core action index of a choice (service-major; globals after all services)."""
    a = core.table.index(choice.action)
    if a < 0:
        raise KeyError(choice.action)
    if choice.target is None:
        return core.st.n * core.n_actions + (a - core.n_actions)
    return core.topology.index[choice.target] * core.n_actions + a


def choice_of(core: BatchCore, index: int) -> Choice:
    """Return the choice a core action index stands for."""
    svc, act = core.decode(np.array([index]))
    target = None if svc[0] < 0 else core.topology.services[int(svc[0])]
    return Choice(core.table.ids[int(act[0])], target)


def allowed(core: BatchCore, env: int, choice: Choice) -> bool:
    """Return whether the action mask allows a choice now."""
    try:
        return bool(core.action_masks()[env, index_of(core, choice)])
    except KeyError:
        return False


class RandomPolicy:
    """Uniform over the actions the mask allows."""

    name = "random"

    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, core: BatchCore, env: int) -> Choice:
        """Return a random allowed action."""
        valid = np.flatnonzero(core.action_masks()[env])
        return choice_of(core, int(valid[self.rng.integers(valid.size)]))


def fix_of(core: BatchCore, env: int, fault: FaultSpec) -> str:
    """Return the ground-truth fix of an active fault: an undo only while its change can be undone."""
    return true_fix(core.state, core.topology, env, fault)


def fix_order(faults: Sequence[FaultSpec]) -> list[FaultSpec]:
    """Return active faults in the order the oracle fixes them: the simulator's kind order, surges last.

    A traffic surge's fix only adds capacity, while another fault on the same path makes callers
    retry (up to 2.5x their load): fixing the surge first can take more scale-outs than its rate
    limit allows (5 an hour), and the other fault is never reached. Fixing causes first, then
    capacity, mitigates every such incident (docs/simulator.md, "The oracle as a ceiling").
    """
    return sorted(faults, key=lambda f: f.kind == "traffic_surge")


class OraclePolicy:
    """Knows the active faults and applies the ground-truth fix of the first one; waits when none is left."""

    name = "oracle"

    def __call__(self, core: BatchCore, env: int) -> Choice:
        """Return the ground-truth fix of the first active fault in fix order (escalate when the mask forbids it)."""
        for fault in fix_order(core.active_faults(env)):
            choice = Choice(fix_of(core, env, fault), fault.target)
            if allowed(core, env, choice):
                return choice
            return Choice("escalate", None)
        return Choice("wait", None)


class HeuristicPolicy:
    """Greedy rules on what the team sees: act on the deepest alerting service, cause-specific first."""

    name = "heuristic"

    def __init__(self, max_repeats: int = 2) -> None:
        self.max_repeats = max_repeats
        self.tried: Counter[Choice] = Counter()
        self._env_steps = -1

    def candidates(self, core: BatchCore, env: int) -> list[int]:
        """Return alerting services, those without an alerting callee first, then by error rate."""
        alerting = core.alerts[env].any(axis=0)
        t = core.topology
        order = []
        for n in np.flatnonzero(alerting).tolist():
            callees = t.callees(n)
            downstream_alerting = bool(alerting[callees].any()) if callees.size else False
            order.append((downstream_alerting, -float(core.observed[env, 0, n]), n))
        return [n for _, _, n in sorted(order)]

    def rules(self, core: BatchCore, env: int, n: int) -> list[Choice]:
        """Return the actions the rules suggest for one alerting service, best first."""
        t, s = core.topology, core.state
        name, kind = t.services[n], t.kinds[n]
        fired = {ALERTS[a] for a in np.flatnonzero(core.alerts[env, :, n]).tolist()}
        out: list[Choice] = []
        if "CertificateExpired" in fired:
            out.append(Choice("rotate_certificate", name))
        if "DiskFull" in fired:
            out.append(Choice("clear_disk", name))
        if s.ages[env, 0, n] < RECENT_CHANGE_S:
            out.append(Choice("rollback_deploy", name))
        if s.ages[env, 1, n] < RECENT_CHANGE_S:
            out.append(Choice("revert_config", name))
        if "ServiceDown" in fired:
            out += [Choice("failover_datastore", name)] if kind in ("database", "queue") else []
            out += [Choice("scale_out", name), Choice("restart_service", name)]
        if "Saturated" in fired:
            if kind == "database":
                readers = t.callers(n)
                out += [
                    Choice("warm_cache", t.services[c])
                    for r in readers.tolist()
                    for c in t.callees(r).tolist()
                    if t.kinds[c] == "cache"
                ]
            out.append(Choice("scale_out", name))
        if "HighMemory" in fired:
            out.append(Choice("restart_service", name))
        if "HighCPU" in fired:
            out.append(Choice("drain_node", name))
        if "HighLatency" in fired:
            out += [Choice("increase_connection_pool", name), Choice("drain_node", name)]
        if "HighErrorRate" in fired:
            if kind == "cache":
                out.append(Choice("flush_cache", name))
            out += [Choice("restart_service", name)]
        return out

    def __call__(self, core: BatchCore, env: int) -> Choice:
        """Return the first rule-suggested action not yet tried too often; wait when nothing alerts."""
        if core.steps[env] <= self._env_steps or core.steps[env] == 0:
            self.tried.clear()
        self._env_steps = int(core.steps[env])
        for n in self.candidates(core, env):
            for choice in self.rules(core, env, n):
                if self.tried[choice] < self.max_repeats and allowed(core, env, choice):
                    self.tried[choice] += 1
                    return choice
        return Choice("wait", None)


class OperatorPolicy:
    """A noisy human on call: restarts first, sometimes the symptomatic service, usually finds the cause.

    Step 1 restarts the most visibly broken service (often a caller of the cause, not the cause). Later
    steps follow the runbook-like heuristic, or (more likely as the incident drags on) the fix an
    experienced engineer would find; after ``give_up`` steps the operator escalates.
    """

    name = "operator"

    def __init__(self, seed: int | None = None, *, give_up: int = 8) -> None:
        self.rng = np.random.default_rng(seed)
        self.heuristic = HeuristicPolicy()
        self.oracle = OraclePolicy()
        self.give_up = give_up

    def __call__(self, core: BatchCore, env: int) -> Choice:
        """Return the operator's next action."""
        step = int(core.steps[env])
        if step == 0:
            self.heuristic.tried.clear()
            symptomatic = np.argsort(-core.observed[env, 0] * core.alerts[env].any(axis=0), kind="stable")
            target = core.topology.services[int(symptomatic[0])]
            choice = Choice("restart_service", target)
            if self.rng.random() < 0.6 and allowed(core, env, choice):
                return choice
        if step >= self.give_up:
            return Choice("escalate", None)
        insight = min(0.9, 0.35 + 0.15 * step)
        if self.rng.random() < insight:
            return self.oracle(core, env)
        return self.heuristic(core, env)


POLICIES = ("oracle", "random", "heuristic", "operator")


def make_policy(name: str, seed: int | None = None) -> Policy:
    """Return a reference policy by name (oracle, random, heuristic, operator)."""
    if name == "oracle":
        return OraclePolicy()
    if name == "random":
        return RandomPolicy(seed)
    if name == "heuristic":
        return HeuristicPolicy()
    if name == "operator":
        return OperatorPolicy(seed)
    raise PolicyError(f"unknown policy {name!r}; expected one of {', '.join(POLICIES)}")
