"""Observation encoding shared by live incidents, mined history and the simulator.

Every path ends in ``sim.observation.encode_features`` (the one feature builder), so the network sees
the same features in the same order whether an observation comes from a live timeline
(``sim.observation.build_observation``), from a mined trajectory step (``observation_of_step``) or from
a batch of simulated incidents (``batch_from_core``). ``GraphBatch`` packs graphs of different sizes
into padded tensors plus a flat edge list, which is what the graph network reads.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import torch

from playbooks.vocabulary import Vocabulary, load_vocabulary
from sim.core import BatchCore
from sim.observation import (
    ALERTS,
    EDGE_METRIC,
    METRICS,
    N_EDGE_FEATURES,
    WORKLOAD_METRICS,
    Observation,
    build_observation,
)
from sim.topology import Topology

# Alert names seen in real history mapped onto the simulator's alert vocabulary (an unknown name is
# dropped by build_observation, so a mapping here is the difference between a feature and nothing).
ALERT_ALIASES: dict[str, str] = {
    "CacheUnavailable": "ServiceDown",
    "ConnectionPoolExhausted": "HighLatency",
    "DiskAlmostFull": "DiskFull",
    "HighMemoryUsage": "HighMemory",
    "TLSHandshakeFailures": "CertificateExpired",
    "UpstreamErrors": "HighErrorRate",
    "PacketLoss": "HighLatency",
    "PodCrashLooping": "ServiceDown",
}


@functools.lru_cache(maxsize=4096)
def history_signal(name: str) -> str | None:
    """Return the policy signal a mined alert name carries, or None (the alert is not a feature).

    The simulator's own names and ALERT_ALIASES first, then the built-in alert vocabulary
    (`playbooks/catalog/alert-vocabulary.yaml`, by name only: a mined step keeps no labels), so real
    alert names in imported history (``KubePodCrashLooping``) train the policy as they rank it live.
    """
    alias = ALERT_ALIASES.get(name, name)
    if alias in ALERTS:
        return alias
    return _vocabulary().signal_of(name, {})


@functools.cache
def _vocabulary() -> Vocabulary:
    return load_vocabulary(ALERTS)


class GraphBatch(NamedTuple):
    """B observations as padded tensors (N = the largest graph of the batch).

    ``mask`` covers the flat action space ``N * A + G`` (service-major, then global actions), the same
    layout as ``sim.core`` and ``remediation.guardrails.mask``; padded services are never allowed.
    """

    x: torch.Tensor  # (B, N, F) float32 node features, FEATURES order
    node_mask: torch.Tensor  # (B, N) bool
    src: torch.Tensor  # (E,) int64 caller, flat index b * N + i
    dst: torch.Tensor  # (E,) int64 callee, flat index b * N + j
    glob: torch.Tensor  # (B, G) float32 global features
    mask: torch.Tensor  # (B, N * A + G_actions) bool, True = allowed
    edge_x: torch.Tensor | None = None  # (E, EF) float32 per-edge features, aligned with src/dst


def _edge_x(batch: GraphBatch) -> torch.Tensor:
    """Return the batch's edge features, zeros (unknown) where it has none."""
    if batch.edge_x is not None:
        return batch.edge_x
    return torch.zeros((batch.src.shape[0], N_EDGE_FEATURES), dtype=torch.float32)


def observation_from_core(core: BatchCore, env: int) -> Observation:
    """Return the Observation of one simulated incident (what ``build_observation`` would give live)."""
    t = core.topology
    return Observation(
        services=t.services,
        nodes=np.ascontiguousarray(core.features[env].T),
        edges=np.stack([t.src, t.dst], axis=1),
        globals=core.globals[env].copy(),
        edge_values=core.edge_features[env].copy(),
    )


def batch_from_core(core: BatchCore, extra_mask: npt.NDArray[np.int8] | None = None) -> GraphBatch:
    """Encode every environment of a batched core (one topology) without copying per environment.

    Args:
        core: the simulator core.
        extra_mask: optional int8 mask (guardrails) combined with the simulator's mask: (N * A + G,) for
            every environment, or (B, N * A + G) one per environment.

    Returns:
        The GraphBatch of all ``core.n_envs`` incidents.
    """
    b, n = core.n_envs, core.st.n
    t = core.topology
    offsets = (np.arange(b) * n)[:, None]
    mask = core.action_masks().astype(bool)
    if extra_mask is not None:
        extra = extra_mask.astype(bool)
        mask &= extra if extra.ndim == 2 else extra[None, :]
    return GraphBatch(
        x=torch.from_numpy(np.ascontiguousarray(core.features.transpose(0, 2, 1))),
        node_mask=torch.ones((b, n), dtype=torch.bool),
        src=torch.from_numpy((t.src[None, :] + offsets).reshape(-1).astype(np.int64)),
        dst=torch.from_numpy((t.dst[None, :] + offsets).reshape(-1).astype(np.int64)),
        glob=torch.from_numpy(np.ascontiguousarray(core.globals, dtype=np.float32)),
        mask=torch.from_numpy(mask),
        edge_x=torch.from_numpy(core.edge_features.reshape(-1, N_EDGE_FEATURES).copy()),
    )


def batch_from_observations(
    observations: Sequence[Observation],
    masks: Sequence[npt.NDArray[Any]],
    n_actions: int,
    n_global: int,
) -> GraphBatch:
    """Pad observations of any sizes into one GraphBatch.

    Args:
        observations: the observations (any topology each).
        masks: per observation an (n_i * A + G,) mask, 1 = allowed.
        n_actions: A, per-service actions.
        n_global: G, global actions.

    Returns:
        The padded GraphBatch.
    """
    b = len(observations)
    n = max(len(o.services) for o in observations)
    f = observations[0].nodes.shape[1]
    x = np.zeros((b, n, f), dtype=np.float32)
    node_mask = np.zeros((b, n), dtype=bool)
    glob = np.stack([np.asarray(o.globals, dtype=np.float32) for o in observations])
    mask = np.zeros((b, n * n_actions + n_global), dtype=bool)
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []
    edge_x: list[np.ndarray] = []
    for i, (obs, m) in enumerate(zip(observations, masks, strict=True)):
        k = len(obs.services)
        x[i, :k] = obs.nodes
        node_mask[i, :k] = True
        m = np.asarray(m).astype(bool)
        mask[i, : k * n_actions] = m[: k * n_actions]
        mask[i, n * n_actions :] = m[k * n_actions :]
        if len(obs.edges):
            src.append(obs.edges[:, 0] + i * n)
            dst.append(obs.edges[:, 1] + i * n)
            values = obs.edge_values
            edge_x.append(np.zeros((len(obs.edges), N_EDGE_FEATURES)) if values is None else values)
    cat = (lambda parts: np.concatenate(parts).astype(np.int64)) if src else (lambda _: np.zeros(0, np.int64))
    ex = np.concatenate(edge_x).astype(np.float32) if edge_x else np.zeros((0, N_EDGE_FEATURES), np.float32)
    return GraphBatch(
        x=torch.from_numpy(x),
        node_mask=torch.from_numpy(node_mask),
        src=torch.from_numpy(cat(src)),
        dst=torch.from_numpy(cat(dst)),
        glob=torch.from_numpy(glob),
        mask=torch.from_numpy(mask),
        edge_x=torch.from_numpy(ex),
    )


def index_batch(batch: GraphBatch, rows: torch.Tensor) -> GraphBatch:
    """Return the sub-batch of some rows (edges re-offset), for minibatches of one padded size."""
    b, n = batch.node_mask.shape
    keep = torch.zeros(b, dtype=torch.bool)
    keep[rows] = True
    new_pos = torch.full((b,), -1, dtype=torch.long)
    new_pos[rows] = torch.arange(rows.numel())
    g = batch.src // n
    edge_keep = keep[g]
    base = new_pos[g[edge_keep]] * n
    return GraphBatch(
        x=batch.x[rows],
        node_mask=batch.node_mask[rows],
        src=base + batch.src[edge_keep] % n,
        dst=base + batch.dst[edge_keep] % n,
        glob=batch.glob[rows],
        mask=batch.mask[rows],
        edge_x=_edge_x(batch)[edge_keep],
    )


def concat_batches(batches: Sequence[GraphBatch], n_actions: int) -> GraphBatch:
    """Concatenate GraphBatches of possibly different padded sizes into one (padding to the largest)."""
    n = max(gb.node_mask.shape[1] for gb in batches)
    xs, nms, srcs, dsts, globs, masks, edge_xs = [], [], [], [], [], [], []
    row = 0
    for gb in batches:
        b, k = gb.node_mask.shape
        pad = n - k
        xs.append(torch.nn.functional.pad(gb.x, (0, 0, 0, pad)))
        nms.append(torch.nn.functional.pad(gb.node_mask, (0, pad)))
        g = gb.src // k
        srcs.append((g + row) * n + gb.src % k)
        dsts.append((g + row) * n + gb.dst % k)
        globs.append(gb.glob)
        edge_xs.append(_edge_x(gb))
        svc = gb.mask[:, : k * n_actions]
        tail = gb.mask[:, k * n_actions :]
        masks.append(torch.cat([svc, torch.zeros((b, pad * n_actions), dtype=torch.bool), tail], dim=1))
        row += b
    return GraphBatch(
        torch.cat(xs),
        torch.cat(nms),
        torch.cat(srcs),
        torch.cat(dsts),
        torch.cat(globs),
        torch.cat(masks),
        torch.cat(edge_xs),
    )


def observation_of_step(
    *,
    topology: Topology,
    alerts: Sequence[tuple[str, str]],
    metrics: Sequence[tuple[str, str, float]],
    actions: Sequence[tuple[str, float]],
    now_s: float,
    opened_s: float,
) -> Observation:
    """Return the observation of one mined trajectory step (``incidents_db`` dataset layout).

    Args:
        topology: the service graph the incident ran on.
        alerts: (service, alert name) pairs firing before the action (aliases mapped, see ALERT_ALIASES).
        metrics: (service, metric name, value) latest values; unknown metric names are dropped
            (``error_rate_to:<callee>`` names are the per-edge error rates).
        actions: (target, unix seconds) of earlier actions in the incident.
        now_s: the step's time (unix seconds).
        opened_s: when the incident opened (unix seconds).

    Returns:
        The observation, built by ``sim.observation.build_observation``.
    """
    rows: dict[str, dict[str, float]] = {}
    for service, name, value in metrics:
        if name in METRICS or name in WORKLOAD_METRICS or name.startswith(EDGE_METRIC):
            rows.setdefault(service, {})[name] = value
    fired = [
        {"name": signal, "service": service} for service, name in alerts if (signal := history_signal(name))
    ]
    return build_observation(
        topology=topology,
        metrics=rows,
        alerts=fired,
        actions=[{"target": t, "at": datetime.fromtimestamp(at, tz=UTC)} for t, at in actions],
        now=datetime.fromtimestamp(now_s, tz=UTC),
        opened_at=datetime.fromtimestamp(opened_s, tz=UTC),
    )
