"""Simulator data: PPO rollouts with oracle labels, and logged operator history, on the batched core."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from remediation.guardrails.decide import Switches
from remediation.guardrails.models import RbacConfig
from remediation.learning.buffer import Rollout, Transitions
from remediation.learning.encoding import GraphBatch, batch_from_core, concat_batches, index_batch
from remediation.learning.guard import NO_SWITCHES, EpisodeGuard
from remediation.learning.policy import GraphPolicy
from sim.core import BatchCore, SimConfig
from sim.generator import generate_topology
from sim.policies import Choice, OperatorPolicy, OraclePolicy, index_of
from sim.resolve import resolve_topology
from sim.topology import Topology

TRAIN_SEED_LIMIT = 100_000
"""Generated topologies with seed below this are training topologies; evaluation uses seeds above it."""
EPISODE_STEPS = 10
"""Actions an incident gets before it counts as not mitigated (the issue's success criterion)."""
TRUNCATION_PENALTY = 2.0
"""Reward lost when an incident is still open after EPISODE_STEPS actions."""


def training_topology(rng: np.random.Generator, *, min_services: int = 6, max_services: int = 40) -> Topology:
    """Draw a training topology: a generated graph of random size (seed below TRAIN_SEED_LIMIT)."""
    size = int(rng.integers(min_services, max_services + 1))
    seed = int(rng.integers(0, TRAIN_SEED_LIMIT))
    return generate_topology(size, seed=seed, name=f"train-{size}-s{seed}")


def held_out_topologies() -> list[Topology]:
    """Return the topologies benchmarks evaluate on: a built-in never trained on plus unseen generated ones."""
    return [
        resolve_topology("hotel-reservation"),
        generate_topology(30, seed=TRAIN_SEED_LIMIT + 7, name="heldout-30"),
        generate_topology(60, seed=TRAIN_SEED_LIMIT + 11, name="heldout-60"),
    ]


def oracle_index(core: BatchCore, env: int, oracle: OraclePolicy) -> int:
    """Return the oracle's action index for one environment."""
    return index_of(core, oracle(core, env))


def collect_rollout(
    net: GraphPolicy,
    topology: Topology,
    *,
    n_envs: int,
    rng: np.random.Generator,
    generator: torch.Generator,
    gamma: float,
    lam: float,
    greedy: bool = False,
    escalate_after: int = 0,
    guardrails: RbacConfig | None = None,
    switches: Switches = NO_SWITCHES,
) -> tuple[Rollout, dict[str, float]]:
    """Run ``n_envs`` whole incidents with the policy; label each state with the oracle's action.

    The policy samples its actions, or takes its argmax when ``greedy`` (the states a deployed policy meets).
    With ``escalate_after`` = k > 0, a state still open after k of the policy's own actions is labelled
    ``escalate`` instead: the fallback a person expects once automation keeps missing.
    With ``guardrails`` (an RBAC config), each state is also masked with the guardrails' plan-stage
    decisions for that incident (``EpisodeGuard``: the episode's runs so far, its clock, ``switches``),
    so the policy never takes an action the bot would refuse; None masks with the simulator alone.
    """
    from remediation.learning.algorithms import gae

    core = BatchCore(topology, n_envs, seed=rng, config=SimConfig(max_steps=EPISODE_STEPS))
    core.reset()
    oracle = OraclePolicy()
    alive = np.ones(n_envs, dtype=bool)
    obs: list[GraphBatch] = []
    acts, logps, vals, rews, dones, alives, labels, elapsed = [], [], [], [], [], [], [], []
    resolved = np.zeros(n_envs, dtype=bool)
    end_time = np.full(n_envs, np.nan)
    escalate = index_of(core, Choice("escalate", None))
    guard = None if guardrails is None else EpisodeGuard(topology, core.catalog, guardrails, n_envs, switches)
    for step in range(EPISODE_STEPS):
        batch = batch_from_core(core, None if guard is None else guard.masks(core.elapsed_s, alive))
        with torch.no_grad():
            heads = net(batch)
        probs = torch.softmax(heads.logits, dim=1)
        if greedy:
            action = probs.argmax(dim=1)
        else:
            action = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        logp = torch.log(probs.gather(1, action[:, None]).squeeze(1).clamp(min=1e-12))
        if 0 < escalate_after <= step:
            label = np.where(alive, escalate, -1)
        else:
            label = np.array([oracle_index(core, b, oracle) if alive[b] else -1 for b in range(n_envs)])
        if guard is not None:
            # an oracle fix the guardrails refuse is no label: the bot could not run it either
            allowed = batch.mask.numpy()[np.arange(n_envs), np.maximum(label, 0)]
            label = np.where(allowed, label, -1)
        before = core.elapsed_s.copy()
        if guard is not None:
            guard.record(
                action.numpy(), alive & batch.mask.gather(1, action[:, None]).squeeze(1).numpy(), before
            )
        result = core.step(action.numpy())
        done = result.terminated | result.truncated
        reward = result.reward - TRUNCATION_PENALTY * (result.truncated & ~result.terminated)
        newly = alive & result.terminated
        resolved |= newly
        end_time[newly] = core.elapsed_s[newly]
        obs.append(batch)
        acts.append(action)
        logps.append(logp)
        vals.append(heads.value)
        rews.append(torch.from_numpy(reward.astype(np.float32)))
        dones.append(torch.from_numpy(done.copy()))
        alives.append(torch.from_numpy(alive.copy()))
        labels.append(torch.from_numpy(label))
        elapsed.append(before)
        alive = alive & ~done
        if not alive.any():
            break
    t_len = len(obs)
    alive_t = torch.stack(alives)
    adv, ret = gae(torch.stack(rews), torch.stack(vals), alive_t, torch.stack(dones), gamma, lam)
    # time to mitigate after each step: known where the incident was mitigated within the episode
    ttm = torch.from_numpy(
        np.stack([np.log1p(np.maximum(end_time - e, 0.0)) for e in elapsed]).astype(np.float32)
    )
    keep = alive_t.reshape(-1)
    rows = torch.nonzero(keep).squeeze(1)

    flat_obs = index_batch(concat_batches(obs, net.config.n_actions), rows)
    rollout = Rollout(
        obs=flat_obs,
        actions=torch.stack(acts).reshape(-1)[rows],
        logp=torch.stack(logps).reshape(-1)[rows],
        advantages=adv.reshape(-1)[rows],
        returns=ret.reshape(-1)[rows],
        oracle=torch.stack(labels).reshape(-1)[rows].long(),
        ttm_target=ttm.reshape(-1)[rows],
    )
    stats = {"success_rate": float(resolved.mean()), "steps": float(rows.numel()), "t_len": float(t_len)}
    return rollout, stats


def collect_logged(
    topology: Topology,
    *,
    n_envs: int,
    seed: int,
    n_actions: int,
    behaviour: Callable[[int], OperatorPolicy] | None = None,
) -> tuple[Transitions, list[tuple[str, str]]]:
    """Simulate on-call operators (``sim.policies.OperatorPolicy``) and log what they saw and did.

    Returns:
        The transitions, and per resolved incident (description, the action that fixed it) for the
        similar-incident memory.
    """
    rng = np.random.default_rng(seed)
    core = BatchCore(topology, n_envs, seed=rng, config=SimConfig(max_steps=EPISODE_STEPS))
    core.reset()
    make = behaviour or (lambda s: OperatorPolicy(s))
    operators = [make(seed * 1000 + b) for b in range(n_envs)]
    alive = np.ones(n_envs, dtype=bool)
    obs: list[GraphBatch] = []
    nxt: list[GraphBatch] = []
    acts, rews, dones, alives, trajs = [], [], [], [], []
    fixes: list[tuple[str, str]] = []
    causes = [", ".join(f"{f.kind} on {f.target}" for f in sc.faults) if sc else "" for sc in core.scenarios]
    last_choice = [""] * n_envs
    for _ in range(EPISODE_STEPS):
        batch = batch_from_core(core)
        choices = [operators[b](core, b) if alive[b] else None for b in range(n_envs)]
        action = np.array(
            [index_of(core, c) if c is not None else core.action_space_size - 1 for c in choices]
        )
        for b, c in enumerate(choices):
            if c is not None:
                last_choice[b] = f"{c.action} {c.target}" if c.target else c.action
        result = core.step(action)
        done = result.terminated | result.truncated
        for b in np.flatnonzero(alive & result.terminated).tolist():
            fixes.append((causes[b], last_choice[b]))
        obs.append(batch)
        nxt.append(batch_from_core(core))
        acts.append(torch.from_numpy(action))
        rews.append(torch.from_numpy(result.reward.astype(np.float32)))
        dones.append(torch.from_numpy(done.copy()))
        alives.append(torch.from_numpy(alive.copy()))
        trajs.append(torch.arange(n_envs))
        alive = alive & ~done
        if not alive.any():
            break

    rows = torch.nonzero(torch.stack(alives).reshape(-1)).squeeze(1)
    data = Transitions(
        obs=index_batch(concat_batches(obs, n_actions), rows),
        actions=torch.stack(acts).reshape(-1)[rows].long(),
        rewards=torch.stack(rews).reshape(-1)[rows],
        next_obs=index_batch(concat_batches(nxt, n_actions), rows),
        dones=torch.stack(dones).reshape(-1)[rows],
        traj=(torch.stack(trajs).reshape(-1)[rows] + seed * n_envs).long(),
    )
    return data, fixes
