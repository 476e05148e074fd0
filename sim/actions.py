"""What each catalog action does to the simulated system, vectorised over the environments taking it.

Every handler gets the environments ``b`` and target services ``n`` (equal-length index arrays), changes
the state, and returns an outcome per environment. Actions whose id the simulator does not know (a
catalog extended by a user) take their time and cost and change nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from playbooks.catalog import Catalog
from playbooks.models import SERVICE_KINDS, Risk
from sim.dynamics import BatchState, Statics
from sim.faults import FAULT_INDEX, FaultSpec, fault_kind
from sim.observation import CHANGE_DECAY_S, FEATURES
from sim.topology import Topology

NO_EFFECT, SUCCEEDED, FAILED, HARMFUL = 0, 1, 2, 3
OUTCOMES = ("no_effect", "succeeded", "failed", "harmful")
RECENT_S = 7200.0  # a deploy or config change this recent can be rolled back / reverted
RISK_PENALTY = {Risk.LOW: 0.0, Risk.MEDIUM: 0.02, Risk.HIGH: 0.1, Risk.CRITICAL: 0.3}
SIDE_EFFECT_TTL_S = {"restart": 900.0, "failover": 120.0, "drain": 300.0, "flush": 900.0}
UNDO_SLOTS = {"rollback_deploy": 0, "revert_config": 1}
"""Actions that undo a change, and the slot of ``BatchState.ages`` holding the change they undo."""
UNDO_FEATURES = {"rollback_deploy": "recent_deploy", "revert_config": "recent_config_change"}
"""The same actions, and the observation feature that says how recent that change is."""
UNDO_FEATURE_MIN = math.exp(-RECENT_S / CHANGE_DECAY_S)
"""The recency feature of a change exactly ``RECENT_S`` old: below it there is nothing left to undo."""

_K = FAULT_INDEX


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


def touching(t: Topology, n: np.ndarray) -> np.ndarray:
    """Return (len(n), E) bool: edge e starts or ends at service n[i] (built per call, never (N, E))."""
    return (t.src[None, :] == n[:, None]) | (t.dst[None, :] == n[:, None])


class Effects:
    """Applies actions to a BatchState; ``changed`` collects environments whose faults changed."""

    def __init__(
        self, st: Statics, s: BatchState, util: np.ndarray, memory: np.ndarray, elapsed_s: np.ndarray
    ) -> None:
        self.st, self.s, self.util, self.memory, self.elapsed_s = st, s, util, memory, elapsed_s
        self.changed = np.zeros(s.replicas.shape[0], dtype=bool)

    def clear(self, b: np.ndarray, n: np.ndarray, kind: str) -> np.ndarray:
        """Clear one fault kind at (b, n); return where it was active."""
        k = _K[kind]
        had = self.s.sev[b, k, n] > 0
        self.s.sev[b, k, n] = 0.0
        self.s.ttl[b, k, n] = np.inf
        self.changed[b[had]] = True
        return had

    def inject(self, b: np.ndarray, n: np.ndarray, kind: str, ttl_s: float) -> None:
        """Start a fault caused by an action, clearing by itself after ``ttl_s``."""
        if b.size:
            self.s.sev[b, _K[kind], n] = 1.0
            self.s.ttl[b, _K[kind], n] = self.elapsed_s[b] + ttl_s
            self.changed[b] = True

    def healthy_at(self, b: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Return where the target has no fault of its own."""
        return ~(self.s.sev[b, :, n] > 0).any(axis=1) & ~(
            self.s.partition[b] * touching(self.st.topology, n)
        ).any(axis=1)

    def harm_datastore(self, b: np.ndarray, n: np.ndarray, ttl_s: float) -> np.ndarray:
        """A healthy stateful target loses its primary (a cache comes back cold); return where it happened."""
        hit = self.st.topology.stateful[n] & self.healthy_at(b, n)
        cold_cache = hit & (self.st.kind_id[n] == SERVICE_KINDS.index("cache")) & self.st.has_backend[n]
        self.inject(b[cold_cache], n[cold_cache], "cache_stampede", ttl_s)
        outage = hit & ~cold_cache
        self.inject(b[outage], n[outage], "datastore_outage", ttl_s)
        return hit

    # ---- handlers: each returns an outcome code per environment ----

    def restart_service(self, b: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Rolling restart: ends crash loops, resets leaked memory (for a while); hurts a healthy datastore."""
        harm = self.harm_datastore(b, n, SIDE_EFFECT_TTL_S["restart"])
        fixed = self.clear(b, n, "crash_loop")
        leaking = self.s.sev[b, _K["memory_leak"], n] > 0
        relieved = leaking & (self.memory[b, n] > 0.75)
        self.s.leak[b[leaking], n[leaking]] = 0.0
        return np.where(harm, HARMFUL, np.where(fixed | relieved, SUCCEEDED, NO_EFFECT))

    def _undo(
        self,
        b: np.ndarray,
        n: np.ndarray,
        slot: int,
        has_prev: np.ndarray,
        version: np.ndarray,
        ends: tuple[str, ...],
    ) -> np.ndarray:
        """Go back one deploy (slot 0) or config change (slot 1) if recent; clear the faults it brought."""
        s = self.s
        recent = (s.ages[b, slot, n] < RECENT_S) & has_prev[b, n]
        b, n = b[recent], n[recent]
        version[b, n] -= 1
        has_prev[b, n] = False
        s.ages[b, slot, n] = 0.0  # going back is itself a deploy / config change
        s.recent[b, slot, n] = 1.0
        fixed = np.zeros(b.shape, dtype=bool)
        for kind in ends:
            fixed |= self.clear(b, n, kind)
        out = np.full(recent.shape, NO_EFFECT)
        out[recent] = np.where(fixed, SUCCEEDED, NO_EFFECT)
        return out

    def rollback_deploy(self, b: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Go back one version when there was a recent deploy; ends faults the new version brought."""
        out = self._undo(
            b, n, 0, self.s.has_prev_version, self.s.version, ("bad_deploy", "crash_loop", "memory_leak")
        )
        undone = out == SUCCEEDED
        self.s.leak[b[undone], n[undone]] = 0.0
        return out

    def revert_config(self, b: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Undo a recent config change; ends a config error."""
        return self._undo(b, n, 1, self.s.has_prev_config, self.s.config_version, ("config_error",))

    def scale_out(self, b: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Add two replicas (back to the normal count from zero)."""
        s = self.s
        was_zero = s.replicas[b, n] < 1
        s.replicas[b, n] = np.where(was_zero, self.st.base_replicas[n], s.replicas[b, n] + 2)
        fixed = self.clear(b, n, "scale_to_zero")
        return np.where(fixed | (self.util[b, n] > 0.95), SUCCEEDED, NO_EFFECT)

    def scale_in(self, b: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Remove one replica; harmful when the rest cannot carry the load."""
        s = self.s
        before = s.replicas[b, n]
        after = np.maximum(before - 1, 1)
        s.replicas[b, n] = after
        overload = self.util[b, n] * before / after > 1.0
        return np.where(overload & (after < before), HARMFUL, NO_EFFECT)

    def failover_datastore(self, b: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Promote the standby; ends an outage, but costs a short outage on a healthy datastore."""
        harm = self.healthy_at(b, n)
        fixed = self.clear(b, n, "datastore_outage")
        self.inject(b[harm], n[harm], "datastore_outage", SIDE_EFFECT_TTL_S["failover"])
        return np.where(fixed, SUCCEEDED, np.where(harm, HARMFUL, NO_EFFECT))

    def clear_disk(self, b: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Free disk space."""
        return np.where(self.clear(b, n, "disk_full"), SUCCEEDED, NO_EFFECT)

    def rotate_certificate(self, b: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Issue a fresh certificate."""
        return np.where(self.clear(b, n, "certificate_expiry"), SUCCEEDED, NO_EFFECT)

    def drain_node(self, b: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Reschedule the pods elsewhere: away from a noisy neighbour or a broken network path."""
        harm = self.harm_datastore(b, n, SIDE_EFFECT_TTL_S["drain"])
        fixed = self.clear(b, n, "noisy_neighbor")
        cut = self.s.partition[b] * touching(self.st.topology, n)  # (b, E)
        healed = cut.any(axis=1)
        self.s.partition[b] -= cut
        self.changed[b[healed]] = True
        return np.where(harm, HARMFUL, np.where(fixed | healed, SUCCEEDED, NO_EFFECT))

    def flush_cache(self, b: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Empty the cache: ends corruption; a healthy cache goes cold and stampedes its database."""
        fixed = self.clear(b, n, "cache_corruption")
        cold = ~fixed & self.healthy_at(b, n) & self.st.has_backend[n]
        self.inject(b[cold], n[cold], "cache_stampede", SIDE_EFFECT_TTL_S["flush"])
        return np.where(fixed, SUCCEEDED, np.where(cold, HARMFUL, NO_EFFECT))

    def warm_cache(self, b: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Pre-load hot keys: ends a stampede."""
        return np.where(self.clear(b, n, "cache_stampede"), SUCCEEDED, NO_EFFECT)

    def enable_rate_limiting(self, b: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Shed load beyond 90 % of capacity: mitigates overload, never removes its cause."""
        self.s.rate_limited[b, n] = True
        return np.where(self.util[b, n] > 1.0, SUCCEEDED, NO_EFFECT)

    def disable_rate_limiting(self, b: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Lift the rate limit."""
        self.s.rate_limited[b, n] = False
        return np.full(b.shape, NO_EFFECT)

    def increase_connection_pool(self, b: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Raise the pool size: ends pool exhaustion."""
        return np.where(self.clear(b, n, "connection_pool_exhaustion"), SUCCEEDED, NO_EFFECT)

    def escalate(self, b: np.ndarray, n: np.ndarray) -> np.ndarray:
        """A human expert removes one cause (the first active fault) by hand."""
        s = self.s
        flat = (s.sev[b] > 0).reshape(b.size, -1)
        has = flat.any(axis=1)
        k, m = np.divmod(flat.argmax(axis=1), self.st.n)
        hb, hk, hm = b[has], k[has], m[has]
        s.sev[hb, hk, hm] = 0.0
        s.ttl[hb, hk, hm] = np.inf
        s.replicas[hb, hm] = np.maximum(s.replicas[hb, hm], self.st.base_replicas[hm])
        s.leak[hb, hm] = 0.0
        cut = ~has & s.partition[b].any(axis=1)
        s.partition[b[cut]] = 0.0
        self.changed[b[has | cut]] = True
        return np.where(has | cut, SUCCEEDED, NO_EFFECT)

    def handler(self, action_id: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
        """Return the handler of an action id, or None for ``wait`` and actions the simulator ignores."""
        found = getattr(self, action_id, None) if action_id in HANDLED else None
        return found if callable(found) else None


HANDLED = frozenset(
    {
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
    }
)
