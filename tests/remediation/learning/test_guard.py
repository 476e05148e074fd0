"""Guardrails in training: rollouts are masked by the same ``action_mask`` the bot ranks under."""

from __future__ import annotations

import numpy as np
import torch

from playbooks.catalog import builtin_catalog
from remediation.guardrails.config import load_rbac
from remediation.guardrails.decide import Switches
from remediation.guardrails.mask import action_mask, decode
from remediation.guardrails.models import RateLimitRule, RbacConfig
from remediation.learning.guard import EpisodeGuard
from remediation.learning.rollout import collect_rollout
from remediation.learning.train import QUICK, TrainArgs, new_net
from sim.generator import generate_topology
from sim.topology import Topology


def _rollout_actions(topology: Topology, **guard: object) -> list[tuple[str, str | None]]:
    catalog = builtin_catalog()
    net = new_net(TrainArgs(**QUICK), catalog)
    torch.manual_seed(0)
    rollout, _ = collect_rollout(
        net, topology, n_envs=16, rng=np.random.default_rng(3), generator=torch.Generator().manual_seed(3),
        gamma=0.97, lam=0.9, **guard,  # type: ignore[arg-type]
    )  # fmt: skip
    return [decode(int(i), topology.services, catalog) for i in rollout.actions]


def _no_restarts() -> RbacConfig:
    shipped = load_rbac(None)
    rule = RateLimitRule(action="restart_service", max=0, per_s=3600)
    return shipped.model_copy(update={"rate_limits": (*shipped.rate_limits, rule)})


def test_a_rollout_never_takes_an_action_the_guardrails_refuse() -> None:
    topology = generate_topology(8, seed=5, name="guard-8")
    unguarded = _rollout_actions(topology)
    assert any(a == "restart_service" for a, _ in unguarded)  # an untrained policy restarts somewhere

    limited = _rollout_actions(topology, guardrails=_no_restarts())
    assert limited and all(a != "restart_service" for a, _ in limited)

    halted = _rollout_actions(
        topology, guardrails=load_rbac(None), switches=Switches(killed=frozenset({"*"}))
    )
    assert halted and {a for a, _ in halted} <= {"wait", "escalate"}  # the kill switch exempts only these


def test_guarded_rollouts_are_deterministic_by_seed() -> None:
    topology = generate_topology(8, seed=5, name="guard-8")
    assert _rollout_actions(topology, guardrails=load_rbac(None)) == _rollout_actions(
        topology, guardrails=load_rbac(None)
    )


def test_the_episode_mask_is_the_bots_action_mask_of_the_episode() -> None:
    topology = generate_topology(10, seed=2, name="guard-10")
    catalog = builtin_catalog()
    guard = EpisodeGuard(topology, catalog, load_rbac(None), n_envs=3)
    per = len(catalog.service_actions)
    restart = topology.index[topology.services[1]] * per + catalog.service_actions.index("restart_service")
    wait = len(topology.services) * per + catalog.global_actions.index("wait")
    # incident 0 restarts the same service three times (the catalog allows 3 an hour), incident 1 waits
    for minute in range(3):
        elapsed = np.array([60.0 * minute] * 3)
        guard.record(np.array([restart, wait, 0]), np.array([True, True, False]), elapsed)
    elapsed = np.array([600.0, 600.0, 600.0])
    masks = guard.masks(elapsed)
    for env in range(3):
        expected = action_mask(topology.services, catalog, guard.context(env, 600.0))
        np.testing.assert_array_equal(masks[env], expected)
    assert masks[0, restart] == 0 and masks[1, restart] == 1 and masks[2, restart] == 1
    # an hour after the first restart, one of the three has left the window
    assert guard.masks(np.array([3600.0 + 30.0, 0.0, 0.0]))[0, restart] == 1


def test_evaluation_refuses_a_repeat_past_a_rate_limit_as_the_bot_would() -> None:
    from remediation.evaluation.sim_eval import evaluate_policies
    from remediation.learning.baselines import RandomPolicy, RunbookPolicy
    from sim.topology import builtin_topology

    shipped = load_rbac(None)
    once = shipped.model_copy(
        update={"rate_limits": (*shipped.rate_limits, RateLimitRule(max=1, per_s=3600))}
    )
    topology = builtin_topology("online-boutique")
    policies = {"runbook": RunbookPolicy(), "random": RandomPolicy(0)}
    base = evaluate_policies(topology, policies, episodes=8, seed=3, rbac=shipped)
    limited = evaluate_policies(topology, policies, episodes=8, seed=3, rbac=once)
    # the runbook (no mask) repeats its fix: the episode's runs make the repeat a refusal
    assert limited["runbook"].violations > base["runbook"].violations
    # a policy that takes the mask never suggests what the episode's guardrails refuse
    assert limited["random"].violations == base["random"].violations == 0


def test_a_config_that_refuses_even_wait_stops_with_a_message() -> None:
    import pytest

    from remediation.errors import GuardrailsRefuseAllError

    shipped = load_rbac(None)
    nothing = shipped.model_copy(update={"rate_limits": (RateLimitRule(max=0, per_s=3600),)})
    guard = EpisodeGuard(generate_topology(6, seed=1, name="guard-6"), builtin_catalog(), nothing, n_envs=2)
    with pytest.raises(GuardrailsRefuseAllError, match="refuse every action"):
        guard.masks(np.zeros(2))
