"""`IncidentEnv`: one incident as an exact Gymnasium 1.x environment, on the batched core with B = 1.

Spaces (S = ``max_services``, default the first topology's size; E = ``max_edges``):

* action: ``Discrete(S * A + G)``; ``index = service * A + action`` (A per-service catalog actions in
  sorted id order), then the G global actions (``escalate``, ``wait``). Without padding (S = N) this is
  exactly ``Discrete(n_services * n_actions + k)``. ``action_masks()`` gives int8, 1 = allowed; padded
  services are never allowed. A masked action does nothing and costs ``SimConfig.invalid_penalty``.
* observation: ``Dict`` with ``nodes`` (S, F) float32 per-service features (``sim.observation.FEATURES``),
  ``node_mask`` (S,) int8, ``edges`` (E, 2) int64 caller -> callee indices, ``edge_mask`` (E,) int8, and
  ``globals`` (G,) float32. Rows beyond the topology are zero and masked, so a graph network can read
  any topology up to S services; ``reset(options={"topology": ...})`` switches topology between episodes.

Reward per step: minus user impact (user-minutes of failed or slow requests at the entry points)
minus ``cost_weight`` x dollars spent minus the action's risk penalty. Terminated when healthy again,
truncated after ``SimConfig.max_steps`` steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from playbooks.catalog import Catalog, builtin_catalog
from sim.core import BatchCore, SimConfig
from sim.errors import ActionError, TopologyError
from sim.faults import Scenario, sample_scenario
from sim.observation import EDGE_FEATURES, FEATURES, GLOBALS
from sim.resolve import resolve_topology
from sim.topology import Topology

ObsType = dict[str, np.ndarray]


class IncidentEnv(gym.Env[ObsType, np.int64]):
    """A microservice incident: find and fix the faults while users feel the impact."""

    metadata: dict[str, Any] = {"render_modes": ["ansi"]}

    def __init__(
        self,
        topology: str | Path | Topology = "online-boutique",
        *,
        max_services: int | None = None,
        max_edges: int | None = None,
        config: SimConfig | None = None,
        catalog: Catalog | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.topology = resolve_topology(topology)
        self.config = config or SimConfig()
        self.catalog = catalog or builtin_catalog()
        self.render_mode = render_mode
        self.max_services = max_services or self.topology.n_services
        self.max_edges = max_edges or max(self.topology.n_edges, 1)
        self.core = self._make_core(self.topology)
        a, g = self.core.n_actions, self.core.n_global
        self.n_actions = a
        s, e = self.max_services, self.max_edges
        self.n_choices = s * a + g
        self.action_space = spaces.Discrete(self.n_choices)
        self.observation_space = spaces.Dict(  # type: ignore[assignment]
            {
                "nodes": spaces.Box(0.0, 1.0, shape=(s, len(FEATURES)), dtype=np.float32),
                "node_mask": spaces.Box(0, 1, shape=(s,), dtype=np.int8),
                "edges": spaces.Box(0, max(s - 1, 0), shape=(e, 2), dtype=np.int64),
                "edge_mask": spaces.Box(0, 1, shape=(e,), dtype=np.int8),
                "edge_features": spaces.Box(0.0, 1.0, shape=(e, len(EDGE_FEATURES)), dtype=np.float32),
                "globals": spaces.Box(0.0, 1.0, shape=(len(GLOBALS),), dtype=np.float32),
            }
        )
        self._graph_arrays()
        self._last_outcome = "none"

    # ---- setup ----

    def _make_core(self, topology: Topology) -> BatchCore:
        if topology.n_services > self.max_services or topology.n_edges > self.max_edges:
            raise TopologyError(
                f"topology {topology.name!r} has {topology.n_services} services and {topology.n_edges} edges; "
                f"this environment holds at most {self.max_services} and {self.max_edges} "
                "(create it with larger max_services / max_edges)"
            )
        return BatchCore(topology, 1, config=self.config, catalog=self.catalog)

    def _graph_arrays(self) -> None:
        t = self.topology
        self._node_mask = np.zeros(self.max_services, dtype=np.int8)
        self._node_mask[: t.n_services] = 1
        self._edges = np.zeros((self.max_edges, 2), dtype=np.int64)
        self._edges[: t.n_edges, 0] = t.src
        self._edges[: t.n_edges, 1] = t.dst
        self._edge_mask = np.zeros(self.max_edges, dtype=np.int8)
        self._edge_mask[: t.n_edges] = 1
        for arr in (self._node_mask, self._edges, self._edge_mask):
            arr.flags.writeable = False
        self._padded = t.n_services != self.max_services

    def _obs(self) -> ObsType:
        if self._padded:
            nodes = np.zeros((self.max_services, len(FEATURES)), dtype=np.float32)
            nodes[: self.topology.n_services] = self.core.features[0].T
        else:
            nodes = np.ascontiguousarray(self.core.features[0].T)
        if self.topology.n_edges == self.max_edges:
            edge_features = self.core.edge_features[0].copy()
        else:
            edge_features = np.zeros((self.max_edges, len(EDGE_FEATURES)), dtype=np.float32)
            edge_features[: self.topology.n_edges] = self.core.edge_features[0]
        return {
            "nodes": nodes,
            "node_mask": self._node_mask.copy(),
            "edges": self._edges.copy(),
            "edge_mask": self._edge_mask.copy(),
            "edge_features": edge_features,
            "globals": self.core.globals[0].copy(),
        }

    def _info(self) -> dict[str, Any]:
        return {
            "elapsed_s": float(self.core.elapsed_s[0]),
            "impact": float(self.core.impact_total[0]),
            "cost_usd": float(self.core.cost_total[0]),
            "outcome": self._last_outcome,
        }

    # ---- the Gymnasium API ----

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsType, dict[str, Any]]:
        """Start a new incident; ``options``: ``topology`` (name, file or Topology), ``faults`` or ``scenario``."""
        super().reset(seed=seed)
        options = options or {}
        if "topology" in options and options["topology"] is not None:
            topology = resolve_topology(options["topology"])
            if topology is not self.topology:
                self.core = self._make_core(topology)
                self.topology = topology
                self._graph_arrays()
        self.core.reseed(self.np_random)
        scenario, faults = options.get("scenario"), options.get("faults")
        if isinstance(scenario, Scenario):
            self.core.reset(scenarios=[scenario])
        elif faults is None:  # drawn by the core from the same generator: what sample_scenario draws
            self.core.reset()
        else:
            if isinstance(faults, Mapping) or not isinstance(faults, list | tuple):
                faults = [faults]
            self.core.reset(scenarios=[sample_scenario(self.topology, self.np_random, faults=faults)])
        self._last_outcome = "none"
        return self._obs(), self._info()

    def step(self, action: Any) -> tuple[ObsType, SupportsFloat, bool, bool, dict[str, Any]]:
        """Take one action (an index into the action space); return the Gymnasium five-tuple."""
        index = int(action)
        if not 0 <= index < self.n_choices:
            raise ActionError(f"action must be in 0..{self.n_choices - 1}, got {action!r}")
        core_index, padded = self._to_core(index)
        result = self.core.step(np.array([core_index]))
        reward = float(result.reward[0])
        if padded:
            reward -= self.config.invalid_penalty
        self._last_outcome = "failed" if padded else self.core.outcome_name(int(result.outcome[0]))
        return self._obs(), reward, bool(result.terminated[0]), bool(result.truncated[0]), self._info()

    def _to_core(self, index: int) -> tuple[int, bool]:
        """Map an env action index to the core's (the core has no padding); padded targets become wait."""
        if not self._padded:
            return index, False
        a, n = self.n_actions, self.topology.n_services
        service, act = divmod(index, a)
        if index >= self.max_services * a:
            return n * a + (index - self.max_services * a), False
        if service >= n:
            return n * a + self.core.table.index("wait") - a, True
        return service * a + act, False

    def action_masks(self) -> np.ndarray:
        """Return the int8 mask over the action space, 1 = allowed now."""
        core = self.core.action_masks()[0]
        if not self._padded:
            return core
        a, n = self.n_actions, self.topology.n_services
        out = np.zeros(self.n_choices, dtype=np.int8)
        out[: n * a] = core[: n * a]
        out[self.max_services * a :] = core[n * a :]
        return out

    def action_index(self, action: str, target: str | None = None) -> int:
        """Return the index of an action id on a target service (None for global actions)."""
        a = self.core.table.index(action)
        if a < 0:
            raise ActionError(f"unknown action {action!r}; known: {', '.join(self.core.table.ids)}")
        if (target is None) != (a >= self.n_actions):
            raise ActionError(f"action {action} {'needs' if target is None else 'takes no'} target service")
        if target is None:
            return self.max_services * self.n_actions + (a - self.n_actions)
        return self.topology.position(target) * self.n_actions + a

    def render(self) -> str | None:
        """Return a text summary of the firing alerts (render mode ``ansi``)."""
        if self.render_mode != "ansi":
            return None
        from sim.observation import ALERTS

        core, t = self.core, self.topology
        lines = [f"t={core.elapsed_s[0]:.0f}s impact={core.impact_total[0]:.3f} last={self._last_outcome}"]
        for a, n in zip(*np.nonzero(core.alerts[0]), strict=True):
            lines.append(f"  FIRING {ALERTS[a]} on {t.services[n]}")
        return "\n".join(lines)
