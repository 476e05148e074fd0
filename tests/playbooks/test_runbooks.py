"""Runbooks: the built-ins load, cover the fault types, and match symptoms in a stable order."""

from __future__ import annotations

from pathlib import Path

import pytest

from playbooks.catalog import builtin_catalog, load_catalog
from playbooks.errors import RunbookError
from playbooks.runbooks import Signals, builtin_runbooks, load_runbooks, match_runbooks

FAULTS = {
    "bad_deploy",
    "config_error",
    "memory_leak",
    "traffic_surge",
    "crash_loop",
    "datastore_outage",
    "pool_exhaustion",
    "disk_full",
    "cert_expiry",
    "network_partition",
    "scale_to_zero",
    "node_failure",
    "cache_stampede",
}

V1_IDS = (
    "clear_disk",
    "disable_rate_limiting",
    "drain_node",
    "enable_rate_limiting",
    "failover_datastore",
    "flush_cache",
    "increase_connection_pool",
    "restart_service",
    "revert_config",
    "rollback_deploy",
    "rotate_certificate",
    "scale_in",
    "scale_out",
    "warm_cache",
    "escalate",
    "wait",
)


def test_catalog_index_order_is_unchanged() -> None:
    assert builtin_catalog().ids == V1_IDS


def test_builtin_runbooks_cover_every_fault_type() -> None:
    faults = {r.fault for r in builtin_runbooks().runbooks}
    assert faults >= FAULTS


def top(signals: Signals) -> tuple[str, str | None]:
    first = match_runbooks(builtin_runbooks(), builtin_catalog(), signals)[0]
    return first.action, first.target


@pytest.mark.parametrize(
    ("signals", "expected"),
    [
        (Signals(alerts={"api": ["HighErrorRate"]}, changes={"api": ["deploy"]}), ("rollback_deploy", "api")),
        (
            Signals(alerts={"api": ["HighErrorRate"]}, changes={"api": ["config_change"]}),
            ("revert_config", "api"),
        ),
        (
            Signals(alerts={"api": ["HighMemory"]}, metrics={"api": {"memory": 0.97}}),
            ("restart_service", "api"),
        ),
        (
            Signals(
                alerts={"api": ["TrafficSpike"]}, metrics={"api": {"saturation": 0.95, "traffic_ratio": 4.0}}
            ),
            ("scale_out", "api"),
        ),
        (Signals(alerts={"db": ["DatastoreDown"]}, kinds={"db": "database"}), ("restart_service", "db")),
        (Signals(alerts={"api": ["ConnectionPoolExhausted"]}), ("increase_connection_pool", "api")),
        (Signals(alerts={"api": ["DiskFull"]}), ("clear_disk", "api")),
        (Signals(alerts={"api": ["CertificateExpiring"]}), ("rotate_certificate", "api")),
        (Signals(alerts={"api": ["NodeNotReady"]}), ("drain_node", "api")),
        (Signals(alerts={"c": ["CacheHitRateLow"]}, kinds={"c": "cache"}), ("warm_cache", "c")),
        (Signals(alerts={"api": ["NoReplicas"]}, metrics={"api": {"replicas": 0}}), ("scale_out", "api")),
        (Signals(alerts={}), ("wait", None)),
    ],
)
def test_symptoms_pick_the_expected_first_action(signals: Signals, expected: tuple[str, str | None]) -> None:
    assert top(signals) == expected


def test_metric_condition_must_hold() -> None:
    # HighMemory alone, memory below threshold: the memory-leak runbook does not apply.
    candidates = match_runbooks(
        builtin_runbooks(),
        builtin_catalog(),
        Signals(alerts={"api": ["HighMemory"]}, metrics={"api": {"memory": 0.5}}),
    )
    assert [c.action for c in candidates] == ["wait", "escalate"]


def test_more_specific_runbook_and_step_order_win() -> None:
    signals = Signals(
        alerts={"checkout": ["HighErrorRate"], "db": ["DatastoreDown"]},
        changes={"checkout": ["deploy"]},
        kinds={"checkout": "service", "db": "database"},
    )
    candidates = match_runbooks(builtin_runbooks(), builtin_catalog(), signals)
    pairs = [(c.action, c.target) for c in candidates]
    assert pairs[0] == ("rollback_deploy", "checkout")
    assert pairs.index(("restart_service", "db")) < pairs.index(("failover_datastore", "db"))
    assert pairs[-2:] == [("wait", None), ("escalate", None)]
    assert len(pairs) == len(set(pairs))  # no duplicates
    scores = [c.score for c in candidates]
    assert scores == sorted(scores, reverse=True)
    # deterministic: the same input gives the same list
    assert candidates == match_runbooks(builtin_runbooks(), builtin_catalog(), signals)


def test_action_not_applicable_to_kind_is_skipped() -> None:
    signals = Signals(
        alerts={"fe": ["DiskFull"]}, kinds={"fe": "frontend"}
    )  # clear_disk does not apply to frontends
    actions = [c.action for c in match_runbooks(builtin_runbooks(), builtin_catalog(), signals)]
    assert "clear_disk" not in actions and actions[0] == "restart_service"


def test_user_directory_adds_runbooks(tmp_path: Path) -> None:
    (tmp_path / "runbooks.yaml").write_text(
        "version: 1\nrunbooks:\n  - id: queue_backlog\n    fault: queue_backlog\n    description: backlog\n"
        "    when: {alerts_any: [QueueBacklog]}\n    steps: [{action: scale_out, params: {replicas: 3}}]\n"
    )
    catalog = load_catalog([tmp_path])
    runbooks = load_runbooks(catalog, [tmp_path])
    assert runbooks.get("queue_backlog").steps[0].params == {"replicas": 3}
    first = match_runbooks(runbooks, catalog, Signals(alerts={"q": ["QueueBacklog"]}))[0]
    assert (first.action, first.target, first.params) == ("scale_out", "q", {"replicas": 3})


def test_loader_refuses_unknown_action(tmp_path: Path) -> None:
    (tmp_path / "runbooks.yaml").write_text(
        "version: 1\nrunbooks:\n  - id: x\n    fault: x\n    description: x\n"
        "    when: {alerts_any: [A]}\n    steps: [{action: reboot_world}]\n"
    )
    with pytest.raises(RunbookError, match=r"x\.steps\.0\.action: unknown action 'reboot_world'"):
        load_runbooks(builtin_catalog(), [tmp_path])
