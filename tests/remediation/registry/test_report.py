"""`policy report`: agreement with production and people, replay estimate of time to mitigate, denials, arms."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from incidents_db.db import session_scope
from incidents_db.importer import import_lines
from remediation.errors import RegistryError
from remediation.registry import rankings
from remediation.registry.report import policy_report
from tests.remediation.conftest import Store

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def incident(n: int, did: str, *, minutes: int) -> bytes:
    at = lambda m: (T0 + timedelta(minutes=m)).isoformat()  # noqa: E731
    return json.dumps({
        "format": "remediate.incident/v1", "id": f"INC-{n}", "title": "t", "severity": "sev2",
        "services": ["checkoutservice"], "opened_at": at(0), "resolved_at": at(minutes),
        "events": [
            {"at": at(0), "type": "alert", "status": "firing", "name": "HighErrorRate", "service": "checkoutservice"},
            {"at": at(2), "type": "action", "action": did, "target": "checkoutservice", "actor": "U1",
             "outcome": "succeeded"},
            {"at": at(minutes), "type": "resolved"},
        ],
    }).encode()  # fmt: skip


def item(action: str, allowed: bool = True) -> dict[str, Any]:
    return {"action": action, "target": "checkoutservice", "confidence": 0.5, "risk": "low", "allowed": allowed,
            "code": "ok" if allowed else "rate_limited"}  # fmt: skip


def test_the_report_compares_the_shadow_with_production_and_people(store: Store) -> None:
    # people ran: restart, rollback, restart, scale_out; resolved after 10, 20, 30, 40 minutes
    did = ["restart_service", "rollback_deploy", "restart_service", "scale_out"]
    report = import_lines(
        engine=store.engine, lines=[incident(n, d, minutes=10 * (n + 1)) for n, d in enumerate(did)]
    )
    assert report.imported == 4
    production = [["restart_service", "scale_out"], ["restart_service", "rollback_deploy"],
                  ["restart_service"], ["restart_service", "scale_out"]]  # fmt: skip
    shadow = [["restart_service"], ["rollback_deploy", "restart_service"], ["scale_out", "restart_service"],
              ["rollback_deploy", "restart_service", "scale_out"]]  # fmt: skip
    with session_scope(store.factory) as s:
        for n in range(4):
            ranked = [item(a) for a in shadow[n]]
            if n == 3:
                ranked[0]["allowed"], ranked[0]["code"] = False, "rate_limited"
            arm = "canary" if n == 1 else "production"
            shown = production[n] if arm == "production" else shadow[n]
            rankings.record(db_session=s, incident_id=f"INC-{n}", step=0, role=arm, arm=arm,
                            version="prod-1" if arm == "production" else "canary-1",
                            ranked=[item(a) for a in shown], at=T0)  # fmt: skip
            assert rankings.record(db_session=s, incident_id=f"INC-{n}", step=0, role="shadow", arm=arm,
                                   version="shadow-1", ranked=ranked, at=T0)  # fmt: skip
            # the same state seen again (a card refresh) is kept once
            assert not rankings.record(db_session=s, incident_id=f"INC-{n}", step=0, role="shadow", arm=arm,
                                       version="shadow-1", ranked=ranked, at=T0)  # fmt: skip
    with session_scope(store.factory) as s:
        with pytest.raises(RegistryError, match="no shadow or canary"):
            policy_report(db_session=s)
        out = policy_report(db_session=s, version="shadow-1")
    assert out["states"] == 4
    # production's top-1 was ranked beside it in the three production-arm states: agrees in 1 (INC-0),
    # production's top-1 within its top-3 in all 3
    assert out["agreement_with_production"] == {
        "states": 3,
        "top1": pytest.approx(1 / 3, abs=1e-4),
        "top3": 1.0,
    }
    # people: restart (top-1), rollback (top-1), restart (top-3), scale_out (top-3)
    assert out["agreement_with_people"] == {"states": 4, "top1": 0.5, "top3": 1.0}
    ope = out["time_to_mitigate_ope"]
    assert ope["candidate"]["n"] == 2 and ope["candidate"]["mean_s"] == 900.0  # (600 + 1200) / 2
    assert ope["people"]["n"] == 4 and ope["people"]["mean_s"] == 1500.0
    assert ope["candidate"]["low_s"] <= 900.0 <= ope["candidate"]["high_s"]
    assert out["guardrail_denials_top1"] == {"count": 1, "by_reason": {"rate_limited": 1}}
    arms = out["canary_arms"]
    assert arms["canary"]["incidents"] == 1 and arms["production"]["incidents"] == 3
    assert arms["canary"]["time_to_mitigate"]["mean_s"] == 1200.0 and arms["canary"]["shown_top1_run"] == 1
    assert arms["production"]["shown_top1_run"] == 2  # INC-0 and INC-2 ran production's top-1
