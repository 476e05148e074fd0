"""Card buttons under attack: concurrent clicks, stale copies, tampered values, replays (issue 10: 1, 2, 9).

Every test goes through the real app (signed HTTP, real store) and, where storage decides the outcome,
runs on SQLite and PostgreSQL. A "copy" of a card is the message as it was when a test saved it: Slack
keeps showing an old copy to a client that has not refreshed, and anyone can replay a click from one.
"""

from __future__ import annotations

import copy
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.notify.cards import render_card
from bot.notify.suggest import Ranking, SuggestionView
from bot.sandbox.payloads import block_actions_payload, slash_command_form
from incidents_db.models import ApprovalRequest, AuditEntry, Execution, Incident, Suggestion
from incidents_db.outbox import SeenEvent
from remediation.guardrails.decide import Decision
from remediation.policies import RankedAction
from tests.bot.conftest import ALICE, BOB, CAROL, Harness, generic
from tests.bot.sandbox.conftest import wait_for
from tests.fuzz import examples


def _button(card: dict[str, Any], action_id: str) -> dict[str, Any]:
    for block in card["blocks"]:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == action_id:
                return dict(element)
    raise AssertionError(f"no button {action_id} on the card")


def click_copy(
    h: Harness, user: str, card: dict[str, Any], action_id: str, *, value: str | None = None
) -> Any:
    """Click a button on a saved copy of a card (not what Slack shows now), optionally with another value."""
    ws = h.sandbox.workspace
    channel = ws.channel("incidents", by_name=True)
    try:
        element = _button(card, action_id)
    except AssertionError:
        element = {"action_id": action_id, "text": {"type": "plain_text", "text": "x"}}
    action = {
        "action_id": action_id,
        "block_id": "suggestion-1",
        "text": element.get("text"),
        "type": "button",
        "action_ts": ws.new_ts(),
        "value": element.get("value", "") if value is None else value,
    }
    payload = block_actions_payload(
        ws,
        user=user,
        channel=channel,
        message=copy.deepcopy(card),
        is_ephemeral=False,
        action=action,
        trigger_id=ws.issue_trigger(user),
        response_url=ws.issue_response_url(
            h.driver.sandbox_url, channel=channel["id"], user=user, message_ts=card["ts"], ephemeral=False
        ),
    )
    return h.driver.deliver_interaction(payload, label=action_id)


def _count(h: Harness, model: Any) -> int:
    with h.services.sessions() as s:
        return int(s.execute(sa.select(sa.func.count()).select_from(model)).scalar_one())


def _replies(h: Harness, *users: str) -> list[str]:
    return [text for user in users for text in h.ephemerals(user)]


def _no_internal_error(texts: list[str]) -> None:
    assert not [t for t in texts if "Traceback" in t or "went wrong" in t], texts


def _first_card(h: Harness) -> dict[str, Any]:
    h.post_alert("generic", generic("HighErrorRate", "checkoutservice", value=0.3))
    return h.wait_card("INC-1", lambda b: "restart_service on checkoutservice" in b and "approve:1" in b)


def test_fifty_concurrent_clicks_on_the_first_card_run_once(db_harness: Harness) -> None:
    h = db_harness
    card = _first_card(h)
    users = [ALICE, BOB] * 25
    with ThreadPoolExecutor(max_workers=25) as pool:
        list(pool.map(lambda u: click_copy(h, u, card, "approve:1"), users))
    # every click answers once (the work after the ack may still run when the acks are back)
    wait_for(lambda: len(_replies(h, ALICE, BOB)) >= 50)
    replies = _replies(h, ALICE, BOB)
    _no_internal_error(replies)
    assert len([t for t in replies if "already decided" not in t]) == 1, [
        t for t in replies if "already decided" not in t
    ]
    assert [t for t in replies if "already decided by" in t]
    assert h.world.applied == [("restart_service", "checkoutservice", {})]
    assert _count(h, Execution) == 1 and _count(h, ApprovalRequest) == 1


def test_two_people_clicking_one_copy_get_one_request_and_one_run(db_harness: Harness) -> None:
    h = db_harness
    card = _first_card(h)
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda u: click_copy(h, u, card, "approve:1"), [ALICE, BOB]))
    wait_for(lambda: len(_replies(h, ALICE, BOB)) >= 2)
    h.wait_card("INC-1", lambda b: "executed" in b)
    click_copy(h, CAROL, card, "approve:1")  # later, on the same old copy
    text = h.wait_ephemeral(CAROL, "already decided by")
    assert "succeeded" in text and "/remediate suggest INC-1" in text
    assert h.world.applied == [("restart_service", "checkoutservice", {})]
    assert _count(h, ApprovalRequest) == 1 and _count(h, Execution) == 1


def test_a_click_on_an_old_copy_after_a_rejection_runs_nothing_and_names_who_decided(
    db_harness: Harness,
) -> None:
    h = db_harness
    old = _first_card(h)
    click_copy(h, BOB, old, "reject:1")
    h.wait_ephemeral(BOB, "Rejected restart_service")
    current = h.wait_card("INC-1", lambda b: "rejected" in b)
    assert "approve:1" not in json.dumps(current["blocks"])  # final for this card
    click_copy(h, ALICE, old, "approve:1")
    text = h.wait_ephemeral(ALICE, "already decided by")
    assert f"<@{BOB}>" in text and "UTC" in text and "rejected" in text
    assert h.world.applied == [] and _count(h, ApprovalRequest) == 1
    # trying again is an explicit step: a new generation of the suggestion, with new buttons
    h.command(ALICE, "suggest INC-1")
    fresh = h.wait_card("INC-1", lambda b: '"approve:1"' in b)
    assert _button(fresh, "approve:1")["value"] != _button(old, "approve:1")["value"]
    click_copy(h, ALICE, old, "approve:1")  # the old copy stays decided
    wait_for(lambda: len([t for t in h.ephemerals(ALICE) if "already decided by" in t]) >= 2)
    assert h.world.applied == []
    click_copy(h, ALICE, fresh, "approve:1")
    h.wait_card("INC-1", lambda b: "executed" in b)
    assert h.world.applied == [("restart_service", "checkoutservice", {})]
    with h.services.sessions() as s:
        generations = s.execute(sa.select(Suggestion.generation, Suggestion.request_id)).all()
    assert sorted(g for g, r in generations if r is not None) == [0, 1]


def test_a_click_after_resolve_runs_nothing(db_harness: Harness) -> None:
    h = db_harness
    card = _first_card(h)
    h.command(ALICE, "resolve INC-1")
    h.wait_card("INC-1", lambda b: "Resolved" in b)
    click_copy(h, BOB, card, "approve:1")
    text = h.wait_ephemeral(BOB, "is resolved")
    assert "nothing runs" in text
    assert h.world.applied == [] and _count(h, ApprovalRequest) == 0


def test_tampered_button_values_are_refused_and_nothing_is_proposed(db_harness: Harness) -> None:
    h = db_harness
    card = _first_card(h)
    h.post_alert("generic", generic("HighErrorRate", "cartservice", value=0.4))
    other = h.wait_card("INC-2", lambda b: "approve:1" in b)
    token = json.loads(_button(card, "approve:1")["value"])["s"]
    forged = [
        json.dumps({"i": "INC-1", "a": "restart_service", "t": "checkoutservice", "p": {}}),  # old form
        json.dumps({"i": "INC-1", "a": "scale_out", "t": "kube-system", "p": {"replicas": 9}}),
        json.dumps({"s": token, "t": "kube-system"}),  # a real token with a smuggled target
        json.dumps({"s": "0" * 32}),  # no such suggestion
        _button(other, "approve:1")["value"],  # INC-2's suggestion clicked on INC-1's card
        "not json",
    ]
    for value in forged:
        click_copy(h, ALICE, card, "approve:1", value=value)
    wait_for(
        lambda: len([t for t in h.ephemerals(ALICE) if "not one remediate rendered" in t]) >= len(forged)
    )
    _no_internal_error(h.ephemerals(ALICE))
    assert _count(h, ApprovalRequest) == 0 and h.world.applied == []


def test_a_suggestion_outside_the_topology_is_refused_when_proposed(db_harness: Harness) -> None:
    h = db_harness
    card = _first_card(h)
    with h.services.sessions() as s:  # a row the bot would never render (a tampered store, a bad policy)
        s.add(
            Suggestion(
                incident_id="INC-1", rank=9, action="restart_service", target="kube-system", params={},
                score=0.0, confidence=0.0, risk="medium", reason="", token="f" * 32, fix_key="e" * 64,
                generation=0,
            )
        )  # fmt: skip
        s.commit()
    click_copy(h, CAROL, card, "approve:1", value=json.dumps({"s": "f" * 32}))
    text = h.wait_ephemeral(CAROL, "kube-system")
    assert "not a service of this incident's topology" in text
    assert _count(h, ApprovalRequest) == 0 and h.world.applied == []
    with h.services.sessions() as s:
        denied = s.execute(
            sa.select(AuditEntry).where(AuditEntry.event == "request", AuditEntry.decision == "denied")
        ).scalars()
        assert [e.target for e in denied] == ["kube-system"]


def test_a_replayed_signed_declare_makes_one_incident(db_harness: Harness) -> None:
    h = db_harness
    ws = h.sandbox.workspace
    channel = ws.channel("incidents", by_name=True)
    form = slash_command_form(
        ws,
        user=ALICE,
        channel=channel,
        command="/remediate",
        text="declare checkoutservice replayed once",
        response_url=ws.issue_response_url(h.driver.sandbox_url, channel=channel["id"], user=ALICE),
        trigger_id=ws.issue_trigger(ALICE),
    )
    body, stamp = urlencode(form), int(time.time())
    first = h.driver.send(body, "application/x-www-form-urlencoded", timestamp=stamp)
    replay = h.driver.send(body, "application/x-www-form-urlencoded", timestamp=stamp)
    assert first.status == 200 and replay.status == 200  # the replay is acked, then dropped
    h.card_for("INC-1")
    h.command(ALICE, "declare cartservice after the replay")
    h.card_for("INC-2")
    with h.services.sessions() as s:
        titles = dict(s.execute(sa.select(Incident.id, Incident.title)).all())
    assert titles == {"INC-1": "replayed once", "INC-2": "after the replay"}
    with h.services.sessions() as s:  # one fingerprint per distinct request, none for the replay
        seen = s.execute(sa.select(SeenEvent.event_id).where(SeenEvent.event_id.like("req:%"))).scalars()
        assert len(list(seen)) == 2


_KEYS = st.sampled_from(["s", "a", "t", "p", "i", "r", "x"])
_VALUES = st.none() | st.booleans() | st.integers() | st.text(max_size=40) | st.just("kube-system")


def test_fuzzed_button_values_never_fail_or_propose(harness: Harness) -> None:
    h = harness
    card = _first_card(h)
    token = json.loads(_button(card, "approve:1")["value"])["s"]
    values = (
        st.text(max_size=80)
        | st.dictionaries(_KEYS, _VALUES, max_size=4).map(json.dumps)
        | st.dictionaries(_KEYS, _VALUES, min_size=1, max_size=3).map(lambda d: json.dumps({"s": token, **d}))
        | st.text(alphabet="0123456789abcdef", min_size=1, max_size=40).map(lambda t: json.dumps({"s": t}))
    )
    action_ids = st.sampled_from(["approve:1", "reject:1", "why:1", "why:99", "approve:0"]) | st.text(
        max_size=20
    )

    @settings(
        max_examples=examples(40),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(value=values, action_id=action_ids)
    def one(value: str, action_id: str) -> None:
        if json.dumps({"s": token}) == value and not action_id.startswith("why"):
            return  # the one real approve/reject value: it would (rightly) propose
        delivery = click_copy(h, BOB, card, action_id, value=value)
        assert delivery.status is not None and delivery.status < 500, delivery.summary()

    one()

    def whys() -> int:
        return len([t for t in h.ephemerals(BOB) if "Why #1" in t])

    before = whys()
    click_copy(h, BOB, card, "why:1")  # queued behind the fuzzed clicks: its answer means they were handled
    wait_for(lambda: whys() > before)
    _no_internal_error(h.ephemerals(BOB))
    assert _count(h, ApprovalRequest) == 0 and h.world.applied == []


def test_a_card_shows_each_suggestions_parameters_escaped() -> None:
    ranked = RankedAction("scale_out", "frontend", {"replicas": 2, "note": "<!channel>"}, risk="medium")
    view = SuggestionView(1, ranked, Decision(True, "ok", "allowed"), None, "a" * 32)
    record = {
        "id": "INC-7", "title": "t", "severity": "sev2", "opened_at": "2026-12-01T10:00:00Z", "events": [],
    }  # fmt: skip
    _, blocks = render_card(Ranking(record, BOB, (view,)), policy_name="p", now=datetime.now(UTC))
    line = next(b["text"]["text"] for b in blocks if b.get("block_id") == "text-1")
    assert "with note=&lt;!channel&gt;, replicas=2" in line
    assert _button({"blocks": blocks}, "approve:1")["value"] == json.dumps(
        {"s": "a" * 32}, separators=(",", ":")
    )
