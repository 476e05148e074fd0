"""Training learns from the team's own data: its graph and variations in fine-tuning, its real alert names in mined history."""

from __future__ import annotations

import numpy as np

from remediation.learning.rollout import training_topology
from sim.topology import builtin_topology
from sim.variations import variations


def test_without_a_team_graph_the_draws_are_unchanged() -> None:
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    plain = [training_topology(a).name for _ in range(20)]
    empty = [training_topology(b, team=[]).name for _ in range(20)]
    assert plain == empty
    assert all(name.startswith("train-") for name in plain)


def test_with_a_team_graph_about_half_the_draws_are_the_teams() -> None:
    own = builtin_topology("online-boutique")
    team = [own, *variations(own, 4, seed=0)]
    rng = np.random.default_rng(0)
    names = [training_topology(rng, team=team).name for _ in range(400)]
    ours = [n for n in names if n.startswith("online-boutique")]
    assert 140 <= len(ours) <= 260  # about half (binomial, p = 0.5, n = 400)
    assert {n for n in ours} == {t.name for t in team}  # the graph itself and every variation come up


def test_real_alert_names_in_mined_history_become_the_signals_ranked_live() -> None:
    from remediation.learning.encoding import history_signal

    assert history_signal("HighErrorRate") == "HighErrorRate"  # the simulator's own name
    assert history_signal("PodCrashLooping") == "ServiceDown"  # an old alias
    assert history_signal("KubePodCrashLooping") is not None  # kube-prometheus-stack, via the vocabulary
    assert history_signal("SomethingNobodyMapped") is None  # not a feature: dropped as before
