"""Mined history (``remediate.trajectories/v1`` datasets) as encoded Transitions for offline training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from incidents_db.dataset import load_dataset
from incidents_db.db import open_store
from incidents_db.importer import import_lines
from incidents_db.mining import mine
from playbooks.catalog import Catalog
from remediation.learning.buffer import Transitions
from remediation.learning.encoding import batch_from_observations, observation_of_step
from remediation.policies.observe import topology_with
from sim.core import BatchCore
from sim.topology import Topology


def mine_history_file(path: Path, work_dir: Path) -> Path:
    """Import a ``remediate.incident/v1`` file into a scratch SQLite store and mine it; return the .npz."""
    url = f"sqlite:///{work_dir / 'history.sqlite'}"
    engine = open_store(url)
    try:
        with open(path, "rb") as lines:
            import_lines(engine=engine, lines=lines)
        summary = mine(engine=engine, out_dir=work_dir / "trajectories", full=True)
    finally:
        engine.dispose()
    return Path(summary.out)


def mine_store(url: str, work_dir: Path) -> Path:
    """Mine every resolved incident of the store at ``url`` into ``work_dir``; return the .npz."""
    engine = open_store(url)
    try:
        summary = mine(engine=engine, out_dir=work_dir / "trajectories", full=True)
    finally:
        engine.dispose()
    return Path(summary.out)


MINED_TRAJ = 10_000_000
"""Trajectory ids of mined history start here (simulated operators' ids stay below)."""


def load_mined(
    path: Path, base: Topology, catalog: Catalog
) -> tuple[Transitions, list[tuple[int, str, str]]]:
    """Encode a mined dataset on ``base`` (services it lacks join as isolated nodes).

    Returns:
        Transitions (steps with an unmapped action or an unknown target are dropped) and, per resolved
        trajectory, (trajectory id, incident id, what fixed it) for the similar-incident memory.
    """
    d = load_dataset(path)
    services = [str(s) for s in d["services"]]
    topology = topology_with(base, services)
    alerts_vocab = [str(a) for a in d["alert_names"]]
    metric_vocab = [str(m) for m in d["metric_names"]]
    actions_vocab = [str(a) for a in d["catalog_actions"]]
    a_count, g_count = len(catalog.service_actions), len(catalog.global_actions)
    mask = BatchCore(topology, 1, seed=0, catalog=catalog).action_masks()[0]
    obs, next_obs, acts, rews, dones, trajs = [], [], [], [], [], []
    fixes: list[tuple[int, str, str]] = []
    off = d["traj_step_offsets"]
    for t in range(len(off) - 1):
        steps = list(range(int(off[t]), int(off[t + 1])))
        seen: list[tuple[str, float]] = []
        encoded = []
        for j in steps:
            al = [(services[int(d["alert_service"][m])], alerts_vocab[int(d["alert_name"][m])])
                  for m in range(int(d["step_alert_offsets"][j]), int(d["step_alert_offsets"][j + 1]))]  # fmt: skip
            me = [(services[int(d["metric_service"][m])], metric_vocab[int(d["metric_name"][m])],
                   float(d["metric_value"][m]))
                  for m in range(int(d["step_metric_offsets"][j]), int(d["step_metric_offsets"][j + 1]))]  # fmt: skip
            encoded.append(observation_of_step(topology=topology, alerts=al, metrics=me, actions=list(seen),
                                               now_s=float(d["step_time"][j]),
                                               opened_s=float(d["traj_opened_at"][t])))  # fmt: skip
            target = int(d["step_target"][j])
            if target >= 0:
                seen.append((services[target], float(d["step_time"][j])))
        for i, j in enumerate(steps):
            a = int(d["step_action"][j])
            target = int(d["step_target"][j])
            if a < 0:
                continue
            name = actions_vocab[a]
            if name in catalog.global_actions:
                index = topology.n_services * a_count + catalog.global_actions.index(name)
            elif target >= 0 and name in catalog.service_actions:
                index = topology.index[services[target]] * a_count + catalog.service_actions.index(name)
            else:
                continue
            obs.append(encoded[i])
            next_obs.append(encoded[min(i + 1, len(steps) - 1)])
            acts.append(index)
            rews.append(float(d["step_reward"][j]))
            dones.append(bool(d["step_done"][j]))
            trajs.append(t)
            if bool(d["step_done"][j]):
                fix = f"{name} {services[target]}" if target >= 0 else name
                fixes.append((t + MINED_TRAJ, str(d["traj_incident"][t]), fix))
    if not obs:
        raise ValueError(f"{path} holds no step with a catalog action on a known service")
    masks = [mask] * len(obs)
    allowed = np.ones_like(mask)  # the logged action was taken, so it counts as allowed in its state
    masks = [np.maximum(mask, (np.arange(mask.size) == a).astype(mask.dtype)) for a in acts] or [allowed]
    return (
        Transitions(
            obs=batch_from_observations(obs, masks, a_count, g_count),
            actions=torch.tensor(acts, dtype=torch.long),
            rewards=torch.tensor(rews, dtype=torch.float32),
            next_obs=batch_from_observations(next_obs, [mask] * len(obs), a_count, g_count),
            dones=torch.tensor(dones, dtype=torch.bool),
            traj=torch.tensor(trajs, dtype=torch.long) + MINED_TRAJ,
        ),
        fixes,
    )
