"""Row factories: small, readable incident records for tests."""

from __future__ import annotations

import json
from typing import Any


def incident(incident_id: str = "INC-1", **overrides: Any) -> dict[str, Any]:
    """A valid resolved incident with every event type; override any top-level key."""
    record: dict[str, Any] = {
        "format": "remediate.incident/v1",
        "id": incident_id,
        "title": "Checkout errors after deploy",
        "severity": "sev2",
        "topology": "online-boutique",
        "services": ["checkoutservice"],
        "opened_at": "2026-03-02T10:14:00Z",
        "resolved_at": "2026-03-02T10:41:00Z",
        "root_cause": {"service": "checkoutservice", "fault": "bad_deploy"},
        "events": [
            {
                "at": "2026-03-02T10:12:30Z",
                "type": "deploy",
                "service": "checkoutservice",
                "version": "v2.4.1",
            },
            {"at": "2026-03-02T10:13:00Z", "type": "config_change", "service": "cartservice", "change": "x"},
            {
                "at": "2026-03-02T10:14:00Z",
                "type": "alert",
                "status": "firing",
                "name": "HighErrorRate",
                "service": "checkoutservice",
                "labels": {"severity": "page"},
                "value": 0.12,
            },
            {
                "at": "2026-03-02T10:14:00Z",
                "type": "metrics",
                "service": "checkoutservice",
                "values": {"error_rate": 0.12, "latency_p99_ms": 850, "cpu": 0.41},
            },
            {
                "at": "2026-03-02T10:20:00Z",
                "type": "action",
                "action": "restart_service",
                "target": "checkoutservice",
                "params": {},
                "actor": "U024BE7LH",
                "outcome": "no_effect",
            },
            {
                "at": "2026-03-02T10:31:00Z",
                "type": "action",
                "action": "rollback_deploy",
                "target": "checkoutservice",
                "params": {},
                "actor": "U024BE7LH",
                "outcome": "succeeded",
            },
            {
                "at": "2026-03-02T10:33:00Z",
                "type": "alert",
                "status": "resolved",
                "name": "HighErrorRate",
                "service": "checkoutservice",
            },
            {"at": "2026-03-02T10:35:00Z", "type": "note", "actor": "U024BE7LH", "text": "error rate back"},
            {"at": "2026-03-02T10:41:00Z", "type": "resolved"},
        ],
    }
    record.update(overrides)
    return record


def line(record: dict[str, Any]) -> str:
    """One JSON line (unicode kept as is)."""
    return json.dumps(record, ensure_ascii=False)


def with_event(record: dict[str, Any], index: int, **changes: Any) -> dict[str, Any]:
    """A copy of the record with one event changed (a value of None removes the key)."""
    events = [dict(e) for e in record["events"]]
    events[index].update(changes)
    events[index] = {k: v for k, v in events[index].items() if v is not None}
    return {**record, "events": events}
