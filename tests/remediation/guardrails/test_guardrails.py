"""Table-driven guardrail cases against the shipped example config and the built-in catalog."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from playbooks.catalog import builtin_catalog
from remediation.errors import GuardrailConfigError
from remediation.guardrails.config import load_rbac
from remediation.guardrails.decide import Context, Run, Switches, decide
from remediation.guardrails.mask import action_mask, decode, flat_size
from remediation.guardrails.rbac import eligible_approvers

ALICE, BOB, CAROL, DAVE, ERIN, FRANK = (
    "U024BE7LH",
    "U02B3C4D5",
    "U03C4D5E6",
    "U04D5E6F7",
    "U05E6F7G8",
    "U06F7G8H9",
)
STORAGE = "U07G8H9J0"  # known only through the S0STORAGE group
TUESDAY = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
FRIDAY_EVENING = datetime(2026, 3, 6, 18, 0, tzinfo=UTC)
YEAR_END = datetime(2026, 12, 28, 10, 0, tzinfo=UTC)
KINDS = {
    "checkoutservice": "service",
    "frontend": "frontend",
    "redis-cart": "cache",
    "mongodb-rate": "database",
}


def ctx(**kw: Any) -> Context:
    base = Context(config=load_rbac(), catalog=builtin_catalog(), now=TUESDAY, service_kinds=KINDS)
    return replace(base, **kw)


def runs(action: str, target: str | None, n: int, ago_s: int = 60) -> tuple[Run, ...]:
    return tuple(Run(action, target, TUESDAY - timedelta(seconds=ago_s + i)) for i in range(n))


# (case id, action, target, params, actor, context overrides, allowed, code)
CASES: list[tuple[str, str, str | None, dict[str, Any], str | None, dict[str, Any], bool, str]] = [
    ("oncall requests medium on owned", "restart_service", "checkoutservice", {}, ALICE, {}, True, "ok"),
    ("oncall requests low on owned", "scale_out", "checkoutservice", {"replicas": 2}, BOB, {}, True, "ok"),
    ("oncall may request high on owned", "drain_node", "checkoutservice", {}, ALICE, {}, True, "ok"),
    ("oncall not on unowned service", "restart_service", "redis-cart", {}, ALICE, {}, False, "not_permitted"),
    ("group member owns storage", "restart_service", "redis-cart", {}, STORAGE, {}, True, "ok"),
    (
        "group member not on payments",
        "restart_service",
        "checkoutservice",
        {},
        STORAGE,
        {},
        False,
        "not_permitted",
    ),
    ("lead requests anywhere", "failover_datastore", "mongodb-rate", {}, CAROL, {}, True, "ok"),
    ("viewer may not request", "restart_service", "checkoutservice", {}, FRANK, {}, False, "not_permitted"),
    (
        "unknown user refused",
        "restart_service",
        "checkoutservice",
        {},
        "UNOBODY99",
        {},
        False,
        "unknown_user",
    ),
    (
        "display name is not an identity",
        "restart_service",
        "checkoutservice",
        {},
        "alice",
        {},
        False,
        "unknown_user",
    ),
    ("no actor refused", "restart_service", "checkoutservice", {}, None, {}, False, "unknown_user"),
    ("unknown action", "reboot_datacenter", "checkoutservice", {}, CAROL, {}, False, "unknown_action"),
    ("service action needs target", "restart_service", None, {}, CAROL, {}, False, "bad_target"),
    ("global action takes no target", "wait", "checkoutservice", {}, CAROL, {}, False, "bad_target"),
    ("global action fine", "escalate", None, {}, ALICE, {}, True, "ok"),
    ("kind mismatch", "flush_cache", "checkoutservice", {}, CAROL, {}, False, "not_applicable"),
    (
        "failover not for plain service",
        "failover_datastore",
        "checkoutservice",
        {},
        CAROL,
        {},
        False,
        "not_applicable",
    ),
    ("param above max", "scale_out", "checkoutservice", {"replicas": 50}, ALICE, {}, False, "bad_params"),
    ("param wrong type", "scale_out", "checkoutservice", {"replicas": "two"}, ALICE, {}, False, "bad_params"),
    ("unknown param", "restart_service", "checkoutservice", {"force": True}, ALICE, {}, False, "bad_params"),
    (
        "injection in int param",
        "increase_connection_pool",
        "checkoutservice",
        {"size": "5; rm -rf /"},
        ALICE,
        {},
        False,
        "bad_params",
    ),
    (
        "recurring freeze blocks oncall",
        "restart_service",
        "checkoutservice",
        {},
        ALICE,
        {"now": FRIDAY_EVENING},
        False,
        "freeze",
    ),
    (
        "lead overrides recurring freeze",
        "restart_service",
        "checkoutservice",
        {},
        CAROL,
        {"now": FRIDAY_EVENING},
        True,
        "ok",
    ),
    ("freeze exempts escalate", "escalate", None, {}, ALICE, {"now": FRIDAY_EVENING}, True, "ok"),
    (
        "one-off per-service freeze",
        "restart_service",
        "checkoutservice",
        {},
        ALICE,
        {"now": YEAR_END},
        False,
        "freeze",
    ),
    (
        "one-off freeze not on other service",
        "restart_service",
        "frontend",
        {},
        ALICE,
        {"now": YEAR_END},
        True,
        "ok",
    ),
    (
        "manual global freeze",
        "restart_service",
        "frontend",
        {},
        ALICE,
        {"switches": Switches(frozen=frozenset({"*"}))},
        False,
        "freeze",
    ),
    (
        "manual service freeze",
        "restart_service",
        "frontend",
        {},
        ALICE,
        {"switches": Switches(frozen=frozenset({"frontend"}))},
        False,
        "freeze",
    ),
    (
        "manual freeze elsewhere",
        "restart_service",
        "checkoutservice",
        {},
        ALICE,
        {"switches": Switches(frozen=frozenset({"frontend"}))},
        True,
        "ok",
    ),
    (
        "admin overrides manual freeze",
        "restart_service",
        "frontend",
        {},
        ERIN,
        {"switches": Switches(frozen=frozenset({"*"}))},
        True,
        "ok",
    ),
    (
        "global kill switch",
        "restart_service",
        "frontend",
        {},
        CAROL,
        {"switches": Switches(killed=frozenset({"*"}))},
        False,
        "kill_switch",
    ),
    (
        "service kill switch",
        "restart_service",
        "frontend",
        {},
        CAROL,
        {"switches": Switches(killed=frozenset({"frontend"}))},
        False,
        "kill_switch",
    ),
    (
        "kill switch elsewhere",
        "restart_service",
        "checkoutservice",
        {},
        CAROL,
        {"switches": Switches(killed=frozenset({"frontend"}))},
        True,
        "ok",
    ),
    (
        "kill switch spares escalate",
        "escalate",
        None,
        {},
        ALICE,
        {"switches": Switches(killed=frozenset({"*"}))},
        True,
        "ok",
    ),
    # approve stage
    (
        "self approval refused",
        "restart_service",
        "checkoutservice",
        {},
        ALICE,
        {"stage": "approve", "requester": ALICE},
        False,
        "self_approval",
    ),
    (
        "peer approves medium",
        "restart_service",
        "checkoutservice",
        {},
        BOB,
        {"stage": "approve", "requester": ALICE},
        True,
        "ok",
    ),
    (
        "oncall may not approve high",
        "drain_node",
        "checkoutservice",
        {},
        BOB,
        {"stage": "approve", "requester": ALICE},
        False,
        "not_permitted",
    ),
    (
        "lead approves high",
        "drain_node",
        "checkoutservice",
        {},
        CAROL,
        {"stage": "approve", "requester": ALICE},
        True,
        "ok",
    ),
    (
        "same approver twice",
        "drain_node",
        "checkoutservice",
        {},
        CAROL,
        {"stage": "approve", "requester": ALICE, "approvals": (CAROL,)},
        False,
        "already_approved",
    ),
    (
        "viewer may not approve",
        "restart_service",
        "checkoutservice",
        {},
        FRANK,
        {"stage": "approve", "requester": ALICE},
        False,
        "not_permitted",
    ),
    (
        "oncall cannot approve unowned",
        "restart_service",
        "redis-cart",
        {},
        ALICE,
        {"stage": "approve", "requester": CAROL},
        False,
        "not_permitted",
    ),
    (
        "freeze blocks approval too",
        "restart_service",
        "checkoutservice",
        {},
        BOB,
        {"stage": "approve", "requester": ALICE, "now": FRIDAY_EVENING},
        False,
        "freeze",
    ),
    # execute stage
    (
        "execute without approval",
        "restart_service",
        "checkoutservice",
        {},
        None,
        {"stage": "execute", "requester": ALICE},
        False,
        "needs_approval",
    ),
    (
        "execute with one approval",
        "restart_service",
        "checkoutservice",
        {},
        None,
        {"stage": "execute", "requester": ALICE, "approvals": (BOB,)},
        True,
        "ok",
    ),
    (
        "requester approval never counts",
        "restart_service",
        "checkoutservice",
        {},
        None,
        {"stage": "execute", "requester": ALICE, "approvals": (ALICE,)},
        False,
        "needs_approval",
    ),
    (
        "high needs two",
        "drain_node",
        "checkoutservice",
        {},
        None,
        {"stage": "execute", "requester": ALICE, "approvals": (CAROL,)},
        False,
        "needs_approval",
    ),
    (
        "high with two leads",
        "drain_node",
        "checkoutservice",
        {},
        None,
        {"stage": "execute", "requester": ALICE, "approvals": (CAROL, DAVE)},
        True,
        "ok",
    ),
    (
        "ineligible approval ignored",
        "drain_node",
        "checkoutservice",
        {},
        None,
        {"stage": "execute", "requester": ALICE, "approvals": (CAROL, BOB)},
        False,
        "needs_approval",
    ),
    (
        "freeze at execute without override",
        "restart_service",
        "checkoutservice",
        {},
        None,
        {"stage": "execute", "requester": ALICE, "approvals": (BOB,), "now": FRIDAY_EVENING},
        False,
        "freeze",
    ),
    (
        "freeze at execute, lead approved",
        "restart_service",
        "checkoutservice",
        {},
        None,
        {"stage": "execute", "requester": ALICE, "approvals": (CAROL,), "now": FRIDAY_EVENING},
        True,
        "ok",
    ),
    (
        "catalog rate limit",
        "restart_service",
        "checkoutservice",
        {},
        None,
        {
            "stage": "execute",
            "requester": ALICE,
            "approvals": (BOB,),
            "recent_runs": runs("restart_service", "checkoutservice", 3),
        },
        False,
        "rate_limit",
    ),
    (
        "old runs do not count",
        "restart_service",
        "checkoutservice",
        {},
        None,
        {
            "stage": "execute",
            "requester": ALICE,
            "approvals": (BOB,),
            "recent_runs": runs("restart_service", "checkoutservice", 3, ago_s=7200),
        },
        True,
        "ok",
    ),
    (
        "config rate limit per day",
        "failover_datastore",
        "mongodb-rate",
        {},
        None,
        {
            "stage": "execute",
            "requester": CAROL,
            "approvals": (DAVE, ERIN),
            "recent_runs": runs("failover_datastore", "mongodb-rate", 1, ago_s=7200),
        },
        False,
        "rate_limit",
    ),
    (
        "concurrency global",
        "restart_service",
        "checkoutservice",
        {},
        None,
        {
            "stage": "execute",
            "requester": ALICE,
            "approvals": (BOB,),
            "running": runs("clear_disk", "a", 1) + runs("clear_disk", "b", 1) + runs("clear_disk", "c", 1),
        },
        False,
        "blast_radius",
    ),
    (
        "concurrency per service",
        "restart_service",
        "checkoutservice",
        {},
        None,
        {
            "stage": "execute",
            "requester": ALICE,
            "approvals": (BOB,),
            "running": runs("clear_disk", "checkoutservice", 1),
        },
        False,
        "blast_radius",
    ),
    (
        "scale in over half",
        "scale_in",
        "checkoutservice",
        {"replicas": 3},
        None,
        {"stage": "execute", "requester": ALICE, "approvals": (BOB,), "replicas": {"checkoutservice": 4}},
        False,
        "blast_radius",
    ),
    (
        "scale in half ok",
        "scale_in",
        "checkoutservice",
        {"replicas": 2},
        None,
        {"stage": "execute", "requester": ALICE, "approvals": (BOB,), "replicas": {"checkoutservice": 4}},
        True,
        "ok",
    ),
    (
        "one replica may always be touched",
        "drain_node",
        "checkoutservice",
        {},
        None,
        {
            "stage": "execute",
            "requester": ALICE,
            "approvals": (CAROL, DAVE),
            "replicas": {"checkoutservice": 1},
        },
        True,
        "ok",
    ),
    (
        "scale out runaway factor",
        "scale_out",
        "checkoutservice",
        {"replicas": 10},
        None,
        {"stage": "execute", "requester": ALICE, "approvals": (BOB,), "replicas": {"checkoutservice": 2}},
        False,
        "blast_radius",
    ),
    (
        "scale out from zero",
        "scale_out",
        "checkoutservice",
        {"replicas": 2},
        None,
        {"stage": "execute", "requester": ALICE, "approvals": (BOB,), "replicas": {"checkoutservice": 0}},
        True,
        "ok",
    ),
    # plan stage (masks)
    ("plan allowed", "restart_service", "checkoutservice", {}, None, {"stage": "plan"}, True, "ok"),
    (
        "plan respects kill",
        "restart_service",
        "checkoutservice",
        {},
        None,
        {"stage": "plan", "switches": Switches(killed=frozenset({"*"}))},
        False,
        "kill_switch",
    ),
    (
        "plan respects freeze (no override)",
        "restart_service",
        "checkoutservice",
        {},
        None,
        {"stage": "plan", "now": FRIDAY_EVENING},
        False,
        "freeze",
    ),
]


@pytest.mark.parametrize(
    ("action", "target", "params", "actor", "overrides", "allowed", "code"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_decision_table(
    action: str,
    target: str | None,
    params: dict[str, Any],
    actor: str | None,
    overrides: dict[str, Any],
    allowed: bool,
    code: str,
) -> None:
    decision = decide(action, target, params, actor, ctx(**overrides))
    assert (decision.allowed, decision.code) == (allowed, code), decision.reason
    assert decision.reason  # always a sentence for a person
    assert decision.allowed == (decision.code == "ok")


def test_table_has_at_least_forty_cases() -> None:
    assert len(CASES) >= 40


def test_decision_names_approvers_and_count() -> None:
    decision = decide("drain_node", "checkoutservice", {}, ALICE, ctx())
    assert decision.approvals_required == 2
    assert set(decision.approvers) == {CAROL, DAVE, ERIN}  # leads and admins approve high; oncall does not
    assert ALICE not in decision.approvers
    assert "2 approval" in decision.reason


def test_requester_never_among_approvers() -> None:
    config = load_rbac()
    from playbooks.models import Risk

    for risk in Risk:
        assert CAROL not in eligible_approvers(config, risk, "checkoutservice", CAROL)


def test_disabled_user_has_no_roles(tmp_path: Path) -> None:
    text = (Path(load_rbac.__code__.co_filename).parent / "default_rbac.yaml").read_text()
    text = text.replace(
        "U03C4D5E6: {name: carol, roles: [sre-lead]}",
        "U03C4D5E6: {name: carol, roles: [sre-lead], disabled: true}",
    )
    path = tmp_path / "rbac.yaml"
    path.write_text(text)
    decision = decide("restart_service", "checkoutservice", {}, CAROL, ctx(config=load_rbac(path)))
    assert decision.code == "unknown_user"


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("users:\n  alice: {roles: [oncall]}\n", "Slack user id"),
        ('roles: {oncall: x}\nusers:\n  "U111\\n": {roles: [oncall]}\n', "Slack user id"),
        ('roles: {oncall: x}\ngroups:\n  "S111\\n": {roles: [oncall]}\n', "user-group id"),
        ('roles: {oncall: x}\ngroups:\n  S111: {members: ["U111\\n"], roles: [oncall]}\n', "Slack user ids"),
        ("roles: {oncall: x}\nusers:\n  U111: {roles: [wizard]}\n", "unknown role 'wizard'"),
        ("approvals_required: {low: 0, medium: 1, high: 1, critical: 1}\n", "at least 1 approval"),
        ("approvals_required: {low: 1}\n", "missing medium"),
        (
            "freeze:\n  windows:\n    - {name: x, start: 2026-01-02T00:00:00Z, end: 2026-01-01T00:00:00Z}\n",
            "end must be after start",
        ),
        (
            "freeze:\n  windows:\n    - {name: x, every: {days: [mon], start: '01:00', end: '02:00', tz: Mars/Base}}\n",
            "unknown time zone",
        ),
        ("bogus: 1\n", "bogus"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, snippet: str, expected: str) -> None:
    path = tmp_path / "rbac.yaml"
    path.write_text("version: 1\n" + snippet)
    with pytest.raises(GuardrailConfigError, match=expected):
        load_rbac(path)


def test_overnight_recurring_window(tmp_path: Path) -> None:
    path = tmp_path / "rbac.yaml"
    path.write_text(
        "version: 1\nroles: {oncall: x}\nusers: {U111: {roles: [oncall]}}\n"
        "policies: [{name: p, roles: [oncall], request: [low, medium]}]\n"
        "freeze: {windows: [{name: night, every: {days: [mon], start: '22:00', end: '06:00', tz: Europe/Berlin}}]}\n"
    )
    config = load_rbac(path)
    monday_late = datetime(2026, 3, 2, 22, 30, tzinfo=UTC)  # 23:30 Berlin, Monday
    tuesday_early = datetime(2026, 3, 3, 4, 0, tzinfo=UTC)  # 05:00 Berlin, still Monday's window
    tuesday_late = datetime(2026, 3, 3, 22, 30, tzinfo=UTC)  # Tuesday has no window
    for now, frozen in [(monday_late, True), (tuesday_early, True), (tuesday_late, False)]:
        decision = decide("clear_disk", "x", {}, "U111", ctx(config=config, now=now, service_kinds={}))
        assert (decision.code == "freeze") == frozen, now


def test_mask_matches_decide_and_layout() -> None:
    catalog = builtin_catalog()
    services = ["checkoutservice", "redis-cart", "mongodb-rate"]
    context = ctx(stage="plan", switches=Switches(killed=frozenset({"redis-cart"})))
    mask = action_mask(services, catalog, context)
    assert mask.dtype == np.int8 and mask.shape == (flat_size(services, catalog),)
    assert mask.shape[0] == 3 * len(catalog.service_actions) + len(catalog.global_actions)
    for i, bit in enumerate(mask):
        action, target = decode(i, services, catalog)
        assert bit == int(decide(action, target, {}, None, context).allowed)
    cache_row = mask[len(catalog.service_actions) : 2 * len(catalog.service_actions)]
    assert cache_row.sum() == 0  # killed service: nothing
    flush = catalog.service_actions.index("flush_cache")
    assert mask[flush] == 0  # not a cache
    assert mask[2 * len(catalog.service_actions) + catalog.service_actions.index("failover_datastore")] == 1
    assert mask[-len(catalog.global_actions) :].all()  # wait and escalate always possible


def test_mask_from_other_stage_is_plan() -> None:
    catalog = builtin_catalog()
    a = action_mask(["frontend"], catalog, ctx(stage="request"))
    b = action_mask(["frontend"], catalog, ctx(stage="plan"))
    assert (a == b).all()
