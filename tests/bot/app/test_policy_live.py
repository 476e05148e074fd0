"""A running app follows the registry without a restart: /healthz and every card name what ranks."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from bot.cli.serve_policy import start_policy_reload
from bot.settings import with_overrides
from incidents_db.db import make_sessionmaker, session_scope
from remediation.policies import RunbookPolicy
from remediation.registry import rankings, service
from remediation.registry.bundle import BUNDLED_DIR, bundle_record, serving_loader
from remediation.registry.live import LivePolicy, in_canary
from tests.bot.conftest import Harness, generic
from tests.bot.sandbox.conftest import wait_for
from tests.remediation.conftest import Clock, Store
from tests.remediation.registry.test_live import register_untrained


def shows(text: str) -> Callable[[str], bool]:
    """Return a predicate: the card's blocks hold ``text``."""
    return lambda blocks: text in blocks


def healthz(h: Harness) -> dict[str, Any]:
    with urllib.request.urlopen(h.url + "/healthz", timeout=30) as resp:
        return dict(json.loads(resp.read())["policy"])


@pytest.fixture
def live(db_harness: Harness) -> Iterator[Harness]:
    """The harness serving a LivePolicy (``auto``) that a scheduler checks every second."""
    h = db_harness
    engine = h.services.sessions.kw["bind"]
    policy = LivePolicy(engine=engine, mode="auto", runbook=RunbookPolicy(), loader=serving_loader,
                        bundled=BUNDLED_DIR)  # fmt: skip
    policy.start()
    h.services.policy = policy
    h.services.settings = with_overrides(h.services.settings, policy_reload_s=1.0)
    scheduler = BackgroundScheduler(timezone="UTC")
    start_policy_reload(scheduler, h.services)
    scheduler.start()
    try:
        yield h
    finally:
        scheduler.shutdown(wait=False)


def test_promote_reaches_the_running_app_and_a_corrupt_artifact_keeps_the_old_policy(
    live: Harness, tmp_path: Path
) -> None:
    h = live
    engine = h.services.sessions.kw["bind"]
    store = Store(str(engine.url), engine, make_sessionmaker(engine), h.services.guard, Clock())
    bundled = bundle_record()["version"]
    assert healthz(h)["source"] == "bundled" and healthz(h)["version"] == bundled
    status, answer = h.post_alert("generic", generic("HighErrorRate", "checkoutservice", fingerprint="p-1"))
    assert status == 200, answer
    h.wait_card(answer["incidents"][0], lambda blocks: f"ranked by bundled policy {bundled}" in blocks)

    register_untrained(store.factory, tmp_path, "v1", seed=1)
    with session_scope(store.factory) as session:
        service.promote(db_session=session, version="v1")
    wait_for(lambda: healthz(h)["version"] == "v1", seconds=60)  # no restart: the reload check
    status, answer = h.post_alert("generic", generic("HighLatency", "frontend", fingerprint="p-2"))
    assert status == 200, answer
    h.wait_card(answer["incidents"][0], lambda blocks: "ranked by promoted policy v1" in blocks)

    weights = register_untrained(store.factory, tmp_path, "v2", seed=2)
    weights.write_bytes(weights.read_bytes()[:-10])
    with session_scope(store.factory) as session:
        service.promote(db_session=session, version="v2")
    shown = wait_for(lambda: healthz(h) if healthz(h)["error"] else None, seconds=60)
    assert shown["version"] == "v1" and shown["source"] == "promoted"
    assert (
        "promoted v2 not loaded, keeping promoted policy v1" in shown["error"] and "SHA-256" in shown["error"]
    )


def test_the_shadow_ranks_every_incident_unseen_and_the_canary_shows_on_its_share(
    live: Harness, tmp_path: Path
) -> None:
    h = live
    engine = h.services.sessions.kw["bind"]
    store = Store(str(engine.url), engine, make_sessionmaker(engine), h.services.guard, Clock())
    register_untrained(store.factory, tmp_path, "shadow-v1", seed=1)
    register_untrained(store.factory, tmp_path, "canary-v2", seed=2)
    with session_scope(store.factory) as session:
        service.set_shadow(db_session=session, version="shadow-v1")
        rankings.set_canary(db_session=session, version="canary-v2", share=0.5, now=datetime.now(UTC))
    wait_for(lambda: healthz(h)["shadow"] == "shadow-v1" and healthz(h)["canary"] == "canary-v2", seconds=60)
    bundled = bundle_record()["version"]
    seen: dict[bool, str] = {}
    for n, service_name in enumerate(
        ["checkoutservice", "frontend", "cartservice", "paymentservice", "adservice"]
    ):
        status, answer = h.post_alert("generic", generic("HighErrorRate", service_name, fingerprint=f"s-{n}"))
        assert status == 200, answer
        incident_id = answer["incidents"][0]
        canary = in_canary(incident_id, 0.5)
        label = "ranked by canary policy canary-v2 (canary: 50% of incidents)" if canary else (
            f"ranked by bundled policy {bundled}")  # fmt: skip
        card = h.wait_card(incident_id, shows(label))
        assert "shadow-v1" not in json.dumps(card)  # the shadow's ranking is never shown
        seen.setdefault(canary, incident_id)
        if len(seen) == 2:
            break
    assert set(seen) == {True, False}, "five incident ids all fell in one arm"
    with session_scope(store.factory) as session:
        rows = rankings.rankings_of(db_session=session)
        recorded = {(r.incident_id, r.role, r.policy_version, r.shown) for r in rows}
    for canary, incident_id in seen.items():
        assert (incident_id, "shadow", "shadow-v1", False) in recorded
        shown = ("canary", "canary-v2") if canary else ("production", bundled)
        assert (incident_id, *shown, True) in recorded
