"""Stores holding one incident: from the simulator, or a hand-built timeline with the bot's part in it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from incidents_db import incidents
from incidents_db.db import open_store
from incidents_db.models import Approval, ApprovalRequest, Suggestion
from incidents_db.schema import IncidentRecord
from incidents_db.service import add_incident
from remediation.audit.service import append
from remediation.guardrails.models import RbacConfig

T0 = datetime(2026, 3, 2, 10, 14, tzinfo=UTC)
ALICE, BOB, CAROL, DAVE = "U0ALICE001", "U0BOB00002", "U0CAROL003", "U0DAVE0004"
RBAC = RbacConfig.model_validate(
    {
        "roles": {"oncall": "on call", "sre-lead": "leads"},
        "users": {
            ALICE: {"roles": ["oncall"]},
            BOB: {"roles": ["oncall"]},
            CAROL: {"roles": ["sre-lead"]},
            DAVE: {"roles": ["sre-lead"]},
        },
        "postmortems": {"publish_roles": ["sre-lead"]},
    }
)


def at(minutes: float) -> datetime:
    """Return T0 plus some minutes."""
    return T0 + timedelta(minutes=minutes)


def stamp(minutes: float) -> str:
    """Return T0 plus some minutes as RFC 3339 text."""
    return at(minutes).strftime("%Y-%m-%dT%H:%M:%SZ")


def add_record(s: Session, record: dict[str, Any]) -> None:
    """Import one v1 record into the store."""
    add_incident(db_session=s, record=IncidentRecord.model_validate_json(json.dumps(record)))
    s.commit()


EVENTS: tuple[tuple[float, str, dict[str, Any]], ...] = (
    (0, "alert", {"status": "firing", "name": "HighErrorRate", "service": "checkoutservice"}),
    (0, "metrics", {"service": "checkoutservice",
                    "values": {"error_rate": 0.3, "latency_p99_ms": 300, "availability": 0.99}}),
    (0, "alert", {"status": "firing", "name": "HighErrorRate", "service": "frontend"}),
    (0, "metrics", {"service": "frontend", "values": {"error_rate": 0.2, "latency_p99_ms": 250,
                                                      "availability": 0.99, "error_rate_to:checkoutservice": 0.3}}),
    (4, "note", {"actor": ALICE, "text": "looking"}),
    (10, "action", {"action": "restart_service", "target": "checkoutservice", "params": {}, "actor": BOB,
                    "outcome": "no_effect", "request_id": "req-1"}),
    (20, "action", {"action": "rollback_deploy", "target": "checkoutservice", "params": {}, "actor": CAROL,
                    "outcome": "succeeded", "request_id": "req-2"}),
    (22, "alert", {"status": "resolved", "name": "HighErrorRate", "service": "checkoutservice"}),
    (25, "action", {"action": "flush_cache", "target": "redis-cart", "params": {}, "actor": ALICE,
                    "outcome": "succeeded"}),
)  # fmt: skip


def hand_built(s: Session, *, note: str | None = None, actions: bool = True, resolve: bool = True) -> str:
    """Open a checkout incident live: a deploy, alerts, a restart that did nothing, a rollback that worked,
    a hand action; resolve it at minute 30; return its id."""
    inc = incidents.create(
        db_session=s, title="Checkout errors after deploy", services=["checkoutservice"], severity="sev2",
        source="slack", now=at(-3), topology="online-boutique",
    )  # fmt: skip
    incidents.append(
        db_session=s,
        incident_id=inc.id,
        type_="deploy",
        at=at(-3),
        service="checkoutservice",
        version="v2.4.1",
    )
    for minutes, kind, fields in EVENTS:
        if kind == "action" and not actions:
            continue
        payload = dict(fields)
        service = payload.pop("service", None)
        incidents.append(
            db_session=s, incident_id=inc.id, type_=kind, at=at(minutes), service=service, **payload
        )
    if note is not None:
        incidents.append(db_session=s, incident_id=inc.id, type_="note", at=at(26), actor=BOB, text=note)
    if resolve:
        incidents.resolve(db_session=s, incident_id=inc.id, actor=ALICE, now=at(30))
    s.commit()
    return inc.id


def add_bot_part(s: Session, incident_id: str = "INC-1") -> None:
    """Add what the bot did: two suggestions, two requests with votes (one waited), a guardrail denial."""
    for rank, action, request_id in ((1, "rollback_deploy", "req-2"), (2, "restart_service", "req-1")):
        s.add(Suggestion(
            incident_id=incident_id, created_at=at(1), policy_version="runbook-baseline@1", rank=rank,
            action=action, target="checkoutservice", params={}, score=1.0 / rank, confidence=0.8 / rank,
            risk="low", reason="r", token=f"{rank:032x}", fix_key=f"{rank:064x}", request_id=request_id,
        ))  # fmt: skip
    for rid, action, asked, who, voted in (
        ("req-1", "restart_service", 8, ALICE, 9),
        ("req-2", "rollback_deploy", 12, ALICE, 19),
    ):
        s.add(ApprovalRequest(
            id=rid, incident_id=incident_id, action=action, target="checkoutservice", params={}, risk="low",
            requester=who, state="succeeded", created_at=at(asked), updated_at=at(voted + 1),
            policy_version="runbook-baseline@1",
        ))  # fmt: skip
        s.flush()
        s.add(
            Approval(
                request_id=rid, approver=CAROL if rid == "req-2" else BOB, decision="approve", at=at(voted)
            )
        )
    append(
        db_session=s, actor=BOB, event="approve", decision="denied", reason="two-person rule: BOB requested it",
        action="rollback_deploy", target="checkoutservice", incident_id=incident_id, request_id="req-2", at=at(15),
    )  # fmt: skip
    s.commit()


@pytest.fixture
def store(migrated_db_url: str) -> Iterator[Session]:
    """A session on a migrated store (SQLite and PostgreSQL)."""
    engine = open_store(migrated_db_url)
    with Session(engine) as s:
        yield s
    engine.dispose()
