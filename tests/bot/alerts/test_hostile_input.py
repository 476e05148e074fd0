"""Hostile alert and snapshot deliveries over real HTTP, and text from outside that tries to ping or link.

Every reproduction here once answered 500 (so Alertmanager retried the whole group forever), posted a
card Slack refused, or let an alert's text ping the channel. Storage decides several of them
(PostgreSQL refuses what SQLite stores), so those run on both backends.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from bot.notify.cards import render_card, timeline_text
from bot.notify.suggest import Ranking
from bot.sandbox.blockkit import check_blocks
from incidents_db.models import IncidentEvent
from tests.bot.conftest import ALICE, Harness, generic
from tests.bot.sandbox.conftest import wait_for

LONG_SERVICE = "s" * 2500
INJECTION_NAME = "<!channel>"
INJECTION_SUMMARY = "<https://evil.example|Click to re-auth> <@U0BOB00002> &amp;"
# what must never reach Slack unescaped in mrkdwn or fallback text
UNESCAPED = re.compile(r"<!channel>|<@U0BOB|<https://")


def prom(name: str, service: str, fingerprint: str, **extra: Any) -> dict[str, Any]:
    """Return one Alertmanager alert."""
    return {
        "status": "firing",
        "labels": {"alertname": name, "service": service, **extra.pop("labels", {})},
        "annotations": extra.pop("annotations", {}),
        "startsAt": "2026-03-02T10:14:00Z",
        "fingerprint": fingerprint,
        **extra,
    }


def alertmanager(*alerts: dict[str, Any], group: str = '{}:{alertname="x"}') -> dict[str, Any]:
    """Return an Alertmanager v4 webhook body."""
    return {"version": "4", "groupKey": group, "status": "firing", "alerts": list(alerts)}


def recorded_alerts(harness: Harness) -> list[IncidentEvent]:
    with harness.services.sessions() as s:
        return list(
            s.execute(
                sa.select(IncidentEvent).where(IncidentEvent.type == "alert").order_by(IncidentEvent.id)
            ).scalars()
        )


def assert_valid_card(harness: Harness, incident_id: str) -> dict[str, Any]:
    card = harness.card_for(incident_id)
    assert check_blocks(card["blocks"]) == []
    return card


def test_one_hostile_alert_never_loses_the_good_ones(db_harness: Harness) -> None:
    body = alertmanager(
        prom("HighErrorRate", "checkoutservice", "good-1"),
        prom("HighLatency", LONG_SERVICE, "bad"),
        prom("HighCPU", "cartservice", "good-2"),
        prom("HighCPU", "c" * 300, "bad-2"),
        group="",
    )
    status, answer = db_harness.post_alert("alertmanager", body)
    assert status == 200, answer
    assert answer["recorded"] == 2
    assert [r["index"] for r in answer["refused"]] == [1, 3]
    assert "labels.service" in answer["refused"][0]["error"]
    assert "labels.service: a service name has at most 200 characters" in answer["refused"][1]["error"]
    assert {e.payload["fingerprint"] for e in recorded_alerts(db_harness)} == {"good-1", "good-2"}
    for incident_id in answer["incidents"]:
        assert_valid_card(db_harness, incident_id)


def test_a_delivery_of_only_hostile_alerts_is_refused_naming_them(db_harness: Harness) -> None:
    status, answer = db_harness.post_alert("alertmanager", alertmanager(prom("X", LONG_SERVICE, "bad")))
    assert status == 422 and "alerts.0.labels.service" in answer["error"], answer
    assert answer["refused"][0]["index"] == 0
    status, answer = db_harness.post_alert("generic", generic("X", LONG_SERVICE))
    assert status == 422 and "alerts.0.service" in answer["error"], answer
    assert recorded_alerts(db_harness) == []


def test_non_finite_alert_values_are_dropped_with_a_reason(db_harness: Harness) -> None:
    raw = (
        b'{"alerts": [{"name": "HighErrorRate", "service": "checkoutservice", "value": 1e309},'
        b' {"name": "HighLatency", "service": "checkoutservice", "value": NaN},'
        b' {"name": "HighCPU", "service": "checkoutservice", "value": 1' + b"0" * 400 + b"}]}"
    )
    status, answer = db_harness.post_alert("generic", raw)
    assert status == 200 and answer["recorded"] == 3, answer
    assert [w["index"] for w in answer["warnings"]] == [0, 1, 2]
    assert all("value" in w["warning"] and "finite" in w["warning"] for w in answer["warnings"])
    assert all("value" not in e.payload for e in recorded_alerts(db_harness))
    am = alertmanager(prom("HighErrorRate", "frontend", "am-nan", values={"B": 1}))
    raw_am = json.dumps(am).replace('{"B": 1}', '{"B": NaN}').encode()
    status, answer = db_harness.post_alert("alertmanager", raw_am)
    assert status == 200 and answer["recorded"] == 1 and answer["warnings"], answer
    assert_valid_card(db_harness, answer["incidents"][0])


def test_deep_json_and_huge_numbers_are_422_not_500(harness: Harness) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    for path in ("generic", "alertmanager"):
        status, answer = harness.post_alert(path, deep)
        assert status == 422 and "nested" in answer["error"], answer
    status, answer = _post(harness, "/snapshots", deep)
    assert status == 422 and "nested" in answer["error"], answer
    # an unterminated string of escaped quotes: a scan that restarts at each quote never finishes
    status, answer = harness.post_alert("generic", b'"' + b'\\"' * 300_000)
    assert status == 422 and "not JSON" in answer["error"], answer
    huge = b'{"service": "cartservice", "values": {"cpu": 1' + b"0" * 400 + b"}}"
    status, answer = _post(harness, "/snapshots", huge)
    assert status == 422 and "values" in answer["error"] and "finite" in answer["error"], answer


def test_one_bad_snapshot_never_loses_the_good_ones(db_harness: Harness) -> None:
    raw = (
        b'{"snapshots": [{"service": "cartservice", "values": {"cpu": 0.5}},'
        b' {"service": "frontend", "values": {"cpu": 1e309}},'
        b' {"service": "' + b"s" * 2500 + b'", "values": {"cpu": 0.1}},'
        b' {"service": "redis-cart", "values": {"cpu": NaN}}]}'
    )
    status, answer = _post(db_harness, "/snapshots", raw)
    assert status == 200 and answer["stored"] == 1, answer
    assert [r["index"] for r in answer["refused"]] == [1, 2, 3]
    assert "finite" in answer["refused"][0]["error"] and "service" in answer["refused"][1]["error"]


def test_text_that_postgres_or_utf8_cannot_store_is_refused(db_harness: Harness) -> None:
    raw = (
        b'{"alerts": [{"name": "A\\u0000B", "service": "checkoutservice"},'
        b' {"name": "HighErrorRate", "service": "cart\\ud800service"},'
        b' {"name": "HighErrorRate", "service": "frontend", "labels": {"k\\u0000": "v"}},'
        b' {"name": "HighErrorRate", "service": "frontend"}]}'
    )
    status, answer = db_harness.post_alert("generic", raw)
    assert status == 200 and answer["recorded"] == 1, answer
    assert [r["index"] for r in answer["refused"]] == [0, 1, 2]
    assert "NUL" in answer["refused"][0]["error"] and "unicode" in answer["refused"][1]["error"].lower()


def test_pagerduty_signature_with_non_ascii_is_401(harness: Harness) -> None:
    data = {"id": "P1", "title": "checkout down", "service": {"summary": "checkoutservice"}}
    body = json.dumps({"event": {"id": "e1", "event_type": "incident.triggered", "data": data}})
    status, answer = harness.post_alert(
        "pagerduty", body.encode(), token=None, headers={"X-PagerDuty-Signature": "v1=é" + "0" * 63}
    )
    assert status == 401 and "X-PagerDuty-Signature" in answer["error"], answer
    good = "v1=" + hmac.new(b"pd-secret", body.encode(), hashlib.sha256).hexdigest()
    status, answer = harness.post_alert(
        "pagerduty", body.encode(), token=None, headers={"X-PagerDuty-Signature": good}
    )
    assert status == 200 and answer["recorded"] == 1, answer


def test_alert_text_cannot_ping_or_link(harness: Harness) -> None:
    status, answer = harness.post_alert(
        "generic", generic(INJECTION_NAME, "checkoutservice", summary=INJECTION_SUMMARY)
    )
    assert status == 200, answer
    incident_id = answer["created"][0]
    card = assert_valid_card(harness, incident_id)
    assert not UNESCAPED.search(card["text"]), card["text"]
    assert "&lt;!channel&gt;" in json.dumps(card["blocks"])
    for text in _mrkdwn_texts(card["blocks"]):
        assert not UNESCAPED.search(text), text
    thread = wait_for(lambda: harness.replies(card["ts"]) or None)
    assert all(not UNESCAPED.search(m.get("text", "")) for m in thread)
    assert "&lt;!channel&gt;" in thread[0]["text"]
    harness.command(ALICE, f"status {incident_id}")
    reply = harness.wait_ephemeral(ALICE, "Latest timeline")
    assert not UNESCAPED.search(reply) and "&lt;https://evil.example" in reply, reply
    harness.command(ALICE, "incidents")
    listed = harness.wait_ephemeral(ALICE, "Open incidents")
    assert not UNESCAPED.search(listed), listed


def test_chat_input_echoed_back_is_escaped(harness: Harness) -> None:
    harness.command(ALICE, "declare checkoutservice <!channel> please <https://evil.example|look>")
    reply = wait_for(lambda: next((m for m in harness.cards() if "declared" in m.get("text", "")), None))
    assert not UNESCAPED.search(reply["text"]) and "&lt;!channel&gt;" in reply["text"], reply["text"]
    card = assert_valid_card(harness, "INC-1")
    assert not UNESCAPED.search(card["text"])
    harness.command(ALICE, "why <!channel>")
    refusal = harness.wait_ephemeral(ALICE, "channel")
    assert "<!channel>" not in refusal, refusal


def _mrkdwn_texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["text"]] if node.get("type") == "mrkdwn" else []
        return found + [t for v in node.values() for t in _mrkdwn_texts(v)]
    if isinstance(node, list):
        return [t for v in node for t in _mrkdwn_texts(v)]
    return []


def _post(harness: Harness, path: str, data: bytes) -> tuple[int, dict[str, Any]]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        harness.url + path,
        data=data,
        headers={"Content-Type": "application/json", "Authorization": "Bearer alerts-test-token"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_imported_history_renders_escaped_once_and_within_limits() -> None:
    """A record as imported history can hold it: hostile ids, titles, many long services, odd values."""
    services = [f"{'<' * 190}-{i}" for i in range(40)]
    events = [
        {
            "at": "2026-03-02T10:14:00Z",
            "type": "alert",
            "name": "<!channel>",
            "service": s,
            "status": "firing",
        }
        for s in services
    ] + [
        {"at": "2026-03-02T10:15:00Z", "type": "metrics", "service": services[0], "values": {"<x>": "high"}},
        {"at": "2026-03-02T10:16:00Z", "type": "note", "actor": "remediate", "text": "a & b <@U0BOB00002>"},
        {"at": "2026-03-02T10:17:00Z", "type": "note", "actor": ALICE, "text": "ok"},
        {"at": "2026-03-02T10:18:00Z", "type": "<b>", "service": "x&y"},
        {
            "at": "2026-03-02T10:19:00Z",
            "type": "action",
            "action": "restart",
            "target": "a&b",
            "detail": "<!here>",
        },
    ]
    record = {
        "id": "<!channel>",
        "title": "<https://evil.example|re-auth> " * 100,
        "severity": "sev2",
        "services": services,
        "opened_at": "2026-03-02T10:14:00Z",
        "events": events,
    }
    text, blocks = render_card(Ranking(record, ALICE, ()), policy_name="runbook", now=datetime.now(UTC))
    assert check_blocks(blocks) == [] and len(text) <= 3000
    assert not UNESCAPED.search(text) and not re.search(r"<!channel>|<!here>|<@U0BOB|<https://", text)
    for shown in _mrkdwn_texts(blocks):
        assert not re.search(r"<!channel>|<!here>|<@U0BOB|<https://", shown), shown
    timeline = timeline_text(events)
    assert "a &amp; b &lt;@U0BOB00002&gt;" in timeline  # escaped exactly once
    assert f"<@{ALICE}>" in timeline and "remediate:" in timeline  # our mentions stay, others cannot ping
    assert "&amp;amp;" not in timeline and "&lt;!here&gt;" in timeline and "restart on a&amp;b" in timeline
