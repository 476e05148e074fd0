"""Baselines behind the same ``Policy`` protocol: random, runbook, operator behaviour cloning, oracle."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from playbooks.catalog import Catalog, builtin_catalog
from remediation.learning.policy import GraphPolicy
from remediation.learning.ranking import LearnedPolicy, static_mask
from remediation.learning.train import Memory
from remediation.policies.base import RankedAction
from remediation.policies.runbook import RunbookPolicy
from sim.core import BatchCore
from sim.observation import Observation
from sim.policies import fix_of, fix_order

__all__ = ["OperatorBCPolicy", "OraclePolicy", "RandomPolicy", "RunbookPolicy"]


class RandomPolicy:
    """Uniformly random order over the allowed actions; confidence 1 / allowed."""

    name = "random"
    version = "random"

    def __init__(self, seed: int = 0, catalog: Catalog | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.catalog = catalog or builtin_catalog()
        self.mask: npt.NDArray[np.int8] | None = None

    def rank(self, observation: Observation, k: int) -> list[RankedAction]:
        """Return ``k`` distinct allowed actions in random order."""
        mask = static_mask(observation, self.catalog)
        if self.mask is not None:
            mask = mask & self.mask.astype(np.int8)
        allowed = np.flatnonzero(mask)
        picks = self.rng.permutation(allowed)[:k]
        a, n = len(self.catalog.service_actions), len(observation.services)
        out = []
        for index in picks.tolist():
            if index >= n * a:
                action, target = self.catalog.global_actions[index - n * a], None
            else:
                action, target = self.catalog.service_actions[index % a], observation.services[index // a]
            out.append(RankedAction(action=action, target=target, confidence=1.0 / allowed.size,
                                    risk=self.catalog.get(action).risk.value, reason="random choice"))  # fmt: skip
        return out


def OperatorBCPolicy(net: GraphPolicy, memory: Memory | None = None) -> LearnedPolicy:
    """Return the behaviour clone of the logged operators as a ranking policy (no temperature fitted)."""
    return LearnedPolicy(net, memory=memory, name="operator_bc", version="operator_bc", explain=False)


class OraclePolicy:
    """Knows the simulator's hidden faults (bind it to a core first); ranks the true fixes first."""

    name = "oracle"
    version = "oracle"

    def __init__(self, catalog: Catalog | None = None) -> None:
        self.catalog = catalog or builtin_catalog()
        self.core: BatchCore | None = None
        self.env = 0

    def bind(self, core: BatchCore, env: int) -> OraclePolicy:
        """Point the oracle at one environment of a simulator core."""
        self.core, self.env = core, env
        return self

    def rank(self, observation: Observation, k: int) -> list[RankedAction]:
        """Return the ground-truth fixes of the active faults in ``sim.policies.fix_order``, then wait or escalate."""
        if self.core is None:
            raise ValueError("the oracle reads hidden simulator state: call bind(core, env) first")
        core = self.core
        mask = core.action_masks()[self.env]
        out: list[RankedAction] = []
        for fault in fix_order(core.active_faults(self.env)):
            fix = fix_of(core, self.env, fault)
            index = core.topology.index[fault.target] * core.n_actions + core.table.index(fix)
            if mask[index] and all((r.action, r.target) != (fix, fault.target) for r in out):
                out.append(RankedAction(action=fix, target=fault.target, confidence=1.0,
                                        risk=self.catalog.get(fix).risk.value, reason=f"ground truth: {fault.kind}"))  # fmt: skip
            elif not mask[index]:
                break
        if not core.active_faults(self.env):
            out.append(RankedAction(action="wait", target=None, confidence=1.0, reason="no fault left"))
        out.append(RankedAction(action="escalate", target=None, confidence=1.0, reason="fallback"))
        return out[:k]
