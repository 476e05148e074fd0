"""Rollouts and evaluation episodes on Ray workers, on one local two-CPU cluster started once for the module.

Same seed and worker count: the same rollouts and results; against the single-process path: the same
distribution (the success rate within a statistical tolerance on the same scenarios).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from types import ModuleType

import pytest
import torch

from playbooks.catalog import builtin_catalog
from remediation.evaluation.sim_eval import evaluate_policies
from remediation.guardrails.config import load_rbac
from remediation.learning.args import QUICK, TrainArgs
from remediation.learning.baselines import OraclePolicy, RandomPolicy, RunbookPolicy
from remediation.learning.cluster import ray_cluster, shares, slices
from remediation.learning.train import new_net
from remediation.policies.base import Policy
from sim.generator import generate_topology
from sim.resolve import resolve_topology


@pytest.fixture(scope="module")
def cluster() -> Iterator[ModuleType]:
    if os.environ.get("REMEDIATE_TEST_RAY") == "off":
        pytest.skip("Ray cases disabled by REMEDIATE_TEST_RAY=off")
    pytest.importorskip("ray", reason="Ray is an extra: pip install -e '.[ray]' (make install does)")
    with ray_cluster(None) as ray:
        yield ray


def test_shares_split_work_evenly_in_order() -> None:
    assert shares(48, 4) == [12, 12, 12, 12] and shares(5, 2) == [3, 2] and shares(1, 3) == [1, 0, 0]
    assert [list(s) for s in slices(list(range(5)), 2)] == [[0, 1, 2], [3, 4]]


def test_rollout_workers_repeat_by_seed_and_differ_by_iteration(cluster: ModuleType) -> None:
    from remediation.learning.workers import RolloutWorkers

    torch.manual_seed(0)
    net = new_net(TrainArgs(**QUICK), builtin_catalog())
    topologies = [generate_topology(8, seed=11), generate_topology(10, seed=12)]
    workers = RolloutWorkers(2, net.config, load_rbac(None), seed=5)
    try:
        kwargs = {"envs": 9, "gamma": 0.97, "lam": 0.9, "escalate_after": 0}
        first = workers.collect(net, topologies, iteration=0, **kwargs)
        again = workers.collect(net, topologies, iteration=0, **kwargs)
        later = workers.collect(net, topologies, iteration=1, **kwargs)
    finally:
        workers.close()
    assert len(first) == 2
    for (a, sa), (b, sb) in zip(first, again, strict=True):
        assert sa == sb
        assert all(torch.equal(x, y) for x, y in zip(a.actions, b.actions, strict=True))
        assert torch.equal(a.obs.x, b.obs.x) and torch.equal(a.advantages, b.advantages)
        # one rollout per topology: both workers' shares (5 + 4 incidents), every kept step
        assert a.actions.numel() == sa["steps"] and 0.0 <= sa["success_rate"] <= 1.0
    assert any(not torch.equal(a.actions, c.actions) for (a, _), (c, _) in zip(first, later, strict=True))


def policies() -> dict[str, Policy]:
    return {"runbook": RunbookPolicy(), "random": RandomPolicy(2), "oracle": OraclePolicy()}


def test_eval_on_ray_repeats_and_matches_the_single_process_path(cluster: ModuleType) -> None:
    from remediation.evaluation.distributed import evaluate_on_ray

    topology, episodes, seed, rbac = resolve_topology("online-boutique"), 120, 9, load_rbac(None)
    on_ray = evaluate_on_ray(topology, policies(), episodes=episodes, seed=seed, rbac=rbac, workers=2)
    again = evaluate_on_ray(topology, policies(), episodes=episodes, seed=seed, rbac=rbac, workers=2)
    here = evaluate_policies(topology, policies(), episodes=episodes, seed=seed, rbac=rbac)
    assert {k: v.as_row() for k, v in on_ray.items()} == {k: v.as_row() for k, v in again.items()}
    assert set(on_ray) == set(here)
    for name in here:
        p = here[name].success_rate
        # two estimates of one success probability from `episodes` incidents each: within 4 standard errors
        tolerance = 4 * math.sqrt(2 * max(p * (1 - p), 0.01) / episodes)
        assert abs(on_ray[name].success_rate - p) <= tolerance, (name, on_ray[name].success_rate, p)
    assert on_ray["oracle"].success_rate > on_ray["runbook"].success_rate > on_ray["random"].success_rate
