"""IncidentEnv is an exact Gymnasium env: check_env, determinism by seed, masks, topology changes."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from sim.env import IncidentEnv
from sim.errors import ActionError, TopologyError
from sim.observation import FEATURES


def test_check_env_passes() -> None:
    check_env(IncidentEnv("online-boutique"), skip_render_check=True)


def test_check_env_passes_with_padding() -> None:
    check_env(IncidentEnv("online-boutique", max_services=30, max_edges=40), skip_render_check=True)


def test_action_space_is_services_times_actions_plus_globals() -> None:
    env = IncidentEnv("hotel-reservation")
    from playbooks.catalog import builtin_catalog

    cat = builtin_catalog()
    assert env.action_space.n == 22 * len(cat.service_actions) + len(cat.global_actions)
    assert env.action_index("restart_service", "frontend") == 1 * len(cat.service_actions) + cat.index(
        "restart_service"
    )
    assert env.action_index("wait") == env.action_space.n - len(cat.global_actions) + (
        cat.index("wait") - len(cat.service_actions)
    )


def rollout(seed: int, steps: int = 25) -> tuple[list[float], list[np.ndarray]]:
    env = IncidentEnv("hotel-reservation")
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    rewards, nodes = [], [obs["nodes"]]
    for _ in range(steps):
        valid = np.flatnonzero(env.action_masks())
        obs, reward, terminated, truncated, _ = env.step(int(rng.choice(valid)))
        rewards.append(float(reward))
        nodes.append(obs["nodes"])
        if terminated or truncated:
            obs, _ = env.reset()
    return rewards, nodes


def test_same_seed_same_trajectory() -> None:
    r1, n1 = rollout(11)
    r2, n2 = rollout(11)
    r3, _ = rollout(12)
    assert r1 == r2
    assert all(np.array_equal(a, b) for a, b in zip(n1, n2, strict=True))
    assert r1 != r3


def test_reset_with_the_same_seed_repeats_whatever_came_before() -> None:
    env = IncidentEnv("online-boutique")
    first, _ = env.reset(seed=4)
    for _ in range(5):
        env.step(env.action_index("wait"))
    again, _ = env.reset(seed=4)
    assert np.array_equal(first["nodes"], again["nodes"])


def test_masks_are_int8_and_a_masked_action_does_nothing_but_cost() -> None:
    env = IncidentEnv("online-boutique")
    env.reset(seed=0, options={"faults": [{"kind": "bad_deploy", "target": "cartservice"}]})
    mask = env.action_masks()
    assert mask.dtype == np.int8 and mask.shape == (env.action_space.n,)
    masked = env.action_index("failover_datastore", "cartservice")  # not a datastore
    assert mask[masked] == 0
    assert mask[env.action_index("rollback_deploy", "cartservice")] == 1
    sev = env.core.state.sev.copy()
    _, reward, _, _, info = env.step(masked)
    assert info["outcome"] == "failed"
    assert np.array_equal(env.core.state.sev, sev)
    _, wait_reward, _, _, _ = env.step(env.action_index("wait"))
    assert reward < wait_reward - 0.5 * env.config.invalid_penalty


def test_masks_follow_the_state() -> None:
    env = IncidentEnv("online-boutique")
    env.reset(seed=0)
    enable = env.action_index("enable_rate_limiting", "frontend")
    disable = env.action_index("disable_rate_limiting", "frontend")
    assert env.action_masks()[disable] == 0
    env.step(enable)
    assert env.action_masks()[enable] == 0 and env.action_masks()[disable] == 1


def test_random_policy_over_the_mask_never_fails() -> None:
    env = IncidentEnv("hotel-reservation")
    env.reset(seed=3)
    rng = np.random.default_rng(3)
    for _ in range(60):
        _, _, term, trunc, info = env.step(int(rng.choice(np.flatnonzero(env.action_masks()))))
        assert info["outcome"] != "failed"
        if term or trunc:
            env.reset()


def test_topology_can_change_between_episodes() -> None:
    env = IncidentEnv("online-boutique", max_services=40, max_edges=100)
    obs, _ = env.reset(seed=1, options={"topology": "hotel-reservation"})
    assert obs["node_mask"].sum() == 22 and obs["edge_mask"].sum() == 21
    assert obs["nodes"].shape == (40, len(FEATURES))
    assert not obs["nodes"][22:].any()
    mask = env.action_masks()
    assert not mask[22 * env.n_actions : 40 * env.n_actions].any()  # padded services
    _, _, _, _, info = env.step(25 * env.n_actions)  # a padded service
    assert info["outcome"] == "failed"
    obs, _ = env.reset(seed=1, options={"topology": "generated:40:2"})
    assert obs["node_mask"].sum() == 40
    assert env.observation_space.contains(obs)


def test_too_large_a_topology_is_refused_clearly() -> None:
    env = IncidentEnv("online-boutique")
    with pytest.raises(TopologyError, match="max_services"):
        env.reset(options={"topology": "hotel-reservation"})


def test_terminates_when_healthy_and_truncates_at_the_limit() -> None:
    from sim.core import SimConfig

    env = IncidentEnv("online-boutique", config=SimConfig(max_steps=4))
    env.reset(seed=0, options={"faults": {"kind": "disk_full", "target": "paymentservice"}})
    _, reward, terminated, truncated, _ = env.step(env.action_index("clear_disk", "paymentservice"))
    assert reward < 0 and not truncated
    for _ in range(2):  # callers' retries drain within a minute or two
        if terminated:
            break
        _, _, terminated, truncated, _ = env.step(env.action_index("wait"))
    assert terminated and not truncated
    env.reset(seed=0, options={"faults": {"kind": "disk_full", "target": "paymentservice"}})
    flags = [env.step(env.action_index("wait"))[2:4] for _ in range(4)]
    assert flags[-1] == (False, True) and all(f == (False, False) for f in flags[:-1])


def test_out_of_range_actions_are_refused() -> None:
    env = IncidentEnv("online-boutique")
    env.reset(seed=0)
    with pytest.raises(ActionError):
        env.step(env.action_space.n)
