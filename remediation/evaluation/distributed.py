"""The evaluation protocol of ``sim_eval`` with the episodes played on Ray workers.

The driver draws the seeded scenarios exactly as the single-process path does and deals them out in
contiguous runs, one per worker; worker ``w`` plays its run of every policy with the simulator's noise
(and a random policy's draws) seeded from ``(seed, w)``, so the episodes are the same incidents and the
results agree in distribution with ``evaluate_policies``, and are repeatable for a fixed worker count.
The first-suggestion check replays its own seeded incidents, one task per policy, as in one process.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import numpy as np

from playbooks.catalog import Catalog, builtin_catalog
from remediation.evaluation.sim_eval import (
    CALIBRATED,
    Played,
    PolicyResult,
    draw_scenarios,
    merge_played,
    play,
    summarise,
    with_regret,
)
from remediation.evaluation.verified import first_suggestion_effective
from remediation.guardrails.models import RbacConfig
from remediation.learning.cluster import import_ray, slices, worker_seed
from remediation.policies.base import Policy
from sim.faults import Scenario
from sim.topology import Topology


def _play_share(topology: Topology, policy: Policy, scenarios: Sequence[Scenario], *, seed: int, worker: int,
                rbac: RbacConfig, catalog: Catalog) -> Played:  # fmt: skip
    """Play one worker's run of scenarios (a Ray task: one CPU, torch on one thread)."""
    import torch

    torch.set_num_threads(1)
    sequence = worker_seed(seed, worker, 0)
    own = copy.copy(policy)
    if isinstance(getattr(own, "rng", None), np.random.Generator):
        # a random policy's draws: the worker's own stream, not a replay of the driver's
        own.rng = np.random.default_rng(sequence.spawn(1)[0])  # type: ignore[attr-defined]
    return play(topology, own, list(scenarios), core_seed=sequence.generate_state(4).tolist(), rbac=rbac,
                catalog=catalog)  # fmt: skip


def _first_effective(
    topology: Topology, policy: Policy, *, episodes: int, seed: int, catalog: Catalog
) -> float:
    """The verified first-suggestion share (a Ray task)."""
    import torch

    torch.set_num_threads(1)
    return first_suggestion_effective(topology, policy, episodes=episodes, seed=seed, catalog=catalog)


def evaluate_on_ray(
    topology: Topology,
    policies: Mapping[str, Policy],
    *,
    episodes: int,
    seed: int,
    rbac: RbacConfig,
    workers: int,
    catalog: Catalog | None = None,
    calibrated: frozenset[str] = CALIBRATED,
) -> dict[str, PolicyResult]:
    """Run every policy on the same seeded scenarios, ``workers`` Ray tasks per policy; needs a Ray connection.

    Same protocol, keys and regret as ``sim_eval.evaluate_policies``; connect first with
    ``learning.cluster.ray_cluster``.
    """
    ray = import_ray()
    catalog = catalog or builtin_catalog()
    scenarios = draw_scenarios(topology, episodes, seed)
    share = ray.remote(num_cpus=1)(_play_share)
    first = ray.remote(num_cpus=1)(_first_effective)
    topo_ref, rbac_ref, catalog_ref = ray.put(topology), ray.put(rbac), ray.put(catalog)
    runs = [run for run in slices(scenarios, workers) if run]
    pending, checks = {}, {}
    for name, policy in policies.items():
        policy_ref = ray.put(policy)
        pending[name] = [share.remote(topo_ref, policy_ref, run, seed=seed, worker=w, rbac=rbac_ref,
                                      catalog=catalog_ref) for w, run in enumerate(runs)]  # fmt: skip
        checks[name] = first.remote(topo_ref, policy_ref, episodes=min(episodes, 100), seed=seed,
                                    catalog=catalog_ref)  # fmt: skip
    results: dict[str, PolicyResult] = {}
    impacts: dict[str, np.ndarray] = {}
    for name in policies:
        played = merge_played(ray.get(pending[name]))
        result = summarise(played, scenarios, catalog=catalog, calibrated=name in calibrated)
        results[name] = PolicyResult(**{**result.__dict__, "first_effective": ray.get(checks[name])})
        impacts[name] = played.impact
    return with_regret(results, impacts)
