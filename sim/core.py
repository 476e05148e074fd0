"""The batched core: B incidents on one topology, stepped together with numpy arrays.

Action index layout (``n_actions = A`` per-service catalog actions, ``G`` global ones)::

    index = service * A + action        for index < N * A   (service-major)
    index = N * A + g                   for the global actions (wait, escalate, ...)

One step: the chosen action takes its catalog duration; the system keeps its pre-action behaviour for
that long (impact accrues, leaks grow, transient faults count down), then the action takes effect and
the system is evaluated and observed. ``IncidentEnv`` is this core with B = 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from playbooks.catalog import Catalog, builtin_catalog
from sim import kernels
from sim.actions import OUTCOMES, UNDO_SLOTS, ActionTable, undoable
from sim.dynamics import RETRY_GAIN, TIMEOUT_MS, BatchState, Statics, evaluate, propagated, statics
from sim.errors import ActionError
from sim.faults import FAULT_IDS, FAULT_INDEX, FaultSpec, Scenario, Scenarios, draw_scenarios, drawn_of
from sim.handlers import Acted, apply_actions, handler_codes
from sim.kernels import M_P99, M_UTIL
from sim.observation import (
    ALERTS,
    GLOBALS,
    N_EDGE_FEATURES,
    N_FEATURES,
    RECENCY_DECAY,
    WORKLOAD_ROW,
    encode_features,
    recency,
)
from sim.sampling import Drawn, reset_rows, start_scenarios
from sim.stepping import begin_step, bind, settle_step
from sim.topology import Topology

SURGE = FAULT_INDEX["traffic_surge"]
NOISE_TABLE_SEED = 20260302
# metric alerts: (row of the transformed metric block, threshold, evaluations it must hold)
_ALERT_THRESHOLDS = np.array([0.05, 2.5, 0.9, 0.88, 0.95, 0.5])[None, :, None]
DISK, CERT = FAULT_INDEX["disk_full"], FAULT_INDEX["certificate_expiry"]
_BOUND = (
    "_begin",
    "_apply",
    "_own",
    "_observe_all",
    "_settle",
    "_start_scenarios",
    "_reset_rows",
)  # not pickled
_START_KINDS = (FAULT_INDEX["network_partition"], FAULT_INDEX["scale_to_zero"], FAULT_INDEX["memory_leak"])


@dataclass(frozen=True)
class SimConfig:
    """Knobs of the simulation and the reward."""

    max_steps: int = 30
    """Steps before an unresolved incident is truncated."""
    noise: float = 0.05
    """Relative standard deviation of metric noise."""
    cost_weight: float = 0.02
    """Reward per US dollar spent (actions, extra replicas)."""
    replica_cost_usd_per_min: float = 0.05
    """What one replica above the normal count costs per minute."""
    invalid_penalty: float = 0.1
    """Reward lost for choosing a masked action (it does nothing)."""
    herring_ttl_s: float = 900.0
    """How long a red herring's passing symptom lasts."""


class StepResult(NamedTuple):
    """What one batched step returns (arrays over the B environments)."""

    reward: np.ndarray  # (B,) float
    terminated: np.ndarray  # (B,) bool: healthy again
    truncated: np.ndarray  # (B,) bool: step limit reached first
    outcome: np.ndarray  # (B,) int, index into sim.actions.OUTCOMES
    impact: np.ndarray  # (B,) user impact accrued this step (user-minutes)
    cost_usd: np.ndarray  # (B,)
    duration_s: np.ndarray  # (B,)


class BatchCore:
    """B environments on one topology; every array is (B, ...) and every step is vectorised."""

    def __init__(
        self,
        topology: Topology,
        n_envs: int,
        *,
        seed: int | np.random.Generator | None = None,
        catalog: Catalog | None = None,
        config: SimConfig | None = None,
    ) -> None:
        self.topology = topology
        self.st: Statics = statics(topology)
        self.n_envs = n_envs
        self.config = config or SimConfig()
        self.catalog = catalog or builtin_catalog()
        self.table = ActionTable.from_catalog(self.catalog)
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        n, a = self.st.n, self.table.n_service
        self.n_actions = a
        self.n_global = len(self.table.ids) - a
        self.action_space_size = n * a + self.n_global
        self.state = BatchState(self.st, n_envs)
        self.steps = np.zeros(n_envs, dtype=np.int64)
        self.elapsed_s = np.zeros(n_envs)
        self.impact_total = np.zeros(n_envs)
        self.cost_total = np.zeros(n_envs)
        self.impact_rate = np.zeros(n_envs)
        self.slo_ok = np.ones(n_envs, dtype=bool)
        self.next_expiry = np.full(n_envs, np.inf)  # elapsed time at which a transient fault clears next
        self._dirty = np.zeros(n_envs, dtype=bool)  # faults changed; derived arrays need a refresh
        self._due = np.zeros(n_envs, dtype=bool)  # a transient fault's deadline passed
        self._decay = np.ascontiguousarray(RECENCY_DECAY.reshape(-1))
        self._template = vars(BatchState(self.st, 1))  # one healthy environment, copied in on reset
        self._needs_reset = np.zeros(n_envs, dtype=bool)
        self.scenarios = Scenarios(topology, n_envs)
        self.true = np.zeros((n_envs, 6, n))  # true metrics, METRICS order (sim.dynamics.M_*)
        self.observed = np.zeros((n_envs, 6, n))  # noisy metrics as the team sees them
        self.features = np.zeros((n_envs, N_FEATURES, n), dtype=np.float32)  # (B, F, N)
        self.features[:, -self.st.static.shape[0] :] = self.st.static
        self.globals = np.zeros((n_envs, len(GLOBALS)), dtype=np.float32)
        self.edge_features = np.zeros((n_envs, topology.n_edges, N_EDGE_FEATURES), dtype=np.float32)
        self.traffic_ratio = np.ones((n_envs, n))  # observed request rate over normal (noisy)
        self.alerts = np.zeros((n_envs, len(ALERTS), n), dtype=bool)
        self._static_mask = np.ascontiguousarray(self.table.applies[:, self.st.kind_id].T).astype(np.int8)
        self._col = {aid: i for i, aid in enumerate(self.table.ids[:a])}
        self._wait = self.table.index("wait")
        self._fe_kind = np.flatnonzero(self.st.is_frontend)
        self._alert_thresholds = np.tile(_ALERT_THRESHOLDS[0], (1, n))  # (6, N)
        self._alert_thresholds[M_P99] = 2.5 * self.st.healthy_p99
        self._static_flat = np.ones(self.action_space_size, dtype=bool)
        self._static_flat[: n * a] = self._static_mask.reshape(-1).astype(bool)
        dynamic = ("scale_in", "enable_rate_limiting", "disable_rate_limiting")
        self._dynamic = np.array([aid in dynamic for aid in self.table.ids])
        self._dyn_cols = np.array([self._col.get(aid, -1) for aid in dynamic], dtype=np.int64)
        self._svc, self._act = np.empty(n_envs, dtype=np.int64), np.empty(n_envs, dtype=np.int64)
        self._valid, self._live = np.empty(n_envs, dtype=bool), np.empty(n_envs, dtype=bool)
        # metric noise: a fixed table drawn once, a window of it per evaluation chosen by a generator
        # seeded from ``rng`` (cheap per step; the same seed gives the same windows)
        size = n_envs * max(6 * n, topology.n_edges + n)  # the largest window: metrics, or edges + services
        table = np.random.default_rng(NOISE_TABLE_SEED).standard_normal(max(1 << 16, 4 * size))
        self._inv_base_load = np.where(self.st.base_load > 0, 1.0 / np.maximum(self.st.base_load, 1e-12), 0.0)
        self._noise = 1.0 + self.config.noise * np.maximum(table, -1.0 / self.config.noise)  # factors >= 0
        self._lcg = np.zeros(1, dtype=np.uint64)  # the state of the LCG that picks noise windows
        self.reseed(self.rng)
        self._kernel_args()

    def _kernel_args(self) -> None:
        """Tuples of the arrays the compiled step and resets take (all updated in place: built once)."""
        t, st, s, cfg = self.topology, self.st, self.state, self.config
        acted = Acted(  # the handlers mark the environments to refresh
            s.sev, s.ttl, s.partition, s.leak, s.replicas, s.rate_limited, s.has_prev_version, s.has_prev_config,
            s.version, s.config_version, s.ages, s.recent, self.true, self.elapsed_s, self._dirty,
            st.base_replicas, t.stateful, st.kind_id, st.has_backend, t.src, t.dst,
        )  # fmt: skip
        self._acted = tuple(acted)  # a plain tuple: numba unboxes it faster; the kernels rebuild Acted
        self._codes = handler_codes(self.table.ids)
        self._choose = (
            st.n, self.n_actions, self._wait, self._static_flat, self._dynamic, self._dyn_cols, self.table.duration_s,
        )  # fmt: skip
        self._clock = (
            self._decay, cfg.herring_ttl_s, s.leak_rate, s.herring, self.next_expiry, self.impact_rate,
        )  # fmt: skip
        self._step_state = (
            s.replicas,
            s.rate_limited,
            s.leak,
            s.ages,
            s.recent,
            self.elapsed_s,
            s.sev,
            s.ttl,
        )
        self._scratch = (self._svc, self._act, self._valid, self._live, self._due, self._dirty)
        self._obs_state = (
            s.seen, s.fail_prev, s.present, s.held, s.fault_alerts, s.recent, s.partition, s.replicas, s.load_f,
            self.elapsed_s, self._lcg,
        )  # fmt: skip
        self._obs_consts = (
            st.frontends, st.breach_scale, st.frontend_share, self._alert_thresholds, self._fe_kind, t.src, t.dst,
            st.base_replicas, self._inv_base_load, RETRY_GAIN, WORKLOAD_ROW, self._noise,
        )  # fmt: skip
        self._obs_out = (
            self.true, self.impact_rate, self.slo_ok, self.features, self.edge_features, self.traffic_ratio,
        )  # fmt: skip
        self._costs = (
            self.table.cost_usd, self.table.risk_penalty, st.total_replicas, cfg.replica_cost_usd_per_min / 60.0,
            cfg.cost_weight, cfg.invalid_penalty, cfg.max_steps, SURGE,
        )  # fmt: skip
        self._episode = (
            s.replicas, s.sev, self.true, s.cause, self.slo_ok, self.steps, self.impact_total, self.cost_total,
            self._needs_reset,
        )  # fmt: skip
        self._start_sv = (
            s.sev, s.ttl, s.partition, s.replicas, s.leak, s.load_scale, s.ages, s.has_prev_version, s.version,
            s.has_prev_config, s.config_version, s.herring, s.present, s.exporter,
        )  # fmt: skip
        groups: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
        for name, value in self._template.items():
            arrays, rows = groups.setdefault(value.dtype.str, ([], []))
            view = getattr(s, name).reshape(self.n_envs, -1)
            assert np.shares_memory(view, getattr(s, name))  # a view: BatchState arrays are contiguous
            arrays.append(view)
            rows.append(np.ascontiguousarray(value.reshape(-1)))
        self._healthy = [(tuple(arrays), tuple(rows)) for arrays, rows in groups.values()]
        self._bind_kernels()

    def _bind_kernels(self) -> None:
        """The step's kernels bound to the types of their arguments (``sim.stepping.bind``), once per core."""
        b, n, st, s, t = self.n_envs, self.st.n, self.st, self.state, self.topology
        vec, ints, flags = np.empty(b), np.empty(b, dtype=np.int64), np.empty(b, dtype=bool)
        self._prop_scratch = (np.empty((2, b, n)), np.empty((2, b, n)))  # propagation's own and spread rows
        self._reset_rows = [bind(reset_rows, ints, arrays, rows) for arrays, rows in self._healthy]
        drawn = Drawn(1, n, 1).arrays()
        self._start_scenarios = bind(
            start_scenarios, ints, drawn, self._start_sv, t.src, t.dst, st.base_mem, _START_KINDS
        )
        self._begin = bind(
            begin_step, ints, self._choose, self._clock, self._step_state, self._scratch, vec, vec, ints
        )
        self._apply = bind(apply_actions, self._codes, ints, ints, flags, flags, self._acted, ints)
        self._own = bind(
            kernels.own_behaviour, st.base_mem, st.base_lat, s.replicas, s.up_f, s.cap_f, s.load_f, s.fail_prev,
            s.rate_limited, s.ok_f, s.lat_f, s.cpu_f, s.leak, s.herring, RETRY_GAIN, TIMEOUT_MS, self.true,
            np.empty((2, b, n)),
        )  # fmt: skip
        self._observe_all = bind(
            kernels.observe_all, np.empty((2, b, n)), self._obs_state, self._obs_consts, self._obs_out,
            self.observed, self.alerts, self.globals,
        )  # fmt: skip
        result = (vec, vec, vec, flags, flags, ints)
        self._settle = bind(settle_step, self._costs, self._episode, True, ints, flags, vec, result)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the bound kernels (compiled entry points): ``__setstate__`` binds them again."""
        return {k: v for k, v in vars(self).items() if k not in _BOUND}

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)
        self._kernel_args()  # views of the state (the healthy-row copy) do not survive pickling as views

    def reseed(self, rng: np.random.Generator) -> None:
        """Draw all later randomness (scenarios, metric noise) from ``rng``."""
        self.rng = rng
        self._lcg[0] = int(rng.integers(0, 2**63))

    # ---- episodes ----

    def reset(
        self,
        envs: np.ndarray | Sequence[int] | None = None,
        scenarios: Sequence[Scenario] | None = None,
        faults: Sequence[FaultSpec] | None = None,
    ) -> None:
        """Start new incidents in some environments (all by default), drawn at random unless given."""
        idx = np.arange(self.n_envs) if envs is None else np.asarray(envs, dtype=np.int64)
        self._start(idx, scenarios, faults)
        self._refresh_dirty()
        self._needs_reset[idx] = False
        self._observe(slice(None) if idx.size == self.n_envs else idx)

    def _start(
        self,
        idx: np.ndarray,
        scenarios: Sequence[Scenario] | None = None,
        faults: Sequence[FaultSpec] | None = None,
    ) -> None:
        """Set the state of some environments to the start of a new incident (no evaluation yet)."""
        t = self.topology
        if scenarios is None:
            drawn = draw_scenarios(t, self.rng, idx.size, faults=faults)
        elif len(scenarios) == idx.size:
            drawn = drawn_of(t, scenarios)
        else:
            raise ValueError(f"{len(scenarios)} scenarios for {idx.size} environments")
        s = self.state
        idx = np.array(idx, dtype=np.int64)  # a copy: contiguous and writeable (bound kernels)
        for copy_rows, (arrays, rows) in zip(
            self._reset_rows, self._healthy, strict=True
        ):  # one call per dtype
            copy_rows(idx, arrays, rows)  # the healthy row into each environment
        self.steps[idx] = 0
        self.elapsed_s[idx] = 0.0
        self.impact_total[idx] = 0.0
        self.cost_total[idx] = 0.0
        self._start_scenarios(
            idx, drawn.arrays(), self._start_sv, t.src, t.dst, self.st.base_mem, _START_KINDS
        )
        self.scenarios.set(idx.tolist(), drawn, scenarios)
        s.recent[idx] = recency(s.ages[idx])
        self._dirty[idx] = True
        s.held[idx] = True  # the incident opens with the alerts whose condition holds: it held before

    # ---- stepping ----

    def decode(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Split action indices into (service index or -1, action id index into ``table.ids``)."""
        n, a = self.st.n, self.n_actions
        svc, act = np.divmod(actions, a)
        glob = svc >= n
        if np.count_nonzero(glob):
            act[glob] = a + actions[glob] - n * a
            svc[glob] = -1
        return svc, act

    def action_masks(self) -> np.ndarray:
        """Return (B, N * A + G) int8 masks, 1 = the action applies to that service now."""
        s = self.state
        out = np.ones((self.n_envs, self.action_space_size), dtype=np.int8)
        mask = out[:, : self.st.n * self.n_actions].reshape(self.n_envs, self.st.n, self.n_actions)
        mask[:] = self._static_mask
        col = self._col
        if "scale_in" in col:
            mask[:, :, col["scale_in"]] &= s.replicas > 1
        if "enable_rate_limiting" in col:
            mask[:, :, col["enable_rate_limiting"]] &= ~s.rate_limited
        if "disable_rate_limiting" in col:
            mask[:, :, col["disable_rate_limiting"]] &= s.rate_limited
        for action in UNDO_SLOTS.keys() & col.keys():  # nothing to roll back or revert: not offered
            mask[:, :, col[action]] &= undoable(s, UNDO_SLOTS[action])
        return out

    def step(self, actions: np.ndarray | Sequence[int], *, autoreset: bool = False) -> StepResult:
        """Advance every environment by one action each; see the module docstring for the timing.

        With ``autoreset`` an environment that ended at the previous step starts a new random incident
        instead (Gymnasium's next-step autoreset): its action is ignored, its reward is 0 and the
        observation is the new incident's first.
        """
        b = self.n_envs
        acts = np.array(actions, dtype=np.int64).reshape(b)  # a copy: contiguous, writeable (bound kernels)
        dt, impact, outcome = np.empty(b), np.empty(b), np.empty(b, dtype=np.int64)
        n_live = self._begin(acts, self._choose, self._clock, self._step_state, self._scratch, dt, impact, outcome)  # fmt: skip
        if n_live < 0:
            raise ActionError(
                f"action indices must be in 0..{self.action_space_size - 1}, got {acts.tolist()}"
            )
        if n_live:
            self._apply(self._codes, self._svc, self._act, self._valid, self._live, self._acted, outcome)
        fresh = self._needs_reset
        if autoreset and np.count_nonzero(fresh):
            self._start(np.flatnonzero(fresh))
        self._refresh_dirty()
        self._observe(slice(None))
        reward, cost = np.empty(b), np.empty(b)
        terminated, truncated = np.empty(b, bool), np.empty(b, bool)
        result = (reward, impact, cost, terminated, truncated, outcome)
        self._settle(self._costs, self._episode, autoreset, self._act, self._valid, dt, result)
        return StepResult(reward, terminated, truncated, outcome, impact, cost, dt)

    def _refresh_dirty(self) -> None:
        """Rebuild the derived arrays of environments whose faults changed this step (one batched call)."""
        if np.count_nonzero(self._dirty):
            b = np.flatnonzero(self._dirty)
            self.next_expiry[b] = self.state.ttl[b].min(axis=(1, 2))
            self.state.refresh(self.st, b)
            self._dirty[:] = False

    def _noise_window(self, shape: tuple[int, int, int]) -> np.ndarray:
        size = shape[0] * shape[1] * shape[2]
        start = kernels.noise_start(self._lcg, self._noise.size, size)  # the same LCG as the compiled step
        return self._noise[start : start + size].reshape(shape)

    def _observe(self, envs: np.ndarray | slice) -> None:
        """Evaluate some environments and rebuild what their teams see: noisy metrics, alerts, features."""
        st = self.st
        if isinstance(envs, slice):  # every environment: the compiled step's observation
            # fresh arrays each step: callers may keep the previous step's (torch.from_numpy shares memory)
            self.observed = np.empty((self.n_envs, 6, st.n))
            self.alerts = np.empty((self.n_envs, len(ALERTS), st.n), dtype=bool)
            self.globals = np.empty((self.n_envs, len(GLOBALS)), dtype=np.float32)
            prop = propagated(st, self.state, self.true, self._own, self._prop_scratch)
            out = (self._obs_state, self._obs_consts, self._obs_out, self.observed, self.alerts, self.globals)
            self._observe_all(prop, *out)
            return
        part = self.state.take(envs)  # copies: written back below
        batch = part.replicas.shape[0]
        true = np.empty((batch, 6, st.n))
        impact, _, slo_ok = evaluate(st, part, true, fail=part.fail_prev)
        vals = np.empty((batch, 6, st.n))
        alerts = np.empty((batch, len(ALERTS), st.n), dtype=bool)
        globs = np.empty((batch, len(GLOBALS)), dtype=np.float32)
        kernels.observe_alerts(
            true, self._noise_window(true.shape), self._alert_thresholds, part.present, part.held,
            part.fault_alerts, vals, alerts,
        )  # fmt: skip
        self.state.fail_prev[envs] = part.fail_prev
        self.state.held[envs] = part.held
        self.true[envs] = true
        feats = encode_features(vals, part.present, alerts, part.recent, st.static)
        edges = np.empty((batch, self.topology.n_edges, N_EDGE_FEATURES), dtype=np.float32)
        traffic = np.empty((batch, st.n))
        # a call over an edge fails when the edge is cut or the callee fails it; request rates count retries
        noise = self._noise_window((batch, 1, self.topology.n_edges + st.n))[:, 0]
        kernels.observe_links(
            part.partition, part.fail_prev, self.topology.src, self.topology.dst, part.present, part.replicas,
            st.base_replicas, part.load_f, self._inv_base_load, RETRY_GAIN, noise, WORKLOAD_ROW, edges, traffic,
            feats,
        )  # fmt: skip
        self.edge_features[envs] = edges
        self.traffic_ratio[envs] = traffic
        self.features[envs] = feats
        kernels.encode_globals_into(self.elapsed_s[envs], alerts, feats, self._fe_kind, globs)
        self.globals[envs] = globs
        self.alerts[envs] = alerts
        self.observed[envs] = vals
        self.impact_rate[envs] = impact
        self.slo_ok[envs] = slo_ok

    # ---- ground truth ----

    def healthy(self) -> np.ndarray:
        """Return (B,) bool: no cause left, no absorbed surge still overloading, frontends within SLO."""
        s = self.state
        ok = ~s.cause
        surge = s.sev[:, SURGE]
        if np.count_nonzero(surge):
            ok &= ~((surge > 0) & (self.true[:, M_UTIL] > 0.95)).any(axis=1)
        return ok & self.slo_ok

    def active_faults(self, env: int) -> list[FaultSpec]:
        """Return the faults still active in one environment (what the oracle knows), in kind order."""
        s, t = self.state, self.topology
        out: list[FaultSpec] = []
        for k, n in zip(*np.nonzero(s.sev[env] > 0), strict=True):
            if k == SURGE and self.true[env, M_UTIL, n] <= 0.95:
                continue
            ttl = float(s.ttl[env, k, n] - self.elapsed_s[env])
            out.append(
                FaultSpec(
                    FAULT_IDS[k], t.services[n], None, float(s.sev[env, k, n]), ttl if ttl < 1e18 else None
                )
            )
        for e in np.flatnonzero(s.partition[env] > 0).tolist():
            out.append(FaultSpec("network_partition", t.services[t.dst[e]], t.services[t.src[e]]))
        return out

    def outcome_name(self, code: int) -> str:
        """Return the outcome name of a code."""
        return OUTCOMES[code]
