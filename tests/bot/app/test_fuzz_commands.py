"""Fuzzing what people type: the grammar, and `/remediate` and @mentions through the running app.

Any text gets an ack and a reply; a refusal is one line (or the usage help), never a traceback nor
"Something went wrong" (an internal error); nothing already in the store is lost. Interaction payloads
the app does not use (shortcuts, view submissions, view_closed, message actions) are acked and ignored.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app.errors import UsageError
from bot.app.grammar import USAGE, parse
from incidents_db import outbox
from incidents_db.models import Incident
from tests.bot.conftest import ALICE, BOB, CAROL, DAVE, Harness, generic
from tests.bot.sandbox.conftest import wait_for
from tests.fuzz import JSON_VALUES, SCALARS, examples

APP_FUZZ = settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
VERBS = sorted(USAGE)
WORDS = st.sampled_from(
    [
        "INC-1",
        "INC-404",
        "REQ-1",
        "checkoutservice",
        "on",
        "off",
        "1",
        "11",
        "<@U0REMBOT01>",
        "<!channel>",
        "<https://evil.example|re-auth>",
        "`x`",
        "*bold*",
        "a" * 250,
        "INC-1\n",
        "ÿ",
        "🙂",
        "",
    ]
)
TEXTS = st.one_of(
    st.text(max_size=60),
    st.tuples(st.sampled_from(VERBS), st.lists(WORDS | st.text(max_size=12), max_size=4)).map(
        lambda p: " ".join([p[0], *p[1]])
    ),
)
KNOWN_VERBS = {*USAGE, "free"}


@settings(max_examples=examples(200), deadline=None)
@given(TEXTS)
def test_the_grammar_parses_or_refuses_with_the_usage_line(text: str) -> None:
    try:
        command = parse(text)
    except UsageError as exc:
        message = str(exc)
        assert "\n" not in message, message
        assert "Usage: `" in message or "control characters" in message, message
    else:
        assert command.verb in KNOWN_VERBS
        if command.verb in ("suggest", "similar", "status", "resolve", "postmortem", "approve", "reject"):
            assert len(command.args) == 1 or command.verb == "postmortem"
            assert command.args[0].strip() == command.args[0] != ""


def _incident_ids(harness: Harness) -> set[str]:
    with harness.services.sessions() as s:
        return {i for (i,) in s.query(Incident.id).all()}


def _reply(harness: Harness, user: str, ephemerals_before: int, messages_before: set[str]) -> str:
    """Wait for the reply to `user`: a new ephemeral, or a new channel message addressed to them."""

    def found() -> str | None:
        ephemerals = harness.ephemerals(user)
        if len(ephemerals) > ephemerals_before:
            return ephemerals[-1]
        for message in list(harness.sandbox.workspace.messages.get(harness.incidents_channel, [])):
            text = getattr(message, "text", "")
            if getattr(message, "ts", None) not in messages_before and text.startswith(f"<@{user}>"):
                return str(text)
        return None

    return str(wait_for(found, seconds=30))


def _snapshot(harness: Harness, user: str) -> tuple[int, set[str]]:
    messages = list(harness.sandbox.workspace.messages.get(harness.incidents_channel, []))
    return len(harness.ephemerals(user)), {m.ts for m in messages}


def _assert_clean(reply: str) -> None:
    assert "Traceback" not in reply, reply
    assert "Something went wrong" not in reply, reply
    if reply.startswith("⚠️"):  # a refusal: one line, or the short usage help of one verb
        assert "\n" not in reply, reply


def _seeded(harness: Harness) -> set[str]:
    status, _ = harness.post_alert("generic", generic("HighErrorRate", "checkoutservice", value=0.2))
    assert status == 200
    return _incident_ids(harness)


def test_any_command_text_gets_an_ack_and_a_clean_reply(db_harness: Harness) -> None:
    harness = db_harness  # declare and the free-text lookup store chat text: both backends
    before = _seeded(harness)

    @APP_FUZZ
    @given(user=st.sampled_from([ALICE, BOB, CAROL, DAVE]), text=TEXTS)
    def run(user: str, text: str) -> None:
        counts = _snapshot(harness, user)
        delivery = harness.driver.slash_command(user=user, channel="incidents", text=text)
        assert delivery.ok and delivery.status == 200, delivery.summary()
        _assert_clean(_reply(harness, user, *counts))
        assert before <= _incident_ids(harness), "an incident disappeared"

    run()
    # What was accepted renders: every card and thread message the commands queued reached Slack
    # (the sandbox refuses blocks past Block Kit's limits, which would leave rows dead).
    assert _outbox_settled(harness)["dead"] == 0


def _outbox_settled(harness: Harness) -> dict[str, int]:
    def settled() -> dict[str, int] | None:
        with harness.services.sessions() as s:
            found = outbox.counts(db_session=s)
        return found if not found["pending"] else None

    return dict(wait_for(settled))


def test_declare_with_a_nul_is_refused_on_both_backends(db_harness: Harness) -> None:
    # PostgreSQL refused the NUL in the title at commit: "Something went wrong" instead of a refusal.
    db_harness.command(ALICE, "declare checkoutservice a\x00b")
    assert "control characters" in db_harness.wait_ephemeral(ALICE, "⚠️", seconds=30)


def test_any_mention_text_gets_a_clean_reply(harness: Harness) -> None:
    before = _seeded(harness)
    bot = harness.sandbox.workspace.bot_user_id

    @settings(APP_FUZZ, max_examples=examples(15))
    @given(user=st.sampled_from([ALICE, CAROL]), text=TEXTS)
    def run(user: str, text: str) -> None:
        counts = _snapshot(harness, user)
        deliveries = harness.driver.user_message(user=user, channel="incidents", text=f"<@{bot}> {text}")
        assert deliveries and all(d.ok for d in deliveries), [d.summary() for d in deliveries]
        _assert_clean(_reply(harness, user, *counts))
        assert before <= _incident_ids(harness), "an incident disappeared"

    run()


INTERACTION_KINDS = ("shortcut", "message_action", "view_submission", "view_closed", "block_suggestion")


@st.composite
def unused_interactions(draw: st.DrawFn) -> dict[str, Any]:
    """An interaction payload of a kind the app does not handle, with random ids and values."""
    kind = draw(st.sampled_from(INTERACTION_KINDS))
    payload: dict[str, Any] = {
        "type": kind,
        "team": {"id": "T0SANDBOX", "domain": "remediate-sandbox"},
        "user": {"id": draw(st.sampled_from([ALICE, CAROL, "U0NOBODY99"])), "team_id": "T0SANDBOX"},
        "api_app_id": "A0REMEDIATE",
        "token": "sandbox-verification-token",
        "trigger_id": draw(st.text(max_size=20)),
        "callback_id": draw(st.text(max_size=30)),
    }
    if kind.startswith("view"):
        payload["view"] = {
            "id": "V" + draw(st.text(alphabet="ABC0123", max_size=8)),
            "type": "modal",
            "callback_id": draw(st.text(max_size=30)),
            "private_metadata": draw(st.text(max_size=40)),
            "state": {"values": draw(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3))},
        }
    if kind == "block_suggestion":
        payload.update(action_id=draw(st.text(max_size=20)), block_id="b", value=draw(st.text(max_size=20)))
    extra = draw(st.dictionaries(st.sampled_from(["message", "channel", "actions", "response_url"]), SCALARS))
    payload.update({k: v for k, v in extra.items() if k != "type"})
    return payload


def test_a_signed_payload_of_a_shape_slack_never_sends_is_a_400(harness: Harness) -> None:
    # Bolt read "channel": false before any listener and the request died as a 500.
    payload = {"type": "shortcut", "callback_id": "x", "user": {"id": ALICE}, "channel": False}
    delivery = harness.driver.deliver_payload(payload)
    assert delivery.status == 400 and "malformed Slack request" in delivery.body


def test_block_suggestion_is_acked_not_404(harness: Harness) -> None:
    payload = {
        "type": "block_suggestion",
        "user": {"id": ALICE},
        "action_id": "a",
        "block_id": "b",
        "value": "",
    }
    delivery = harness.driver.deliver_payload(payload)
    assert delivery.ok and delivery.status == 200, delivery.body


def test_interactions_the_app_does_not_use_are_acked_and_ignored(harness: Harness) -> None:
    before = _seeded(harness)

    @APP_FUZZ
    @given(unused_interactions())
    def run(payload: dict[str, Any]) -> None:
        delivery = harness.driver.deliver_payload(json.loads(json.dumps(payload)))
        assert delivery.status is not None and delivery.status < 500, (delivery.summary(), delivery.body)
        assert "Traceback" not in delivery.body
        if not payload.keys() & {"message", "channel", "actions", "response_url"}:
            assert delivery.ok, (delivery.summary(), delivery.body)  # a shape Slack sends: acked
        elif not delivery.ok:  # junk where Slack puts ids: refused, and saying so
            assert delivery.status == 400 and "malformed Slack request" in delivery.body, delivery.body
        assert before <= _incident_ids(harness)

    run()
