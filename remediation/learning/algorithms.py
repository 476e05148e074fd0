"""Loss functions and update loops: behaviour cloning, discrete CQL, masked PPO, temperature scaling.

One comment per math step. ``logits`` are already masked by the network (denied actions at -1e9), so
every softmax, log-softmax and argmax here only ever spreads mass over allowed actions.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from remediation.learning.buffer import Rollout, Transitions
from remediation.learning.policy import NEG, GraphPolicy


def bc_loss(net: GraphPolicy, data: Transitions) -> torch.Tensor:
    """Behaviour cloning: cross-entropy of the logged action under the masked policy."""
    logits = net(data.obs).logits
    # -log pi(a_logged | s), averaged over steps
    return F.cross_entropy(logits, data.actions)


@dataclass(frozen=True)
class CqlConfig:
    """Discrete conservative Q-learning constants."""

    gamma: float = 0.95
    alpha: float = 1.0
    """Weight of the conservative term."""


def cql_loss(net: GraphPolicy, target: GraphPolicy, data: Transitions, cfg: CqlConfig) -> torch.Tensor:
    """Discrete CQL (Kumar et al. 2020, CQL(H)) on the network's Q head."""
    heads = net(data.obs)
    q_all = heads.q.masked_fill(~data.obs.mask, NEG)
    # Q(s, a) of the logged action
    q_sa = q_all.gather(1, data.actions[:, None]).squeeze(1)
    with torch.no_grad():
        # max over allowed next actions of the frozen target network
        q_next = target(data.next_obs).q.masked_fill(~data.next_obs.mask, NEG).max(1).values
        # Bellman target r + gamma * (1 - done) * max_a' Q_target(s', a')
        y = data.rewards + cfg.gamma * (~data.dones).float() * q_next
    # squared TD error (Huber for robustness to reward outliers in real history)
    td = F.smooth_l1_loss(q_sa, y)
    # conservative term: push down a soft maximum over allowed actions, push up the logged action
    conservative = (torch.logsumexp(q_all, dim=1) - q_sa).mean()
    return td + cfg.alpha * conservative


def soft_update(target: GraphPolicy, net: GraphPolicy) -> None:
    """Copy the online network into the target network."""
    target.load_state_dict(net.state_dict())


def frozen_copy(net: GraphPolicy) -> GraphPolicy:
    """Return a copy of the network with gradients off (a target network)."""
    out = copy.deepcopy(net)
    for p in out.parameters():
        p.requires_grad_(False)
    return out


@dataclass(frozen=True)
class PpoConfig:
    """Masked PPO constants."""

    gamma: float = 0.97
    lam: float = 0.9
    clip: float = 0.2
    value_coef: float = 0.5
    entropy_coef: float = 0.01
    imitation_coef: float = 1.0
    """Weight of the cross-entropy towards the oracle's action in visited states (DAgger-style)."""
    ttm_coef: float = 0.2
    """Weight of the time-to-mitigate regression."""


def gae(rewards: torch.Tensor, values: torch.Tensor, alive: torch.Tensor, done: torch.Tensor,
        gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Return (advantages, returns) over (T, B) arrays of whole episodes (``alive`` marks real steps)."""
    t_len = rewards.shape[0]
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[0])
    for t in reversed(range(t_len)):
        # value of the next state: 0 after the last step of an episode
        next_v = values[t + 1] if t + 1 < t_len else torch.zeros_like(values[t])
        nonterminal = (~done[t]).float() * (alive[t + 1].float() if t + 1 < t_len else 0.0)
        # one-step TD error delta_t = r_t + gamma V(s_{t+1}) - V(s_t)
        delta = rewards[t] + gamma * nonterminal * next_v - values[t]
        # A_t = delta_t + gamma * lambda * A_{t+1}
        last = delta + gamma * lam * nonterminal * last
        adv[t] = last * alive[t].float()
    # critic target R_t = A_t + V(s_t)
    return adv, adv + values


def imitation_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy towards the oracle's action where it is known (label >= 0); 0 when none is."""
    known = labels >= 0
    if not known.any():
        return logits.sum() * 0
    # -log pi(a_oracle | s) over the masked softmax, averaged over labelled states
    return F.cross_entropy(logits[known], labels[known])


def ppo_loss(net: GraphPolicy, data: Rollout, cfg: PpoConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Masked PPO-clip loss plus critic, entropy, oracle imitation and time-to-mitigate terms."""
    heads = net(data.obs)
    logp_all = F.log_softmax(heads.logits, dim=1)
    logp = logp_all.gather(1, data.actions[:, None]).squeeze(1)
    # probability ratio pi_new(a|s) / pi_old(a|s)
    ratio = torch.exp(logp - data.logp)
    # normalised advantages
    adv = (data.advantages - data.advantages.mean()) / (data.advantages.std(correction=0) + 1e-8)
    # clipped surrogate: -min(r A, clip(r, 1 - eps, 1 + eps) A)
    policy = -torch.min(ratio * adv, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * adv).mean()
    # critic regression towards the GAE returns
    value = F.mse_loss(heads.value, data.returns)
    # entropy of the masked distribution (masked actions have p = 0 and contribute 0)
    probs = logp_all.exp()
    entropy = -(probs * logp_all).sum(1).mean()
    # imitation of the oracle in the states the policy itself visits (DAgger)
    imitation = imitation_loss(heads.logits, data.oracle)
    # time-to-mitigate head: Huber on log(1 + seconds) of the action actually taken
    has_ttm = ~torch.isnan(data.ttm_target)
    ttm_pred = heads.ttm.gather(1, data.actions[:, None]).squeeze(1)
    ttm = F.smooth_l1_loss(ttm_pred[has_ttm], data.ttm_target[has_ttm]) if has_ttm.any() else logp.sum() * 0
    loss = (
        policy
        + cfg.value_coef * value
        - cfg.entropy_coef * entropy
        + cfg.imitation_coef * imitation
        + cfg.ttm_coef * ttm
    )
    stats = {
        "policy_loss": float(policy.detach()),
        "value_loss": float(value.detach()),
        "entropy": float(entropy.detach()),
        "imitation_loss": float(imitation.detach()),
        "ttm_loss": float(ttm.detach()),
    }
    return loss, stats


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, steps: int = 200) -> float:
    """Temperature scaling (Guo et al. 2017): the T > 0 minimising held-out NLL of softmax(logits / T)."""
    # optimise log T so T stays positive
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=steps)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        # negative log-likelihood of the labels under the tempered softmax
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def expected_calibration_error(confidence: torch.Tensor, correct: torch.Tensor, bins: int = 10) -> float:
    """ECE: sum over equal-width confidence bins of |accuracy - mean confidence| weighted by bin share."""
    if confidence.numel() == 0:
        return 0.0
    edges = torch.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (confidence > lo) & (confidence <= hi) if lo > 0 else (confidence >= lo) & (confidence <= hi)
        if inside.any():
            # |acc(bin) - conf(bin)| * |bin| / n
            gap = (correct[inside].float().mean() - confidence[inside].mean()).abs()
            total += float(gap) * float(inside.float().mean())
    return total
