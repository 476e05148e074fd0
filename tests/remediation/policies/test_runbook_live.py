"""The runbook baseline behind the Policy protocol, on observations built from live timelines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from remediation.policies import Policy, RankedAction, RunbookPolicy
from remediation.policies.observe import observation_from_record, topology_with
from remediation.policies.runbook import signals_from_observation
from sim.topology import builtin_topology

NOW = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)
BOUTIQUE = builtin_topology("online-boutique")


def record(*events: dict) -> dict:
    return {"opened_at": (NOW - timedelta(minutes=5)).isoformat(), "events": list(events)}


def alert(name: str, service: str, status: str = "firing") -> dict:
    return {"type": "alert", "status": status, "name": name, "service": service, "at": NOW.isoformat()}


def test_runbook_policy_satisfies_the_protocol() -> None:
    assert isinstance(RunbookPolicy(), Policy)


def test_deploy_plus_errors_ranks_rollback_first() -> None:
    deploy = {"type": "deploy", "service": "checkoutservice", "at": (NOW - timedelta(minutes=3)).isoformat()}
    obs, _ = observation_from_record(
        record(deploy, alert("HighErrorRate", "checkoutservice")), topology=BOUTIQUE, now=NOW
    )
    ranked = RunbookPolicy().rank(obs, 3)
    assert len(ranked) == 3 and all(isinstance(r, RankedAction) for r in ranked)
    assert (ranked[0].action, ranked[0].target) == ("rollback_deploy", "checkoutservice")
    assert ranked[0].confidence > ranked[-1].confidence
    assert (
        ranked[0].risk == "medium" and ranked[0].expected_ttm_s and ranked[0].reason.startswith("bad_deploy")
    )


def test_resolved_alert_no_longer_counts() -> None:
    rec = record(alert("ServiceDown", "redis-cart"), alert("ServiceDown", "redis-cart", status="resolved"))
    obs, _ = observation_from_record(rec, topology=BOUTIQUE, now=NOW)
    ranked = RunbookPolicy().rank(obs, 3)
    assert [r.action for r in ranked] == ["wait", "escalate"]  # only the fallback is left


def test_datastore_outage_offers_the_high_risk_failover() -> None:
    obs, _ = observation_from_record(record(alert("ServiceDown", "redis-cart")), topology=BOUTIQUE, now=NOW)
    actions = {(r.action, r.risk) for r in RunbookPolicy().rank(obs, 3)}
    assert ("failover_datastore", "high") in actions


def test_metrics_round_trip_through_the_observation() -> None:
    metrics = {"type": "metrics", "service": "cartservice", "values": {"memory": 0.93, "latency_p99_ms": 850}}
    obs, _ = observation_from_record(
        record(metrics, alert("HighMemory", "cartservice")), topology=BOUTIQUE, now=NOW
    )
    signals = signals_from_observation(obs)
    assert signals.metrics["cartservice"]["memory"] == pytest.approx(0.93, abs=1e-3)
    assert signals.metrics["cartservice"]["latency_p99_ms"] == pytest.approx(850, rel=1e-3)
    assert signals.kinds["cartservice"] == "service"
    assert RunbookPolicy().rank(obs, 1)[0].reason.startswith("memory_leak")


def test_unknown_services_join_the_graph_as_plain_services() -> None:
    graph = topology_with(BOUTIQUE, ["billing-api"])
    assert "billing-api" in graph.services and graph.kind_of("billing-api") == "service"
    obs, _ = observation_from_record(record(alert("HighErrorRate", "billing-api")), topology=None, now=NOW)
    assert RunbookPolicy().rank(obs, 1)[0].target == "billing-api"


def test_k_must_be_positive() -> None:
    obs, _ = observation_from_record(record(), topology=BOUTIQUE, now=NOW)
    with pytest.raises(ValueError, match="k must be"):
        RunbookPolicy().rank(obs, 0)
