"""The catalog as arrays, outcome codes, and when an undo has something to undo.

What each action does to the simulated system is ``sim.handlers`` (compiled, one pass over the
environments). Actions whose id the simulator does not know (a catalog extended by a user) take their
time and cost and change nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from playbooks.catalog import Catalog
from playbooks.models import SERVICE_KINDS, Risk
from sim.dynamics import BatchState
from sim.faults import FaultSpec, fault_kind
from sim.handlers import (  # noqa: F401 (re-exported: outcome codes, handled actions)
    FAILED,
    HANDLED,
    HARMFUL,
    NO_EFFECT,
    RECENT_S,
    SIDE_EFFECT_TTL_S,
    SUCCEEDED,
)
from sim.observation import CHANGE_DECAY_S, FEATURES
from sim.topology import Topology

OUTCOMES = ("no_effect", "succeeded", "failed", "harmful")
RISK_PENALTY = {Risk.LOW: 0.0, Risk.MEDIUM: 0.02, Risk.HIGH: 0.1, Risk.CRITICAL: 0.3}
UNDO_SLOTS = {"rollback_deploy": 0, "revert_config": 1}
"""Actions that undo a change, and the slot of ``BatchState.ages`` holding the change they undo."""
UNDO_FEATURES = {"rollback_deploy": "recent_deploy", "revert_config": "recent_config_change"}
"""The same actions, and the observation feature that says how recent that change is."""
UNDO_FEATURE_MIN = math.exp(-RECENT_S / CHANGE_DECAY_S)
"""The recency feature of a change exactly ``RECENT_S`` old: below it there is nothing left to undo."""


def undoable(state: BatchState, slot: int) -> np.ndarray:
    """Return (B, N) bool: a recent deploy (slot 0) or config change (slot 1) with a version before it."""
    has_prev = state.has_prev_version if slot == 0 else state.has_prev_config
    return (state.ages[:, slot] < RECENT_S) & has_prev


def undo_mask(nodes: np.ndarray, service_actions: Sequence[str]) -> np.ndarray:
    """Return (N, A) bool from an observation's (N, F) features: False where an undo has no change to undo.

    The live twin of ``undoable``: a rollback needs a recent deploy on its target, a config revert a
    recent config change (the timeline's change events give the features), so a card never offers
    one for a service nothing changed on.
    """
    out = np.ones((nodes.shape[0], len(service_actions)), dtype=bool)
    for a, action in enumerate(service_actions):
        if action in UNDO_FEATURES:
            out[:, a] = nodes[:, FEATURES.index(UNDO_FEATURES[action])] > UNDO_FEATURE_MIN
    return out


def true_fix(state: BatchState, topology: Topology, env: int, fault: FaultSpec) -> str:
    """Return the ground-truth fix of an active fault in one environment (``FaultKind.fix_given``)."""
    kind = fault_kind(fault.kind)
    slot = UNDO_SLOTS.get(kind.fix)
    if slot is None:
        return kind.fix
    n = topology.index[fault.target]
    has_prev = state.has_prev_version if slot == 0 else state.has_prev_config
    return kind.fix_given(undoable=bool(state.ages[env, slot, n] < RECENT_S and has_prev[env, n]))


@dataclass(frozen=True, eq=False)
class ActionTable:
    """The catalog as arrays: index order is service actions (sorted ids) then global ones."""

    ids: tuple[str, ...]
    n_service: int  # A: per-service actions
    duration_s: np.ndarray  # (A + G,)
    cost_usd: np.ndarray  # (A + G,)
    risk_penalty: np.ndarray  # (A + G,)
    applies: np.ndarray  # (A, 5) bool, action applies to service kind

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> ActionTable:
        """Build the table from a catalog (its ``ids`` order is the action index order)."""
        ids = catalog.ids
        specs = [catalog.get(a) for a in ids]
        applies = np.array(
            [
                [kind in spec.applies_to for kind in SERVICE_KINDS]
                for spec in specs[: len(catalog.service_actions)]
            ],
            dtype=bool,
        ).reshape(len(catalog.service_actions), len(SERVICE_KINDS))
        return cls(
            ids=ids,
            n_service=len(catalog.service_actions),
            duration_s=np.array([max(spec.duration_s, 1.0) for spec in specs]),
            cost_usd=np.array([spec.cost_usd for spec in specs]),
            risk_penalty=np.array([RISK_PENALTY[spec.risk] for spec in specs]),
            applies=applies,
        )

    def index(self, action_id: str) -> int:
        """Return the index of an action id, or -1 when the catalog lacks it."""
        return self.ids.index(action_id) if action_id in self.ids else -1
