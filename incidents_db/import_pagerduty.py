"""A PagerDuty export (incidents with their log entries, REST API v2 shapes) as `remediate.incident/v1` records.

The file is JSON: ``{"incidents": [...]}`` or a list of incidents, each with its ``log_entries``
(``include[]=log_entries`` style), or a top-level ``log_entries`` list whose entries name their
``incident.id``. An incident becomes ``PD-<id>``; its priority ``P1``..``P4`` (``P5`` -> sev4), else its
urgency (high -> sev2, low -> sev3), gives the severity. Log entries become timeline events: a trigger is
a firing alert on the incident's service, a resolve is the resolution, everything else (acknowledge,
annotate, escalate, assign, notify) a note with who did it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from incidents_db.errors import MappingError
from incidents_db.import_sql import Record
from incidents_db.schema import FORMAT

_PRIORITY = re.compile(r"^P([1-5])\b", re.IGNORECASE)


def _summary(obj: Any) -> str:
    return str(obj.get("summary") or obj.get("name") or "") if isinstance(obj, dict) else ""


def _severity(incident: dict[str, Any]) -> str:
    found = _PRIORITY.match(_summary(incident.get("priority")))
    if found:
        return f"sev{min(4, int(found.group(1)))}"
    return "sev2" if str(incident.get("urgency", "high")).lower() == "high" else "sev3"


def _event(entry: dict[str, Any], incident: dict[str, Any], service: str) -> dict[str, Any] | None:
    kind, at = str(entry.get("type", "")), entry.get("created_at")
    actor = _summary(entry.get("agent")) or None
    if kind.startswith("trigger_log_entry"):
        name = _summary(entry.get("channel")) or str(incident.get("title") or "PagerDuty trigger")
        return {"type": "alert", "at": at, "status": "firing", "name": name[:200], "service": service}
    if kind.startswith("resolve_log_entry"):
        return {"type": "resolved", "at": at}
    text = str(
        entry.get("summary") or _summary(entry.get("channel")) or kind.replace("_log_entry", "")
    ).strip()
    return {"type": "note", "at": at, "actor": actor, "text": text} if text else None


def _record(incident: dict[str, Any], entries: list[dict[str, Any]]) -> dict[str, Any]:
    service = _summary(incident.get("service")) or "unknown"
    events = [
        e for e in (_event(x, incident, service) for x in entries if isinstance(x, dict)) if e is not None
    ]
    events.sort(key=lambda e: str(e.get("at") or ""))
    resolved = next((e["at"] for e in reversed(events) if e["type"] == "resolved"), None)
    if resolved is None and incident.get("status") == "resolved":
        resolved = incident.get("resolved_at") or incident.get("last_status_change_at")
    record = {
        "format": FORMAT,
        "id": f"PD-{incident.get('id')}",
        "title": str(incident.get("title") or incident.get("summary") or "").strip(),
        "severity": _severity(incident),
        "services": [service],
        "opened_at": incident.get("created_at"),
        "events": events,
    }
    if resolved:
        record["resolved_at"] = resolved
    return record


def read_pagerduty(path: Path) -> Iterator[Record]:
    """Yield (incident id, record or reason) for every incident in a PagerDuty export."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MappingError(f"PagerDuty export {path}: {exc}") from None
    incidents = data.get("incidents") if isinstance(data, dict) else data
    if not isinstance(incidents, list):
        raise MappingError(f'PagerDuty export {path}: expected a list of incidents or {{"incidents": [...]}}')
    loose: dict[str, list[dict[str, Any]]] = {}
    for entry in data.get("log_entries", []) if isinstance(data, dict) else []:
        if isinstance(entry, dict) and isinstance(entry.get("incident"), dict):
            loose.setdefault(str(entry["incident"].get("id")), []).append(entry)
    for incident in incidents:
        if not isinstance(incident, dict) or not incident.get("id"):
            yield "?", "expected an incident object with an id"
            continue
        entries = list(incident.get("log_entries") or []) + loose.get(str(incident["id"]), [])
        yield f"PD-{incident['id']}", _record(incident, entries)
