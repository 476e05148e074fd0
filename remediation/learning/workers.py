"""Rollout workers on Ray: the simulator runs in N actors, the learner stays in the driver.

Each iteration the driver draws the iteration's training topologies (as the single-process path does),
puts the current weights in Ray's object store once, and every worker plays its share of each
topology's incidents (``cluster.shares`` of ``envs``) with its own random streams seeded from
``(seed, worker, iteration)``. The shares of one topology are concatenated back into one rollout, so
the learner sees batches of the same size and make-up as in one process: the same distribution, and
the same weights again for the same seed and worker count.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from remediation.guardrails.models import RbacConfig
from remediation.learning.buffer import Rollout, concat_rollouts
from remediation.learning.cluster import import_ray, shares, torch_seed, worker_seed
from remediation.learning.policy import GraphPolicy, NetConfig
from remediation.learning.rollout import collect_rollout
from sim.topology import Topology

Collected = tuple[Rollout, dict[str, float]]
"""One topology's rollout and its stats (``success_rate``, ``steps``, ``t_len``), as ``collect_rollout`` returns."""


class RolloutWorker:
    """One Ray actor: a copy of the network that plays incidents with the driver's latest weights."""

    def __init__(self, config: NetConfig, guardrails: RbacConfig | None) -> None:
        torch.set_num_threads(1)  # one CPU per actor; the driver's threads are the learner's
        self.net = GraphPolicy(config)
        self.guardrails = guardrails

    def collect(self, weights: dict[str, torch.Tensor], topologies: list[Topology], n_envs: int, *, seed: int,
                worker: int, iteration: int, gamma: float, lam: float, escalate_after: int) -> list[Collected]:  # fmt: skip
        """Play ``n_envs`` incidents on each topology; streams seeded from (seed, worker, iteration)."""
        self.net.load_state_dict(weights)
        sequence = worker_seed(seed, worker, iteration)
        rng = np.random.default_rng(sequence)
        generator = torch.Generator().manual_seed(torch_seed(sequence))
        return [
            collect_rollout(
                self.net,
                topo,
                n_envs=n_envs,
                rng=rng,
                generator=generator,
                gamma=gamma,
                lam=lam,
                escalate_after=escalate_after,
                guardrails=self.guardrails,
            )
            for topo in topologies
        ]


class RolloutWorkers:
    """A fixed set of rollout actors on the connected Ray cluster (connect with ``cluster.ray_cluster``)."""

    def __init__(self, workers: int, config: NetConfig, guardrails: RbacConfig | None, *, seed: int) -> None:
        self.ray = import_ray()
        # one CPU each, or an even part of the cluster's CPUs when there are more workers than CPUs: actors
        # that ask for more than the cluster has would wait for a CPU forever
        cpus = min(1.0, float(self.ray.cluster_resources().get("CPU", 1.0)) / workers)
        actor = self.ray.remote(num_cpus=cpus)(RolloutWorker)
        self.actors: list[Any] = [actor.remote(config, guardrails) for _ in range(workers)]
        self.n_actions = config.n_actions
        self.seed = seed

    def collect(self, net: GraphPolicy, topologies: list[Topology], *, envs: int, iteration: int, gamma: float,
                lam: float, escalate_after: int) -> list[Collected]:  # fmt: skip
        """Return one rollout per topology, its ``envs`` incidents played in shares by the workers."""
        weights = self.ray.put({k: v.detach().clone() for k, v in net.state_dict().items()})
        counts = [n for n in shares(envs, len(self.actors)) if n > 0]
        futures = [
            actor.collect.remote(
                weights,
                topologies,
                n,
                seed=self.seed,
                worker=w,
                iteration=iteration,
                gamma=gamma,
                lam=lam,
                escalate_after=escalate_after,
            )
            for w, (actor, n) in enumerate(zip(self.actors, counts, strict=False))
        ]
        parts: list[list[Collected]] = self.ray.get(futures)
        return [self._merge([p[j] for p in parts], counts) for j in range(len(topologies))]

    def _merge(self, pieces: list[Collected], counts: list[int]) -> Collected:
        """One topology's shares as one rollout; success over all its incidents, whatever worker played them."""
        mitigated = sum(stats["success_rate"] * n for (_, stats), n in zip(pieces, counts, strict=True))
        stats = {
            "success_rate": mitigated / sum(counts),
            "steps": sum(s["steps"] for _, s in pieces),
            "t_len": max(s["t_len"] for _, s in pieces),
        }
        return concat_rollouts([r for r, _ in pieces], self.n_actions), stats

    def close(self) -> None:
        """End the actors (their CPUs go back to the cluster)."""
        for actor in self.actors:
            self.ray.kill(actor)
