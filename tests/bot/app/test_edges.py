"""Forged and replayed requests, alert authentication and payloads, storms, outbox recovery, event retries."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import sqlalchemy as sa

from incidents_db import outbox
from incidents_db.models import Incident, IncidentEvent
from tests.bot.conftest import BOB, Harness, generic
from tests.bot.sandbox.conftest import control, wait_for


def test_forged_and_replayed_slack_requests_are_rejected(harness: Harness) -> None:
    body = "command=%2Fremediate&text=declare+checkoutservice+forged&user_id=U0ALICE001&channel_id=C0INCIDENT"
    forged = harness.driver.send(body, "application/x-www-form-urlencoded", signature="v0=" + "0" * 64)
    assert forged.status == 401
    replayed = harness.driver.send(
        body, "application/x-www-form-urlencoded", timestamp=int(time.time()) - 600
    )
    assert replayed.status == 401
    with harness.services.sessions() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(Incident)).scalar_one() == 0


def test_alert_auth_and_bad_payloads(harness: Harness) -> None:
    alert = generic("HighErrorRate", "checkoutservice")
    assert harness.post_alert("generic", alert, token=None)[0] == 401
    status, body = harness.post_alert("generic", alert, token="wrong")
    assert status == 401 and "bearer token is wrong" in body["error"]
    status, body = harness.post_alert("generic", b"{not json")
    assert status == 422 and "not JSON" in body["error"]
    status, body = harness.post_alert("generic", {"alerts": [{"service": "x"}]})
    assert status == 422 and "alerts.0.name" in body["error"]
    status, body = harness.post_alert("alertmanager", {"version": "3", "status": "firing", "alerts": []})
    assert status == 422 and "version" in body["error"]
    assert harness.post_alert("nagios", alert)[0] == 404


def test_alertmanager_v4_grafana_and_pagerduty(harness: Harness) -> None:
    am = {
        "version": "4", "groupKey": "{}:{alertname=\"HighLatency\"}", "status": "firing", "receiver": "remediate",
        "groupLabels": {"alertname": "HighLatency"}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "HighLatency", "service": "frontend", "severity": "critical"},
             "annotations": {"summary": "frontend p99 above 2 s"}, "startsAt": "2026-03-02T10:14:00Z",
             "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom", "fingerprint": "a1"},
        ],
    }  # fmt: skip
    status, body = harness.post_alert("alertmanager", am)
    assert status == 200 and body["created"] == ["INC-1"]
    with harness.services.sessions() as s:
        incident = s.get(Incident, "INC-1")
        assert (
            incident is not None
            and incident.severity == "sev1"
            and incident.title == "frontend p99 above 2 s"
        )
    grafana = {"receiver": "r", "status": "firing", "orgId": 1, "groupKey": "g", "alerts": [
        {"status": "firing", "labels": {"alertname": "HighCPU", "service": "cartservice"}, "annotations": {},
         "startsAt": "2026-03-02T10:15:00Z", "fingerprint": "g1", "values": {"B": 0.97}}]}  # fmt: skip
    status, body = harness.post_alert("grafana", grafana)
    assert status == 200 and body["created"] == ["INC-2"]
    event = {"event": {"id": "E1", "event_type": "incident.triggered", "resource_type": "incident",
             "occurred_at": "2026-03-02T10:16:00Z", "data": {"id": "PD1", "type": "incident", "title": "Payments down",
             "urgency": "high", "service": {"id": "S1", "summary": "paymentservice"}}}}  # fmt: skip
    raw = json.dumps(event).encode()
    good = "v1=" + hmac.new(b"pd-secret", raw, hashlib.sha256).hexdigest()
    status, _ = harness.post_alert("pagerduty", raw, token=None, headers={"X-PagerDuty-Signature": "v1=00"})
    assert status == 401
    status, body = harness.post_alert(
        "pagerduty", raw, token=None, headers={"X-PagerDuty-Signature": f"v1=abc, {good}"}
    )
    assert status == 200 and body["created"] == ["INC-3"]
    for n in (1, 2, 3):
        harness.card_for(f"INC-{n}")


def test_storm_of_100_alerts_makes_one_card(harness: Harness) -> None:
    for i in range(100):
        alert = generic(
            "HighErrorRate", "checkoutservice", fingerprint=f"pod-{i}", labels={"pod": f"checkout-{i}"}
        )
        status, body = harness.post_alert("generic", alert)
        assert status == 200 and body["incidents"] == ["INC-1"]
    # Alertmanager re-sending the same firing alerts changes nothing.
    assert (
        harness.post_alert("generic", generic("HighErrorRate", "checkoutservice", fingerprint="pod-3"))[1][
            "ignored"
        ]
        == 1
    )
    harness.card_for("INC-1")
    wait_for(
        lambda: (
            harness.services.sessions()
            .execute(
                sa.select(sa.func.count())
                .select_from(outbox.OutboxMessage)
                .where(outbox.OutboxMessage.state == "pending")
            )
            .scalar_one()
            == 0
        )
    )
    assert len(harness.cards()) == 1
    updates = control(harness.sandbox, "calls?method=chat.update", method="GET")
    posts = control(harness.sandbox, "calls?method=chat.postMessage", method="GET")
    n_updates = len(updates.get("calls", updates)) if isinstance(updates, dict) else len(updates)
    n_posts = len(posts.get("calls", posts)) if isinstance(posts, dict) else len(posts)
    assert n_updates + n_posts < 100  # coalesced: far fewer Slack calls than alerts
    with harness.services.sessions() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(Incident)).scalar_one() == 1
        assert s.execute(sa.select(sa.func.count()).select_from(IncidentEvent)).scalar_one() == 100


def test_outbox_recovers_after_429_and_500(harness: Harness) -> None:
    control(
        harness.sandbox,
        "faults",
        {"method": "chat.postMessage", "kind": "rate_limited", "count": 2, "retry_after": 1},
    )
    harness.post_alert("generic", generic("HighErrorRate", "checkoutservice"))
    harness.card_for("INC-1")
    control(
        harness.sandbox,
        "faults",
        {"method": "chat.update", "kind": "server_error", "count": 3, "status": 500},
    )
    harness.post_alert("generic", generic("HighLatency", "checkoutservice"))
    harness.wait_card("INC-1", lambda b: "HighLatency" in b)

    def settled() -> list[outbox.OutboxMessage] | None:
        # the card changes in Slack a moment before the worker commits that its row was sent
        with harness.services.sessions() as s:
            rows = list(s.execute(sa.select(outbox.OutboxMessage)).scalars())
        return rows if all(r.state == "sent" for r in rows) else None

    rows = wait_for(settled)
    # 429s are not attempts: the card went out on its first counted attempt, after two Retry-Afters
    assert any(r.state == "sent" and r.attempts == 1 and "429" in r.last_error for r in rows)
    assert any(r.state == "sent" and "HTTP 500" in r.last_error for r in rows)
    assert not [r for r in rows if r.state == "dead"]
    assert len(harness.cards()) == 1


def test_event_retries_are_processed_once(harness: Harness) -> None:
    harness.post_alert("generic", generic("HighErrorRate", "checkoutservice"))
    event = {
        "type": "app_mention",
        "user": BOB,
        "channel": "C0INCIDENT",
        "text": "<@U0REMBOT01> status INC-1",
        "ts": "1700000000.000100",
    }
    first = harness.driver.event(event, event_id="Ev0RETRY01")
    assert first.ok
    harness.wait_ephemeral(BOB, "Latest timeline")
    envelope = {"type": "event_callback", "event_id": "Ev0RETRY01", "event": event, "team_id": "T0SANDBOX",
                "api_app_id": "A0REMEDIATE", "event_time": int(time.time())}  # fmt: skip
    retry = harness.driver.send(
        json.dumps(envelope), "application/json", retry_num=1, retry_reason="http_timeout"
    )
    assert retry.status == 200 and retry.headers.get("x-slack-no-retry") == "1"
    time.sleep(0.5)  # give a wrongly re-processed retry the chance to show up
    assert len([e for e in harness.ephemerals(BOB) if "Latest timeline" in e]) == 1


def test_every_slack_sample_payload_is_accepted(harness: Harness) -> None:
    from pathlib import Path

    fixtures = Path(__file__).resolve().parents[4] / "shared" / "fixtures" / "slack"
    samples = sorted(fixtures.glob("*.json"))
    assert samples
    for path in samples:
        delivery = harness.driver.deliver_sample(json.loads(path.read_text()), user=BOB, channel="incidents")
        assert delivery.status == 200, (path.name, delivery.summary())
