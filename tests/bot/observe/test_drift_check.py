"""The scheduled drift check through the running app: mined history as reference, ranked incidents as live."""

from __future__ import annotations

import json

from sqlalchemy import Engine

from bot.observe.drift import check_drift
from incidents_db.importer import import_lines
from incidents_db.synthetic import generate_incidents
from remediation.monitoring.drift import GROUPS
from tests.bot.conftest import Harness, generic
from tests.bot.observe.conftest import get, samples

SERVICES = ("checkoutservice", "cartservice", "frontend", "paymentservice", "currencyservice")


def test_drift_is_checked_and_exported(db_harness: Harness) -> None:
    harness = db_harness
    engine = harness.services.sessions.kw["bind"]
    assert isinstance(engine, Engine)
    history = generate_incidents(40, seed=11, open_fraction=0.0, id_prefix="HIST-")
    import_lines(engine=engine, lines=[json.dumps(r).encode() + b"\n" for r in history])
    before = check_drift(harness.services)
    assert before.groups == {} and before.live == 0  # nothing ranked yet: no verdict rather than a guess
    for n, service in enumerate(SERVICES, start=1):
        harness.post_alert("generic", generic("HighErrorRate", service, value=0.3))
        harness.card_for(f"INC-{n}")
    report = check_drift(harness.services)
    assert report.live == len(SERVICES) and report.reference > 20
    assert set(report.groups) == set(GROUPS) and all(v >= 0 for v in report.groups.values())
    found = samples(get(f"{harness.url}/metrics")[1].decode())
    for group, value in report.groups.items():
        assert found[f'remediate_feature_drift_psi{{group="{group}"}}'] == value
    assert found['remediate_drift_observations{set="live"}'] == len(SERVICES)
    assert found["remediate_drift_checked_timestamp_seconds"] > 0
