"""Off-policy evaluation on logged history: fitted Q evaluation and weighted importance sampling.

Both estimate the expected return of a candidate policy from trajectories someone else (the
operators) produced; bootstrap over trajectories gives a 95 % confidence interval for each.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from remediation.learning.buffer import Transitions, take_transitions
from remediation.learning.encoding import index_batch
from remediation.learning.policy import NEG, GraphPolicy


@dataclass(frozen=True)
class Estimate:
    """A value estimate with its bootstrap 95 % interval."""

    value: float
    low: float
    high: float


def _bootstrap(per_traj: np.ndarray, rng: np.random.Generator, weights: np.ndarray | None = None,
               rounds: int = 200) -> Estimate:  # fmt: skip
    n = per_traj.size
    w = np.ones(n) if weights is None else weights

    def stat(idx: np.ndarray) -> float:
        return float((w[idx] * per_traj[idx]).sum() / max(w[idx].sum(), 1e-12))

    draws = [stat(rng.integers(0, n, n)) for _ in range(rounds)]
    return Estimate(stat(np.arange(n)), float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5)))


def _policy_probs(net: GraphPolicy, data: Transitions, next_obs: bool = False) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(net(data.next_obs if next_obs else data.obs).logits, dim=1)


def fitted_q_evaluation(candidate: GraphPolicy, data: Transitions, *, gamma: float = 0.95, iterations: int = 10,
                        epochs: int = 3, seed: int = 0) -> Estimate:  # fmt: skip
    """FQE: regress Q(s, a) on r + gamma * E_{a' ~ candidate}[Q(s', a')], then average V(s0) over trajectories."""
    torch.manual_seed(seed)
    q = copy.deepcopy(candidate)
    opt = torch.optim.Adam(q.parameters(), lr=1e-3)
    pi_next = _policy_probs(candidate, data, next_obs=True)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(iterations):
        with torch.no_grad():
            # target y = r + gamma * (1 - done) * sum_a' pi(a'|s') Q_k(s', a')
            q_next = q(data.next_obs).q.masked_fill(~data.next_obs.mask, 0.0)
            y = data.rewards + gamma * (~data.dones).float() * (pi_next * q_next).sum(1)
        for _ in range(epochs):
            for rows in torch.randperm(data.actions.numel(), generator=gen).split(256):
                part = take_transitions(data, rows)
                pred = q(part.obs).q.gather(1, part.actions[:, None]).squeeze(1)
                # squared error towards the frozen targets of this iteration
                loss = F.mse_loss(pred, y[rows])
                opt.zero_grad()
                loss.backward()
                opt.step()
    first = _first_rows(data)
    start = index_batch(data.obs, first)
    with torch.no_grad():
        pi0 = torch.softmax(candidate(start).logits, dim=1)
        # V(s0) = sum_a pi(a|s0) Q(s0, a)
        v0 = (pi0 * q(start).q.masked_fill(~start.mask, 0.0)).sum(1).numpy()
    return _bootstrap(v0, np.random.default_rng(seed))


def _first_rows(data: Transitions) -> torch.Tensor:
    seen: dict[int, int] = {}
    for row, traj in enumerate(data.traj.tolist()):
        seen.setdefault(traj, row)
    return torch.tensor(sorted(seen.values()), dtype=torch.long)


def weighted_importance_sampling(candidate: GraphPolicy, behaviour: GraphPolicy, data: Transitions, *,
                                 gamma: float = 0.95, clip: float = 20.0, seed: int = 0) -> Estimate:  # fmt: skip
    """WIS: per trajectory weight prod_t pi(a_t|s_t) / mu(a_t|s_t) (mu = the operator clone), normalised."""
    pi = _policy_probs(candidate, data).gather(1, data.actions[:, None]).squeeze(1)
    mu = _policy_probs(behaviour, data).gather(1, data.actions[:, None]).squeeze(1).clamp(min=1e-3)
    log_ratio = torch.log(pi.clamp(min=1e-12)) - torch.log(mu)
    trajs = data.traj.numpy()
    ids = np.unique(trajs)
    weights, returns = np.zeros(ids.size), np.zeros(ids.size)
    for i, t in enumerate(ids.tolist()):
        rows = np.flatnonzero(trajs == t)
        # trajectory weight w = exp(sum_t log pi - log mu), clipped against a few huge ratios
        weights[i] = min(float(np.exp(log_ratio[rows].sum().item())), clip)
        # discounted return of the logged trajectory
        returns[i] = float((data.rewards[rows].numpy() * gamma ** np.arange(rows.size)).sum())
    return _bootstrap(returns, np.random.default_rng(seed), weights=weights)


__all__ = ["NEG", "Estimate", "fitted_q_evaluation", "weighted_importance_sampling"]
