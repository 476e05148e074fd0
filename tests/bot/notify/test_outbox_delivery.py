"""The outbox against a Slack that loses answers, rate limits, refuses blocks and goes away (finding 8).

Through the real app and sandbox: a post Slack stored but whose answer was lost is looked up, not
posted twice; 429s are not attempts; dead letters stay visible (`remediate outbox list`, /healthz),
are sent again by `remediate outbox retry` and as soon as Slack answers again; refused blocks give
a minimal card; replies to people go through the outbox with the same 429 handling.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from incidents_db import outbox
from tests.bot.conftest import ALICE, BOB, Harness, generic
from tests.bot.sandbox.conftest import control, wait_for


def _rows(harness: Harness, **where: Any) -> list[outbox.OutboxMessage]:
    with harness.services.sessions() as s:
        query = sa.select(outbox.OutboxMessage).order_by(outbox.OutboxMessage.id)
        for key, value in where.items():
            query = query.where(getattr(outbox.OutboxMessage, key) == value)
        rows = list(s.execute(query).scalars())
        s.expunge_all()
        return rows


def _settled(harness: Harness) -> bool:
    """Return True when nothing is waiting in the outbox (every row sent)."""
    return all(r.state == "sent" for r in _rows(harness))


def _calls(harness: Harness, method: str) -> list[dict[str, Any]]:
    return list(control(harness.sandbox, f"calls?method={method}", method="GET")["calls"])


def _cards_of(harness: Harness, incident_id: str) -> list[dict[str, Any]]:
    return [c for c in harness.cards() if c.get("text", "").startswith(incident_id + " ")]


def _health(harness: Harness) -> dict[str, Any]:
    with urllib.request.urlopen(harness.url + "/healthz", timeout=30) as resp:
        return dict(json.loads(resp.read()))


def _cli(harness: Harness, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    url = str(harness.services.sessions.kw["bind"].url.render_as_string(hide_password=False))
    env = {**os.environ, "REMEDIATE_DATABASE_URL": url, "REMEDIATE_DATA_DIR": str(tmp_path), "COLUMNS": "300"}
    env.pop("REMEDIATE_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_a_card_post_whose_answer_was_lost_gives_exactly_one_card(db_harness: Harness) -> None:
    h = db_harness
    # Slack stores the card, then the connection drops before its answer: an uncertain outcome.
    control(h.sandbox, "faults", {"method": "chat.postMessage", "kind": "hang", "hang_s": 0, "then": "lose"})
    h.post_alert("generic", generic("HighErrorRate", "checkoutservice"))
    card = h.card_for("INC-1")
    wait_for(lambda: _settled(h), seconds=30)
    assert len(_cards_of(h, "INC-1")) == 1
    card_row = _rows(h, kind="card")[0]
    assert card_row.uncertain and card_row.attempts == 2 and "RemoteDisconnected" in card_row.last_error
    assert card_row.result["ts"] == card["ts"]  # the stored message was adopted, not posted again
    assert card["metadata"] == {
        "event_type": "remediate_card",
        "event_payload": {"incident_id": "INC-1", "outbox_id": card_row.id},
    }
    history = _calls(h, "conversations.history")
    assert history and history[-1]["args"]["include_all_metadata"] == "true"
    # the adopted card is the one that lives on: updates and the thread go to it
    h.post_alert("generic", generic("HighLatency", "checkoutservice"))
    h.wait_card("INC-1", lambda blocks: "HighLatency" in blocks)
    wait_for(lambda: any("HighLatency" in r.get("text", "") for r in h.replies(card["ts"])))
    assert len(_cards_of(h, "INC-1")) == 1


def test_a_card_post_answered_5xx_after_slack_stored_it_gives_one_card(harness: Harness) -> None:
    h = harness
    control(h.sandbox, "faults", {"method": "chat.postMessage", "kind": "server_error", "then": "process"})
    h.post_alert("generic", generic("HighErrorRate", "checkoutservice"))
    card = h.card_for("INC-1")
    wait_for(lambda: _settled(h), seconds=30)
    assert len(_cards_of(h, "INC-1")) == 1
    row = _rows(h, kind="card")[0]
    assert row.uncertain and "HTTP 500" in row.last_error and row.result["ts"] == card["ts"]


def test_a_thread_message_whose_answer_was_lost_is_posted_once(harness: Harness) -> None:
    h = harness
    h.post_alert("generic", generic("HighErrorRate", "checkoutservice"))
    card = h.card_for("INC-1")
    wait_for(lambda: h.replies(card["ts"]) and _settled(h))
    control(h.sandbox, "faults", {"method": "chat.postMessage", "kind": "hang", "hang_s": 0, "then": "lose"})
    h.post_alert("generic", generic("HighLatency", "checkoutservice"))
    wait_for(lambda: any("HighLatency" in r.get("text", "") for r in h.replies(card["ts"])))
    wait_for(lambda: _settled(h))
    assert len([r for r in h.replies(card["ts"]) if "HighLatency" in r.get("text", "")]) == 1
    lost = [r for r in _rows(h, kind="timeline") if r.uncertain]
    assert lost and lost[0].result.get("adopted") is True
    assert _calls(h, "conversations.replies")  # looked up in the thread before posting again


def test_a_429_storm_does_not_count_as_attempts(harness: Harness) -> None:
    h = harness
    control(
        h.sandbox,
        "faults",
        {"method": "chat.postMessage", "kind": "rate_limited", "count": 15, "retry_after": 0},
    )
    h.post_alert("generic", generic("HighErrorRate", "checkoutservice"))
    h.card_for("INC-1")
    wait_for(lambda: _settled(h), seconds=30)
    limited = [c for c in _calls(h, "chat.postMessage") if c["status"] == 429]
    assert len(limited) == 15  # more than max_attempts would have allowed if 429s counted
    assert all(r.attempts == 1 for r in _rows(h))
    assert any("429" in r.last_error for r in _rows(h))


def test_dead_letters_are_listed_retried_and_revived_when_slack_answers(
    db_harness: Harness, tmp_path: Path
) -> None:
    h = db_harness
    # a dead row's own schedule is far away: only a retry or a revival sends it
    h.services.settings = h.services.settings.model_copy(update={"max_attempts": 2, "retry_max_s": 3600.0})
    control(h.sandbox, "faults", {"method": "chat.postMessage", "kind": "server_error", "count": 2})
    h.post_alert("generic", generic("HighErrorRate", "checkoutservice"))
    wait_for(lambda: _rows(h, kind="card", state="dead"), seconds=30)
    dead = _rows(h, kind="card", state="dead")[0]
    assert dead.attempts == 2 and "HTTP 500" in dead.last_error and not dead.refused

    health = _health(h)
    assert health["dead_letters"] == 1 and health["outbox"]["dead"] == 1
    assert health["outbox"]["oldest_pending_age_s"] is not None

    listed = _cli(h, tmp_path, "outbox", "list", "--state", "dead", "--json")
    assert listed.returncode == 0, listed.stderr
    letters = json.loads(listed.stdout)["messages"]
    assert [(m["id"], m["kind"], m["incident_id"]) for m in letters] == [(dead.id, "card", "INC-1")]
    table = _cli(h, tmp_path, "outbox", "list")
    assert table.returncode == 0 and "dead" in table.stdout and "HTTP 500" in table.stdout

    retried = _cli(h, tmp_path, "outbox", "retry", str(dead.id))
    assert retried.returncode == 0, retried.stderr
    h.card_for("INC-1")
    wait_for(lambda: _settled(h), seconds=30)
    assert _health(h)["dead_letters"] == 0

    # Slack fails again for another incident's card until it is dead; the next delivery that Slack
    # answers (a reply to a command) revives it at once, long before its own schedule.
    control(h.sandbox, "faults", {"method": "chat.postMessage", "kind": "server_error", "count": 2})
    h.post_alert("generic", generic("HighErrorRate", "cartservice"))
    wait_for(lambda: _rows(h, kind="card", incident_id="INC-2", state="dead"), seconds=30)
    h.command(ALICE, "status INC-1")
    h.wait_ephemeral(ALICE, "INC-1")
    h.card_for("INC-2")
    wait_for(lambda: _settled(h), seconds=30)


def test_retry_refuses_a_bad_request(harness: Harness, tmp_path: Path) -> None:
    both = _cli(harness, tmp_path, "outbox", "retry")
    assert both.returncode == 1 and "--all" in both.stderr
    missing = _cli(harness, tmp_path, "outbox", "retry", "999")
    assert missing.returncode == 1 and "no unsent outbox row 999" in missing.stderr
    bad = _cli(harness, tmp_path, "outbox", "list", "--state", "lost")
    assert bad.returncode == 1 and "expected one of" in bad.stderr


def test_invalid_blocks_falls_back_to_a_minimal_card(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    caplog.set_level(logging.ERROR, logger="remediate.slack")
    control(h.sandbox, "faults", {"method": "chat.postMessage", "kind": "invalid_blocks"})
    h.post_alert("generic", generic("HighErrorRate", "checkoutservice"))
    card = h.wait_card("INC-1", lambda blocks: "could not be rendered" in blocks)
    assert "/remediate status INC-1" in json.dumps(card["blocks"])
    assert not [b for b in card["blocks"] if b["type"] == "actions"]  # no buttons on a card it cannot show
    assert any("invalid_blocks" in r.getMessage() for r in caplog.records)
    # the next update renders the full card again; a refused update falls back the same way
    h.post_alert("generic", generic("HighLatency", "checkoutservice"))
    h.wait_card("INC-1", lambda blocks: "HighLatency" in blocks)
    control(h.sandbox, "faults", {"method": "chat.update", "kind": "error", "error": "invalid_blocks"})
    h.post_alert("generic", generic("PodCrashLooping", "checkoutservice"))
    h.wait_card("INC-1", lambda blocks: "could not be rendered" in blocks)
    wait_for(lambda: _settled(h))
    assert len(_cards_of(h, "INC-1")) == 1
    assert [r for r in _rows(h, kind="card") if r.result.get("minimal") == "invalid_blocks"]


def test_an_ephemeral_reply_under_429_is_delivered_after_retry_after(harness: Harness) -> None:
    h = harness
    control(h.sandbox, "faults", {"method": "response_url", "kind": "rate_limited", "retry_after": 1})
    h.command(ALICE, "status INC-404")
    h.wait_ephemeral(ALICE, "no incident 'INC-404'")
    calls = _calls(h, "response_url")
    assert [c["status"] for c in calls] == [429, 200]
    assert calls[1]["at"] - calls[0]["at"] >= 1.0  # not before the Retry-After Slack asked for
    wait_for(lambda: _settled(h))  # the reply shows a moment before the worker commits it was sent
    reply = _rows(h, kind="respond")[0]
    assert reply.state == "sent" and reply.attempts == 1 and "429" in reply.last_error

    # a mention's ephemeral reply goes through chat.postEphemeral with the same handling
    control(h.sandbox, "faults", {"method": "chat.postEphemeral", "kind": "rate_limited", "retry_after": 1})
    event = {
        "type": "app_mention",
        "user": BOB,
        "channel": "C0INCIDENT",
        "text": "<@U0REMBOT01> status INC-404",
    }
    assert h.driver.event(event).ok
    h.wait_ephemeral(BOB, "no incident 'INC-404'")
    assert [c["status"] for c in _calls(h, "chat.postEphemeral")] == [429, 200]


def test_a_refused_lookup_posts_again_rather_than_hold_the_card(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    caplog.set_level(logging.WARNING, logger="remediate.slack")
    control(h.sandbox, "faults", {"method": "chat.postMessage", "kind": "hang", "hang_s": 0, "then": "lose"})
    control(
        h.sandbox, "faults", {"method": "conversations.history", "kind": "error", "error": "missing_scope"}
    )
    h.post_alert("generic", generic("HighErrorRate", "checkoutservice"))
    wait_for(lambda: _settled(h), seconds=30)
    assert _cards_of(h, "INC-1")  # never without a card (a duplicate is possible without the scope)
    assert any("cannot look a message up" in r.getMessage() for r in caplog.records)


def test_a_duplicate_card_found_by_the_lookup_loses_its_buttons(harness: Harness) -> None:
    h = harness
    # Another app posting the same metadata is never adopted.
    impostor = {"event_type": "remediate_card", "event_payload": {"incident_id": "INC-1", "outbox_id": 1}}
    h.driver.ws.post(channel_id="C0INCIDENT", text="INC-1 fake", blocks=[], user=ALICE, metadata=impostor)
    # Lost, then posted again blind (the lookup refused), lost again: two real cards exist when the
    # third attempt can read the channel: it adopts the first and strips the second.
    control(h.sandbox, "faults", {"method": "chat.postMessage", "kind": "hang", "hang_s": 0, "then": "lose",
                                  "count": 2})  # fmt: skip
    control(
        h.sandbox, "faults", {"method": "conversations.history", "kind": "error", "error": "missing_scope"}
    )
    h.post_alert("generic", generic("HighErrorRate", "checkoutservice"))
    wait_for(lambda: _settled(h), seconds=30)
    mine = [c for c in h.cards() if c.get("bot_id")]
    assert len(mine) == 2
    live, retired = mine
    assert _rows(h, kind="card")[0].result["ts"] == live["ts"]
    assert any(b["type"] == "actions" for b in live["blocks"])
    assert not retired.get("blocks") and "Duplicate card of INC-1" in retired["text"]
