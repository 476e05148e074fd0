"""Metric snapshots at POST /snapshots: validation, the newest kept, timelines, cards and rankings."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from bot.alerts.snapshots import SnapshotIn, ingest_snapshots
from incidents_db.models import IncidentEvent
from incidents_db.service import get_record
from incidents_db.snapshots import ServiceSnapshot
from tests.bot.conftest import ALICE, TOKEN, Harness, generic
from tests.bot.sandbox.conftest import wait_for


def post(harness: Harness, body: Any, *, token: str | None = TOKEN, method: str = "POST") -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"{harness.url}/snapshots", data=data if method == "POST" else None, headers=headers, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def snap(service: str, at: str | None = None, **values: float) -> dict[str, Any]:
    return {"service": service, "values": values, **({"at": at} if at else {})}


def metrics_events(harness: Harness, incident_id: str) -> list[IncidentEvent]:
    with harness.services.sessions() as s:
        return list(
            s.execute(
                sa.select(IncidentEvent)
                .where(IncidentEvent.incident_id == incident_id, IncidentEvent.type == "metrics")
                .order_by(IncidentEvent.seq)
            ).scalars()
        )


def test_refusals_name_the_problem(harness: Harness) -> None:
    assert post(harness, snap("cartservice", error_rate=0.1), token=None)[0] == 401
    assert post(harness, snap("cartservice", error_rate=0.1), token="wrong")[0] == 401
    assert post(harness, {}, method="GET")[0] == 405
    status, body = post(harness, b"{not json")
    assert (status, body["error"]) == (422, "the body is not JSON")
    status, body = post(harness, {"service": "cartservice", "values": {"error_rate": "high"}})
    assert status == 422 and "'error_rate' must be a finite number" in body["error"]
    status, body = post(harness, {"service": " ", "values": {"cpu": 0.5}})
    assert status == 422 and "service" in body["error"]
    status, body = post(harness, {"service": "cartservice", "valeus": {"cpu": 0.5}})
    assert status == 422 and "valeus: Extra inputs are not permitted" in body["error"]
    status, body = post(harness, {"service": "cartservice", "values": {}})
    assert status == 422 and "values" in body["error"]
    status, body = post(harness, snap("cartservice", at="2026-03-03T10:00:00", cpu=0.5))
    assert status == 422 and "time zone" in body["error"]
    future = (harness.services.clock() + timedelta(hours=1)).isoformat()
    status, body = post(harness, snap("cartservice", at=future, cpu=0.5))
    assert status == 422 and "in the future" in body["error"]
    with harness.services.sessions() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(ServiceSnapshot)).scalar_one() == 0


def test_newest_is_kept_and_older_is_stale(harness: Harness) -> None:
    now = harness.services.clock()
    status, body = post(
        harness,
        [
            snap("cartservice", at=(now - timedelta(seconds=30)).isoformat(), error_rate=0.2),
            snap("redis-cart", error_rate=0.0, saturation=0.4),
        ],
    )
    assert status == 200 and body == {
        "ok": True, "stored": 2, "stale": 0, "attached": 0, "incidents": [], "refused": [], "warnings": []
    }  # fmt: skip
    status, body = post(harness, snap("cartservice", at=(now - timedelta(seconds=90)).isoformat(), cpu=1.0))
    assert (status, body["stored"], body["stale"]) == (200, 0, 1)
    with harness.services.sessions() as s:
        kept = s.get(ServiceSnapshot, "cartservice")
        assert kept is not None and kept.values == {"error_rate": 0.2}


def test_a_new_incident_starts_with_recent_snapshots_and_the_card_shows_its_own(harness: Harness) -> None:
    post(harness, {"snapshots": [snap("checkoutservice", saturation=0.97), snap("paymentservice", cpu=0.3)]})
    status, body = harness.post_alert(
        "generic", generic("HighLatency", "checkoutservice", fingerprint="lat-1")
    )
    assert status == 200
    incident_id = body["created"][0]
    events = metrics_events(harness, incident_id)
    assert {e.service for e in events} == {"checkoutservice", "paymentservice"}
    card = harness.wait_card(incident_id, lambda blocks: "saturation 0.97" in blocks)
    assert "paymentservice" not in json.dumps(card["blocks"])  # not an affected service
    with harness.services.sessions() as s:
        record = get_record(db_session=s, incident_id=incident_id)
    assert record["services"] == ["checkoutservice"]  # snapshots are context, not affected services


def test_snapshots_join_open_incidents_at_a_bounded_pace_without_thread_posts(harness: Harness) -> None:
    status, body = harness.post_alert("generic", generic("HighErrorRate", "cartservice", fingerprint="err-1"))
    incident_id = body["created"][0]
    card = harness.card_for(incident_id)
    now = harness.services.clock()
    status, body = post(harness, snap("cartservice", at=now.isoformat(), error_rate=0.4))
    assert (status, body["attached"], body["incidents"]) == (200, 1, [incident_id])
    soon = (now + timedelta(seconds=5)).isoformat()
    status, body = post(
        harness, [snap("cartservice", at=soon, error_rate=0.45), snap("not-in-graph", cpu=1.0)]
    )
    assert (body["stored"], body["attached"]) == (2, 0)  # noise within the interval; unknown service ignored
    status, body = post(
        harness, snap("cartservice", at=(now + timedelta(seconds=6)).isoformat(), error_rate=0.9)
    )
    assert body["attached"] == 1  # a material move joins at once
    later = (now + timedelta(seconds=harness.services.settings.snapshot_interval_s + 7)).isoformat()
    status, body = post(harness, snap("cartservice", at=later, error_rate=0.91))
    assert body["attached"] == 1  # steady, but the interval passed
    values = [e.payload["values"]["error_rate"] for e in metrics_events(harness, incident_id)]
    assert values == [0.4, 0.9, 0.91]
    harness.wait_card(incident_id, lambda blocks: "error_rate 0.91" in blocks)
    harness.command(ALICE, f"suggest {incident_id}")  # another change, so the thread gets a post
    wait_for(lambda: harness.replies(card["ts"]) or None)
    assert not any("metrics of" in m.get("text", "") for m in harness.replies(card["ts"]))


def test_the_ranking_reads_snapshots(harness: Harness) -> None:
    """The runbook for a surge needs saturation and request rate: without a snapshot it cannot match."""

    def top(incident_id: str) -> str:
        from bot.notify.suggest import rank

        with harness.services.sessions() as s:
            ranking = rank(harness.services, db_session=s, incident_id=incident_id)
        first = ranking.suggestions[0].ranked
        return f"{first.action} {first.target}"

    body = harness.post_alert("generic", generic("HighCPU", "currencyservice", fingerprint="cpu-1"))[1]
    plain = body["created"][0]
    assert top(plain) != "scale_out currencyservice"
    status, answer = post(harness, snap("currencyservice", saturation=0.95, traffic_ratio=1.9))
    assert (status, answer["attached"]) == (200, 1)
    assert top(plain) != "scale_out currencyservice"  # saturated, but not by more requests: no surge
    status, answer = post(harness, snap("currencyservice", saturation=0.95, traffic_ratio=5.0))
    assert (status, answer["attached"]) == (200, 1)  # a material move joins at once
    assert top(plain) == "scale_out currencyservice"


def test_concurrent_deliveries_keep_the_newest(harness: Harness) -> None:
    import threading

    now = harness.services.clock()
    bodies = [
        snap("emailservice", at=(now - timedelta(seconds=60 - i)).isoformat(), cpu=i / 100) for i in range(40)
    ]
    threads = [
        threading.Thread(target=ingest_snapshots, args=(harness.services, [SnapshotIn.model_validate(b)]))
        for b in bodies
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with harness.services.sessions() as s:
        kept = s.get(ServiceSnapshot, "emailservice")
        assert kept is not None and kept.values == {"cpu": 0.39}


def test_health_shows_the_feed_and_the_card_says_when_there_is_none(harness: Harness) -> None:
    def health() -> dict[str, Any]:
        with urllib.request.urlopen(f"{harness.url}/healthz", timeout=10) as resp:
            return dict(json.loads(resp.read()))

    assert health()["snapshots"] == {"services": 0, "newest_received_at": None}
    body = harness.post_alert("generic", generic("HighLatency", "shippingservice", fingerprint="lat-9"))[1]
    incident_id = body["created"][0]
    harness.wait_card(incident_id, lambda blocks: "ranked on alerts only" in blocks)
    post(harness, [snap("shippingservice", latency_p99_ms=900.0), snap("frontend", cpu=0.2)])
    state = health()["snapshots"]
    assert state["services"] == 2 and state["newest_received_at"].endswith("Z")
    harness.wait_card(incident_id, lambda blocks: "ranked on alerts only" not in blocks)
