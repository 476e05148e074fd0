"""Canary remediation through the running app and the Slack sandbox (docs/verification.md, "Canary first").

A canary that fails stops there and undoes itself; one that passes asks for the second approval the
catalog wants and then rolls out to the rest; a bot restart mid-canary resumes once; the "Canary first"
button is guarded like every approval (an unauthorised or forged click runs and arms nothing).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.app.requests import decide_request
from bot.app.verify import verify_due
from bot.services import Services
from incidents_db import canaries, verifications
from incidents_db.models import ApprovalRequest, AuditEntry
from remediation.approvals import service as approvals
from remediation.verification import canary
from remediation.verification import service as verification
from tests.bot.app.test_clicks_attack import click_copy
from tests.bot.conftest import ALICE, BOB, BOT, CAROL, Harness, _running, generic
from tests.bot.sandbox.conftest import wait_for


@pytest.fixture
def harness(tmp_path: Path, migrated_sqlite_url: str) -> Iterator[Harness]:
    """The running app and sandbox; restarts and rollbacks are judged at once (settle time 0 s)."""
    yield from _running(
        tmp_path, migrated_sqlite_url, verify_settle_s={"restart_service": 0.0, "rollback_deploy": 0.0}
    )


def _later(services: Services, minutes: float, replica: str) -> Services:
    now = services.clock()
    return dataclasses.replace(services, clock=lambda: now + timedelta(minutes=minutes), replica=replica)


def _incident(h: Harness, service: str) -> str:
    status, body = h.post_alert("generic", generic("HighErrorRate", service, value=0.3))
    assert status == 200, body
    return str((body["created"] or body["incidents"])[0])


def _canary_first(h: Harness, incident_id: str, action: str, target: str, user: str = ALICE) -> str:
    """Propose ``action`` and approve it with "canary first" as the click does; wait for the canary run."""
    with h.services.sessions() as s:
        view = approvals.propose(db_session=s, guard=h.services.guard, action=action, target=target,
                                 params={}, requester=BOT, incident_id=incident_id)  # fmt: skip

        def arm(db: Any) -> None:
            canary.arm(db_session=db, guard=h.services.guard, request_id=view.id, share=0.25, by=user,
                       topology=h.services.topology)  # fmt: skip

        decide_request(h.services, s, user=user, verb="approve", request_id=view.id, also=arm)
    wait_for(lambda: _scheduled(h, view.id))
    return view.id


def _scheduled(h: Harness, request_id: str) -> bool:
    with h.services.sessions() as s:
        row = verifications.get(db_session=s, request_id=request_id)
        return row is not None and row.verify_at is not None


def _applied(h: Harness, action: str) -> list[dict[str, Any]]:
    return [p for a, _, p in h.world.applied if a == action]


def _audit(h: Harness, request_id: str) -> list[tuple[str, str]]:
    with h.services.sessions() as s:
        rows = s.execute(
            sa.select(AuditEntry.event, AuditEntry.decision)
            .where(AuditEntry.request_id == request_id)
            .order_by(AuditEntry.seq)
        )
        return [(e, d) for e, d in rows]


def _state(h: Harness, request_id: str) -> str:
    with h.services.sessions() as s:
        return approvals.get(db_session=s, request_id=request_id).state


def test_a_failed_canary_stops_the_rest_and_undoes_itself(harness: Harness) -> None:
    h = harness
    incident_id = _incident(h, "checkoutservice")
    request_id = _canary_first(h, incident_id, "restart_service", "checkoutservice")
    assert _applied(h, "restart_service") == [{"canary_share": 0.25}]  # one replica of two, not all
    done = verify_due(h.services)  # the alert still fires: the canary did not help
    assert [(d.request_id, d.judgement.verdict) for d in done] == [(request_id, "ineffective")]
    step = done[0].canary
    assert step is not None and not step.passed and step.undo_request_id and step.rest_request_id is None
    wait_for(lambda: _state(h, step.undo_request_id or "") == "succeeded")
    assert _applied(h, "restart_service") == [
        {"canary_share": 0.25},
        {"canary_share": 0.25, "canary_undo": True},
    ]  # undone on the canary replica only; the rest never ran
    with h.services.sessions() as s:
        row = canaries.get(db_session=s, request_id=request_id)
        assert row is not None and (row.state, row.verdict) == ("failed", "ineffective")
    assert ("canary", "info") in _audit(h, request_id)
    assert ("canary_follow_up", "allowed") in _audit(h, step.undo_request_id or "")
    card = h.wait_card(incident_id, lambda blocks: "canary of" in blocks)
    assert "canary failed" in json.dumps(card["blocks"])
    thread = wait_for(lambda: [m for m in h.replies(card["ts"]) if "Canary" in m.get("text", "")])
    assert "the rest is not run" in thread[0]["text"]
    for minutes, replica in ((20, "replica-2"), (30, "replica-3")):  # later ticks: nothing runs again
        verify_due(_later(h.services, minutes, replica))
    assert len(_applied(h, "restart_service")) == 2


def test_a_canary_that_passes_waits_for_the_second_approval_then_rolls_out(harness: Harness) -> None:
    h = harness
    incident_id = _incident(h, "frontend")
    request_id = _canary_first(h, incident_id, "rollback_deploy", "frontend")
    assert _applied(h, "rollback_deploy") == [{"canary_share": 0.25}]
    # its alert cleared (a share healing is enough: partial passes a canary too)
    status, _ = h.post_alert("generic", generic("HighErrorRate", "frontend", status="resolved"))
    assert status == 200
    done = verify_due(h.services)
    step = done[0].canary
    assert step is not None and step.passed and step.waits_for_approval and step.rest_request_id
    rest = step.rest_request_id
    assert _state(h, rest) == "pending" and len(_applied(h, "rollback_deploy")) == 1  # catalog: 2nd approval
    h.command(BOB, f"approve {rest}")
    wait_for(lambda: _state(h, rest) == "succeeded")
    assert _applied(h, "rollback_deploy") == [{"canary_share": 0.25}, {}]  # then the whole workload
    with h.services.sessions() as s:
        row = canaries.get(db_session=s, request_id=request_id)
        assert row is not None and (row.state, row.rest_request_id) == ("passed", rest)


def test_a_restart_mid_canary_resumes_once(harness: Harness) -> None:
    h = harness
    incident_id = _incident(h, "checkoutservice")
    request_id = _canary_first(h, incident_id, "restart_service", "checkoutservice")
    status, _ = h.post_alert("generic", generic("HighErrorRate", "checkoutservice", status="resolved"))
    assert status == 200
    one = _later(h.services, 1, "replica-1")  # claims the verdict and stops (the bot restarts)
    with one.sessions() as s:
        assert verifications.claim_due(db_session=s, now=one.clock(), owner="replica-1", lease_s=60) == [
            request_id
        ]
    assert verify_due(_later(h.services, 1.5, "replica-2")) == []  # the claim still holds
    two = _later(h.services, 3, "replica-2")  # judges it, approves the rest with it, stops before the run
    with two.sessions() as s:
        assert verifications.claim_due(db_session=s, now=two.clock(), owner="replica-2", lease_s=60)
        done = verification.verify_one(
            db_session=s, guard=two.guard, request_id=request_id, owner="replica-2", topology=two.topology
        )
    assert done is not None and done.canary is not None and done.canary.passed
    rest = done.canary.rest_request_id or ""
    assert _state(h, rest) == "approved" and not done.canary.waits_for_approval  # restart: no 2nd approval
    verify_due(_later(h.services, 5, "replica-3"))  # the restarted bot finds the rest and runs it
    wait_for(lambda: _state(h, rest) == "succeeded")
    for minutes, replica in ((6, "replica-1"), (7, "replica-3"), (8, "replica-4")):
        verify_due(_later(h.services, minutes, replica))
    assert _applied(h, "restart_service") == [{"canary_share": 0.25}, {}]  # the canary, the rest: once each


def _button_n(card: dict[str, Any], verb: str, text: str) -> str:
    for block in card["blocks"]:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element["action_id"].startswith(verb + ":"):
                n = element["action_id"].split(":")[1]
                shown = next(b for b in card["blocks"] if b.get("block_id") == f"text-{n}")
                if text in shown["text"]["text"]:
                    return str(element["action_id"])
    raise AssertionError(f"no {verb} button for {text}")


def test_the_canary_first_button_is_guarded_like_every_approval(harness: Harness) -> None:
    h = harness
    h.post_alert("generic", generic("HighErrorRate", "productcatalogservice", value=0.3))
    card = h.wait_card("INC-1", lambda b: "approve_canary:" in b)
    button = _button_n(card, "approve_canary", "on productcatalogservice")
    h.click(ALICE, card, button)  # on call for the shop team, which does not own productcatalogservice
    h.wait_ephemeral(ALICE, "may not approve")
    with h.services.sessions() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(canaries.Canary)).scalar_one() == 0
        states = s.execute(sa.select(ApprovalRequest.state)).scalars().all()
    assert "approved" not in states and h.world.applied == []
    # a forged "canary first" on a suggestion whose action cannot canary (the card never offered it)
    plain = next(
        b["elements"][0]["action_id"]
        for b in card["blocks"]
        if b.get("type") == "actions"
        and b["elements"][0]["action_id"].startswith("approve:")
        and f"approve_canary:{b['elements'][0]['action_id'].split(':')[1]}" not in json.dumps(b)
    )
    n = plain.split(":")[1]
    click_copy(h, CAROL, card, f"approve_canary:{n}", value=_value(card, plain))
    h.wait_ephemeral(CAROL, "cannot run as a canary")
    with h.services.sessions() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(canaries.Canary)).scalar_one() == 0
        states = s.execute(sa.select(ApprovalRequest.state)).scalars().all()
    assert "approved" not in states and h.world.applied == []
    # the dry run says what "Canary first" would do
    h.click(CAROL, card, f"dryrun:{button.split(':')[1]}")
    assert "canary_share" in h.wait_ephemeral(CAROL, "with Canary first")
    # the lead's real click arms the canary in the approval and runs it on one replica only
    h.click(CAROL, card, button)
    wait_for(lambda: h.world.applied)
    assert [p for _, t, p in h.world.applied if t == "productcatalogservice"] == [{"canary_share": 0.25}]


def _value(card: dict[str, Any], action_id: str) -> str:
    for block in card["blocks"]:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element["action_id"] == action_id:
                return str(element["value"])
    raise AssertionError(action_id)


def test_a_refused_undo_if_harmful_click_arms_nothing(harness: Harness) -> None:
    """Like "canary first", "undo automatically if harmful" is written only with an allowed approval."""
    h = harness
    h.post_alert("generic", generic("HighErrorRate", "productcatalogservice", value=0.3))
    card = h.wait_card("INC-1", lambda b: "approve:" in b)
    plain = _button_n(card, "approve", "on productcatalogservice")
    undo = f"approve_undo:{plain.split(':')[1]}"
    # on call for the shop team, which does not own productcatalogservice (sent as the button's click)
    click_copy(h, ALICE, card, undo, value=_value(card, plain))
    h.wait_ephemeral(ALICE, "may not approve")
    with h.services.sessions() as s:
        armed = s.execute(sa.select(verifications.Verification.auto_undo)).scalars().all()
        states = s.execute(sa.select(ApprovalRequest.state)).scalars().all()
    assert True not in armed and "approved" not in states and h.world.applied == []
    click_copy(h, CAROL, card, undo, value=_value(card, plain))  # the lead's allowed click arms it
    wait_for(lambda: h.world.applied)
    with h.services.sessions() as s:
        armed = s.execute(sa.select(verifications.Verification.auto_undo)).scalars().all()
    assert armed == [True]
