"""Simulator data: PPO rollouts with oracle labels, and logged operator history, on the batched core."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch

from remediation.guardrails.decide import Switches
from remediation.guardrails.models import RbacConfig
from remediation.learning.buffer import Rollout, Transitions
from remediation.learning.encoding import GraphBatch, batch_from_core, concat_batches, index_batch
from remediation.learning.guard import NO_SWITCHES, EpisodeGuard
from remediation.learning.policy import GraphPolicy, Heads
from sim.core import BatchCore, SimConfig
from sim.generator import generate_topology
from sim.policies import Choice, OperatorPolicy, OraclePolicy, index_of
from sim.resolve import resolve_topology
from sim.topology import Topology
from sim.variations import densify

TRAIN_SEED_LIMIT = 100_000
DENSE_RATIO = 2.5
"""Call edges per service of a dense graph (the targets ask for at least twice as many edges as services)."""
"""Generated topologies with seed below this are training topologies; evaluation uses seeds above it."""
Fixed = tuple[int, str, str]
"""(trajectory id, what the incident was, what fixed it): one resolved incident for the similar-incident memory."""
EPISODE_STEPS = 10
"""Actions an incident gets before it counts as not mitigated (the issue's success criterion)."""
TRUNCATION_PENALTY = 2.0
"""Reward lost when an incident is still open after EPISODE_STEPS actions."""


def training_topology(
    rng: np.random.Generator,
    *,
    min_services: int = 6,
    max_services: int = 40,
    team: list[Topology] | None = None,
    dense: float = 0.0,
) -> Topology:
    """Draw a training topology: a generated graph of random size (seed below TRAIN_SEED_LIMIT).

    With ``team`` (the team's graph and its variations), half the draws are one of those instead; without
    it the random stream is the same as before, so runs without a team graph are unchanged. A share
    ``dense`` of the generated graphs gets calls added up to ``DENSE_RATIO`` per service
    (``sim.variations.densify``); with 0 nothing more is drawn.
    """
    if team and rng.random() < 0.5:
        return team[int(rng.integers(len(team)))]
    size = int(rng.integers(min_services, max_services + 1))
    seed = int(rng.integers(0, TRAIN_SEED_LIMIT))
    topology = generate_topology(size, seed=seed, name=f"train-{size}-s{seed}")
    if dense > 0 and rng.random() < dense:
        return densify(topology, DENSE_RATIO, seed=seed, name=f"train-{size}-s{seed}-dense")
    return topology


def dense_topologies() -> list[Topology]:
    """Return the dense held-out graphs of issue 13's targets: 40, 50 and 60 services, DENSE_RATIO calls each."""
    return [
        densify(generate_topology(n, seed=TRAIN_SEED_LIMIT + 13 + n), DENSE_RATIO, seed=n, name=f"dense-{n}")
        for n in (40, 50, 60)
    ]


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


@dataclass
class _Episodes:
    """The B incidents a rollout runs side by side, and how far each has come."""

    core: BatchCore
    guard: EpisodeGuard | None
    oracle: OraclePolicy
    escalate: int  # the flat action index of ``escalate``
    alive: npt.NDArray[np.bool_]  # (B,) still open
    resolved: npt.NDArray[np.bool_]  # (B,) mitigated within the episode
    end_time: npt.NDArray[np.float64]  # (B,) sim clock at mitigation, NaN while open


@dataclass
class _Steps:
    """What each step recorded for all B incidents, in step order (stacked to (T, B) at the end)."""

    obs: list[GraphBatch] = field(default_factory=list)
    actions: list[torch.Tensor] = field(default_factory=list)  # (B,) int64
    logp: list[torch.Tensor] = field(default_factory=list)  # (B,) float32
    values: list[torch.Tensor] = field(default_factory=list)  # (B,) float32
    rewards: list[torch.Tensor] = field(default_factory=list)  # (B,) float32
    dones: list[torch.Tensor] = field(default_factory=list)  # (B,) bool
    alive: list[torch.Tensor] = field(default_factory=list)  # (B,) bool, before the step
    labels: list[torch.Tensor] = field(default_factory=list)  # (B,) oracle action index, -1 = none
    elapsed: list[npt.NDArray[np.float64]] = field(default_factory=list)  # (B,) sim clock before the step


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
    core = BatchCore(topology, n_envs, seed=rng, config=SimConfig(max_steps=EPISODE_STEPS))
    core.reset()
    guard = None if guardrails is None else EpisodeGuard(topology, core.catalog, guardrails, n_envs, switches)
    episodes = _Episodes(
        core=core,
        guard=guard,
        oracle=OraclePolicy(),
        escalate=index_of(core, Choice("escalate", None)),
        alive=np.ones(n_envs, dtype=bool),
        resolved=np.zeros(n_envs, dtype=bool),
        end_time=np.full(n_envs, np.nan),
    )
    steps = _Steps()
    for step in range(EPISODE_STEPS):
        _rollout_step(net, episodes, steps, step=step, generator=generator, greedy=greedy,
                      escalate_after=escalate_after)  # fmt: skip
        if not episodes.alive.any():
            break
    return _finish_rollout(net, episodes, steps, gamma=gamma, lam=lam)


def _rollout_step(net: GraphPolicy, episodes: _Episodes, steps: _Steps, *, step: int, generator: torch.Generator,
                  greedy: bool, escalate_after: int) -> None:  # fmt: skip
    """Take one action in every incident, label the state, and record it in ``steps``."""
    core, guard, alive = episodes.core, episodes.guard, episodes.alive
    batch = batch_from_core(core, None if guard is None else guard.masks(core.elapsed_s, alive))
    heads, action, logp = _act(net, batch, generator=generator, greedy=greedy)
    label = _labels(episodes, batch, step=step, escalate_after=escalate_after)
    before = core.elapsed_s.copy()
    if guard is not None:
        guard.record(action.numpy(), alive & batch.mask.gather(1, action[:, None]).squeeze(1).numpy(), before)
    result = core.step(action.numpy())
    done = result.terminated | result.truncated
    reward = result.reward - TRUNCATION_PENALTY * (result.truncated & ~result.terminated)
    newly = alive & result.terminated
    episodes.resolved |= newly
    episodes.end_time[newly] = core.elapsed_s[newly]
    steps.obs.append(batch)
    steps.actions.append(action)
    steps.logp.append(logp)
    steps.values.append(heads.value)
    steps.rewards.append(torch.from_numpy(reward.astype(np.float32)))
    steps.dones.append(torch.from_numpy(done.copy()))
    steps.alive.append(torch.from_numpy(alive.copy()))
    steps.labels.append(torch.from_numpy(label))
    steps.elapsed.append(before)
    episodes.alive = alive & ~done


def _act(net: GraphPolicy, batch: GraphBatch, *, generator: torch.Generator,
         greedy: bool) -> tuple[Heads, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Return the network's heads, the (B,) actions it takes (sampled, or argmax when ``greedy``) and their log-probabilities."""
    with torch.no_grad():
        heads = net(batch)
    probs = torch.softmax(heads.logits, dim=1)
    action = probs.argmax(dim=1) if greedy else torch.multinomial(probs, 1, generator=generator).squeeze(1)
    logp = torch.log(probs.gather(1, action[:, None]).squeeze(1).clamp(min=1e-12))
    return heads, action, logp


def _labels(
    episodes: _Episodes, batch: GraphBatch, *, step: int, escalate_after: int
) -> npt.NDArray[np.int64]:
    """Return the (B,) oracle label of each open incident's state (-1 for closed ones and refused fixes)."""
    alive, n_envs = episodes.alive, episodes.alive.shape[0]
    if 0 < escalate_after <= step:
        label = np.where(alive, episodes.escalate, -1)
    else:
        label = np.array(
            [oracle_index(episodes.core, b, episodes.oracle) if alive[b] else -1 for b in range(n_envs)]
        )
    if episodes.guard is not None:
        # an oracle fix the guardrails refuse is no label: the bot could not run it either
        allowed = batch.mask.numpy()[np.arange(n_envs), np.maximum(label, 0)]
        label = np.where(allowed, label, -1)
    return label


def _finish_rollout(net: GraphPolicy, episodes: _Episodes, steps: _Steps, *, gamma: float,
                    lam: float) -> tuple[Rollout, dict[str, float]]:  # fmt: skip
    """Compute advantages and time-to-mitigate targets, and keep the steps taken while an incident was open."""
    from remediation.learning.algorithms import gae

    t_len = len(steps.obs)
    alive_t = torch.stack(steps.alive)
    adv, ret = gae(torch.stack(steps.rewards), torch.stack(steps.values), alive_t, torch.stack(steps.dones),
                   gamma, lam)  # fmt: skip
    # time to mitigate after each step: known where the incident was mitigated within the episode
    ttm = torch.from_numpy(
        np.stack([np.log1p(np.maximum(episodes.end_time - e, 0.0)) for e in steps.elapsed]).astype(np.float32)
    )
    keep = alive_t.reshape(-1)
    rows = torch.nonzero(keep).squeeze(1)

    flat_obs = index_batch(concat_batches(steps.obs, net.config.n_actions), rows)
    rollout = Rollout(
        obs=flat_obs,
        actions=torch.stack(steps.actions).reshape(-1)[rows],
        logp=torch.stack(steps.logp).reshape(-1)[rows],
        advantages=adv.reshape(-1)[rows],
        returns=ret.reshape(-1)[rows],
        oracle=torch.stack(steps.labels).reshape(-1)[rows].long(),
        ttm_target=ttm.reshape(-1)[rows],
    )
    stats = {
        "success_rate": float(episodes.resolved.mean()),
        "steps": float(rows.numel()),
        "t_len": float(t_len),
    }
    return rollout, stats


def collect_logged(
    topology: Topology,
    *,
    n_envs: int,
    seed: int,
    n_actions: int,
    behaviour: Callable[[int], OperatorPolicy] | None = None,
) -> tuple[Transitions, list[Fixed]]:
    """Simulate on-call operators (``sim.policies.OperatorPolicy``) and log what they saw and did.

    Returns:
        The transitions, and per resolved incident (its trajectory id in ``traj``, description, the
        action that fixed it) for the similar-incident memory, in the order the incidents ended.
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
    fixes: list[Fixed] = []
    base = seed * n_envs  # trajectory ids of this call: base + environment
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
            fixes.append((base + b, causes[b], last_choice[b]))
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
        traj=(torch.stack(trajs).reshape(-1)[rows] + base).long(),
    )
    return data, fixes
