"""/livez, /readyz and telemetry loss (F7) on /healthz, /metrics and the card, through the running app."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from bot.observe.health import Readiness
from tests.bot.conftest import TOKEN, Harness, _running, generic
from tests.bot.observe.conftest import get, samples
from tests.bot.sandbox.conftest import wait_for


def _json(url: str) -> tuple[int, dict[str, Any]]:
    status, body, _ = get(url)
    return status, json.loads(body)


def post_snapshots(harness: Harness, *snapshots: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{harness.url}/snapshots",
        data=json.dumps({"snapshots": list(snapshots)}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert resp.status == 200


def test_livez_and_readyz(harness: Harness) -> None:
    assert _json(f"{harness.url}/livez") == (200, {"ok": True})
    status, body = _json(f"{harness.url}/readyz")
    assert status == 200 and body == {
        "ok": True,
        "checks": {"store": "ok", "migrations": "ok", "slack": "ok"},
    }


def test_store_down_readyz_and_healthz_answer_503(harness: Harness, tmp_path: Path) -> None:
    engine = harness.services.sessions.kw["bind"]
    assert isinstance(engine, Engine) and engine.url.database
    store = Path(engine.url.database)
    moved = store.with_name("moved-away.sqlite")
    store.rename(moved)
    store.mkdir()  # a directory where the file was: SQLite cannot open it
    engine.dispose()
    try:
        status, body = _json(f"{harness.url}/readyz")
        assert status == 503 and body["ok"] is False
        assert body["checks"]["store"].startswith("unavailable")
        assert _json(f"{harness.url}/healthz")[0] == 503
        assert _json(f"{harness.url}/livez")[0] == 200  # the process is up: do not restart it for this
        status, scrape, _ = get(f"{harness.url}/metrics")
        assert status == 200 and samples(scrape.decode())["remediate_store_up"] == 0.0
    finally:
        store.rmdir()
        moved.rename(store)
        engine.dispose()
    assert _json(f"{harness.url}/readyz")[0] == 200


def test_the_slack_token_is_verified_once(harness: Harness) -> None:
    calls: list[str] = []

    def verify() -> None:  # Slack's auth.test, refusing the first time (the world's edge)
        calls.append("auth.test")
        if len(calls) == 1:
            raise OSError("connection refused")

    ready = Readiness(harness.services, verify)
    assert ready.check() == (
        False,
        {"store": "ok", "migrations": "ok", "slack": "token not verified: OSError"},
    )
    assert ready.check()[0] is True
    assert ready.check()[0] is True
    assert calls == ["auth.test", "auth.test"]  # cached once verified


@pytest.fixture
def stale(tmp_path: Path, migrated_sqlite_url: str) -> Iterator[Harness]:
    """The running app where any kept snapshot counts as stale at once (snapshot_max_age_s 0)."""
    yield from _running(tmp_path, migrated_sqlite_url, snapshot_max_age_s=0)


def test_stale_snapshots_are_telemetry_loss(stale: Harness) -> None:
    post_snapshots(stale, {"service": "cartservice", "values": {"error_rate": 0.01}})
    wait_for(lambda: _json(f"{stale.url}/healthz")[1]["telemetry"]["lost"] == ["cartservice"])
    found = samples(get(f"{stale.url}/metrics")[1].decode())
    assert found['remediate_telemetry_lost{reason="stale",service="cartservice"}'] == 1.0
    assert found["remediate_telemetry_lost_services"] == 1.0
    stale.post_alert("generic", generic("HighErrorRate", "cartservice", value=0.3))
    stale.wait_card("INC-1", lambda b: "Telemetry lost" in b and "cartservice (snapshots stale)" in b)


def test_vanished_metrics_show_on_the_card(harness: Harness) -> None:
    harness.post_alert("generic", generic("HighErrorRate", "checkoutservice", value=0.3))
    harness.card_for("INC-1")
    post_snapshots(
        harness, {"service": "checkoutservice", "values": {"error_rate": 0.3, "latency_p99_ms": 900}}
    )
    harness.wait_card("INC-1", lambda b: "latency_p99_ms" in b)
    assert "Telemetry lost" not in json.dumps(harness.card_for("INC-1")["blocks"])
    post_snapshots(harness, {"service": "checkoutservice", "values": {"error_rate": 0.3}})
    harness.wait_card("INC-1", lambda b: "checkoutservice (latency_p99_ms gone)" in b)
    completeness = _json(f"{harness.url}/healthz")[1]["telemetry"]["completeness"]
    assert 0 < completeness < 1  # one of the six policy metrics present
