"""Containers of training data: immutable NamedTuples of tensors (no behaviour beyond slicing)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from remediation.learning.encoding import GraphBatch, index_batch


class Transitions(NamedTuple):
    """Logged steps (mined history or simulated operators): what was seen, done and what followed."""

    obs: GraphBatch  # the observation before each step
    actions: torch.Tensor  # (S,) int64 flat action index
    rewards: torch.Tensor  # (S,) float32
    next_obs: GraphBatch  # the observation after (any row when done)
    dones: torch.Tensor  # (S,) bool, last step of its trajectory
    traj: torch.Tensor  # (S,) int64 trajectory id, steps of one trajectory in order


class Rollout(NamedTuple):
    """One PPO batch gathered in the simulator by the policy being trained."""

    obs: GraphBatch
    actions: torch.Tensor  # (S,) int64
    logp: torch.Tensor  # (S,) log-probability of the action when it was taken
    advantages: torch.Tensor  # (S,) GAE advantages
    returns: torch.Tensor  # (S,) discounted returns (critic targets)
    oracle: torch.Tensor  # (S,) int64 the oracle's action in that state (-1 unknown)
    ttm_target: torch.Tensor  # (S,) float32 log(1 + seconds to mitigate after the step), NaN unknown


def take_transitions(data: Transitions, rows: torch.Tensor) -> Transitions:
    """Return the rows of a Transitions set (a minibatch)."""
    return Transitions(
        index_batch(data.obs, rows),
        data.actions[rows],
        data.rewards[rows],
        index_batch(data.next_obs, rows),
        data.dones[rows],
        data.traj[rows],
    )


def take_rollout(data: Rollout, rows: torch.Tensor) -> Rollout:
    """Return the rows of a Rollout (a minibatch)."""
    return Rollout(
        index_batch(data.obs, rows),
        data.actions[rows],
        data.logp[rows],
        data.advantages[rows],
        data.returns[rows],
        data.oracle[rows],
        data.ttm_target[rows],
    )


def concat_transitions(parts: list[Transitions], n_actions: int) -> Transitions:
    """Concatenate logged steps from several topologies (graphs padded to the largest)."""
    from remediation.learning.encoding import concat_batches

    n = max(int(p.obs.node_mask.shape[1]) for p in parts)
    actions = []
    for p in parts:
        # a global action's flat index moves with the padding: k * A + g becomes n * A + g
        k = int(p.obs.node_mask.shape[1])
        actions.append(torch.where(p.actions >= k * n_actions, p.actions + (n - k) * n_actions, p.actions))
    return Transitions(
        concat_batches([p.obs for p in parts], n_actions),
        torch.cat(actions),
        torch.cat([p.rewards for p in parts]),
        concat_batches([p.next_obs for p in parts], n_actions),
        torch.cat([p.dones for p in parts]),
        torch.cat([p.traj for p in parts]),
    )


def concat_rollouts(parts: list[Rollout], n_actions: int) -> Rollout:
    """Concatenate rollouts gathered apart on one topology (workers' shares of one iteration's incidents)."""
    from remediation.learning.encoding import concat_batches

    if len({int(p.obs.node_mask.shape[1]) for p in parts}) > 1:
        # flat action indices of global actions depend on the padded size: only one topology's shares concatenate
        raise ValueError("rollouts of one topology expected, got several padded sizes")
    return Rollout(
        concat_batches([p.obs for p in parts], n_actions),
        *(torch.cat([getattr(p, f) for p in parts]) for f in Rollout._fields[1:]),
    )
