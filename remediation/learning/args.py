"""The arguments of one training run (`TrainArgs`) and the smoke-test overrides (`QUICK`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TrainArgs:
    """Every knob of one training run (saved in the artifact)."""

    seed: int = 0
    """Seeds numpy, torch and Python's random; same seed and iterations, same weights."""
    minutes: float = 5.0
    """Wall-clock budget of the whole run: fine-tuning goes on while another iteration and calibration fit."""
    iterations: int | None = 60
    """Most PPO iterations (each: fresh rollouts, then a few epochs over them); None = the budget decides."""
    envs: int = 48
    """Incidents simulated side by side per topology per iteration (the batched core's B)."""
    topologies_per_iteration: int = 2
    """Freshly generated training topologies per iteration."""
    min_services: int = 6
    """Smallest generated training topology."""
    max_services: int = 40
    """Largest generated training topology."""
    logged_topologies: int = 4
    """Training topologies on which simulated operators produce logged history."""
    logged_envs: int = 48
    """Simulated operator incidents per logged topology."""
    offline_epochs: int = 5
    """Epochs of behaviour cloning + CQL on the logged history (also the operator baseline's epochs)."""
    dagger_states: int = 40_000
    """Most oracle-labelled visited states kept for imitation (DAgger's aggregated data set), oldest dropped."""
    dagger_steps: int = 8
    """Imitation-only minibatches drawn from that data set after each PPO update."""
    escalate_after: int = 4
    """k > 0: visited states still open after k of the policy's actions are labelled ``escalate`` (0 = off)."""
    calibration_topologies: int = 4
    """Fresh topologies whose greedy-policy states fit the temperature and measure ECE."""
    ppo_epochs: int = 3
    """Passes over each PPO batch."""
    minibatch: int = 256
    """Steps per gradient step."""
    lr: float = 2e-3
    """Adam learning rate."""
    hidden: int = 64
    """Hidden units of the graph network."""
    layers: int = 3
    """Message passing rounds (hops each service hears about)."""
    edge_messages: bool = True
    """Edge-aware input messages (caller-minus-callee feature differences, see ``policy.EdgeDiff``)."""
    edge_features: bool = True
    """The edge messages also read the per-edge error rates (``sim.observation.EDGE_FEATURES``)."""

    guardrails: bool = True
    """Mask every simulated state with the guardrails' plan-stage decisions (``learning.guard``), as the bot does."""
    rbac_config: str | None = None
    """The RBAC/guardrails YAML those decisions read (the configured one); None = the shipped example."""
    history: str | None = None
    """A mined ``.npz`` dataset to add to the logged history (``remediate train`` mines it for you)."""
    history_topology: str = "online-boutique"
    """Topology (name or file) the mined history's services live on."""
    team_variations: int = 0
    """With N > 0, half the fine-tuning topologies are the history topology or one of N variations of it."""
    dense_share: float = 0.3
    """Share of the generated fine-tuning (and calibration) graphs made dense (``rollout.DENSE_RATIO`` calls
    per service): a mesh where every service has many callers spreads one fault's symptoms widest."""
    run_root: str = "runs"
    """Where run directories are created."""
    name: str = ""
    """Run directory name; empty = ``train-<UTC stamp>-s<seed>``."""


QUICK: dict[str, Any] = {
    "envs": 24,
    "logged_topologies": 1,
    "logged_envs": 16,
    "offline_epochs": 2,
    "min_services": 6,
    "max_services": 12,
    "hidden": 32,
    "layers": 2,
    # a smoke test checks the plumbing: with the escalate fallback even two iterations "mitigate" by paging
    "escalate_after": 0,
}
"""Overrides of a smoke-test run (``remediate train --quick``, which also caps it at ``budget.QUICK_MINUTES``
and ``budget.QUICK_ITERATIONS``): under a minute, for checking a setup, not for use."""
