"""The runbook baseline, like the learned policy, offers no rollback or config revert without a change to undo."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from remediation.policies.observe import observation_from_record
from remediation.policies.runbook import RunbookPolicy
from sim.resolve import resolve_topology

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _leak(changes: list[str]) -> dict[str, Any]:
    opened = (NOW - timedelta(minutes=3)).isoformat()
    events: list[dict[str, Any]] = [
        {"type": "alert", "name": "HighMemory", "service": "cartservice", "status": "firing", "at": opened},
        {
            "type": "metrics",
            "service": "cartservice",
            "at": opened,
            "values": {"memory": 0.95, "error_rate": 0.1},
        },
    ]
    at = (NOW - timedelta(minutes=10)).isoformat()
    events += [{"type": kind, "service": "cartservice", "at": at} for kind in changes]
    return {"services": ["cartservice"], "opened_at": opened, "events": events}


def test_undo_actions_need_their_change() -> None:
    # the memory leak runbook's second step is a rollback ("a leak introduced by the last release")
    topology = resolve_topology("online-boutique")
    for changes, allowed in (
        ([], set()),
        (["deploy"], {"rollback_deploy"}),
        (["config_change"], {"revert_config"}),
    ):
        observation, _ = observation_from_record(_leak(changes), topology=topology, now=NOW)
        ranked = RunbookPolicy().rank(observation, 10)
        assert ranked
        undos = {r.action for r in ranked if r.action in ("rollback_deploy", "revert_config")}
        assert undos <= allowed, (changes, ranked)
