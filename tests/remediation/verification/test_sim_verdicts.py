"""Scripted verdict cases in the simulator: a fix that heals, one that does nothing, one that makes a
neighbour fail, and one whose alert takes longer than the settle time to clear."""

from __future__ import annotations

import numpy as np
import pytest

from remediation.verification.judge import Picture, judge
from remediation.verification.live import callers, exposed, neighbours
from remediation.verification.simview import picture_of, step_action, verify_in_sim
from sim.core import BatchCore
from sim.faults import sample_scenario
from sim.topology import builtin_topology

TOPOLOGY = builtin_topology("hotel-reservation")
CRASH = [{"kind": "crash_loop", "target": "profile"}]


def _core(faults: list[dict[str, str]], seed: int = 1) -> BatchCore:
    core = BatchCore(TOPOLOGY, 1, seed=seed)
    scenario = sample_scenario(
        TOPOLOGY, np.random.default_rng(seed), faults=faults, herring_p=0, missing_telemetry_p=0
    )
    core.reset(scenarios=[scenario])
    step_action(core, "wait", None)  # the incident develops: its alerts fire
    return core


@pytest.mark.parametrize(
    ("faults", "action", "target", "verdict"),
    [
        (CRASH, "restart_service", "profile", "effective"),  # heals
        (CRASH, "clear_disk", "profile", "ineffective"),  # does nothing
        (CRASH, "restart_service", "mongodb-profile", "harmful"),  # the healthy datastore behind it fails
        ([{"kind": "bad_deploy", "target": "search"}], "rollback_deploy", "search", "effective"),
        ([{"kind": "bad_deploy", "target": "search"}], "restart_service", "search", "ineffective"),
    ],
)
def test_scripted_verdicts(faults: list[dict[str, str]], action: str, target: str, verdict: str) -> None:
    result = verify_in_sim(_core(faults), action, target, settle_s=180)
    assert result.verdict == verdict, result
    assert result.evidence and result.summary


def test_a_neighbour_failing_is_named_in_the_evidence() -> None:
    result = verify_in_sim(_core(CRASH), "restart_service", "mongodb-profile", settle_s=180)
    assert "mongodb-profile" in result.summary


def test_an_alert_slower_than_the_settle_time_is_judged_on_the_metrics_and_marked_lagging() -> None:
    core = _core(CRASH)
    before = picture_of(core)
    step_action(core, "restart_service", "profile")
    for _ in range(3):
        step_action(core, "wait", None)
    healed = picture_of(core)
    assert not healed.firing
    # the alert rule's `for:` keeps it firing after the metrics recovered
    late = Picture(before.firing, healed.metrics)
    result = judge(
        target="profile", scope=callers(TOPOLOGY, "profile"), neighbours=neighbours(TOPOLOGY, "profile"),
        before=before, after=late, exposed=exposed(TOPOLOGY, before), waited="after 3 min",
    )  # fmt: skip
    assert result.lagging and result.verdict == "effective"
    assert "lags" in result.summary


def test_a_picture_round_trips_through_json() -> None:
    picture = picture_of(_core(CRASH))
    assert Picture.from_json(picture.as_json()) == picture
