"""Fill the similar-incident memory: from a policy artifact's simulated incidents and the store's resolved ones."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from incidents_db import incidents
from incidents_db.models import Incident
from remediation.policies.observe import SignalOf, observation_from_record
from remediation.similar.memory import SimilarMemory, signature_of
from sim.topology import Topology

REFRESH_LIMIT = 500
"""The newest resolved incidents a refresh looks at (older ones joined on earlier refreshes)."""


def fix_of(record: Mapping[str, Any]) -> str | None:
    """Return what fixed a resolved incident: its last action that succeeded (None when none did)."""
    done = [
        e for e in record.get("events", []) if e.get("type") == "action" and e.get("outcome") == "succeeded"
    ]
    if not done:
        return None
    last = done[-1]
    return f"{last.get('action')} on {last['target']}" if last.get("target") else str(last.get("action"))


def _at(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def first_observation(
    record: Mapping[str, Any], *, topology: Topology | None, signal_of: SignalOf | None
) -> Any:
    """Return the observation of an incident before its first action (what a card ranked on first)."""
    events = list(record.get("events", []))
    first = next((i for i, e in enumerate(events) if e.get("type") == "action"), len(events))
    now = _at(events[first].get("at")) if first < len(events) else None
    now = now or _at(record.get("resolved_at")) or _at(record.get("opened_at"))
    assert now is not None, "an incident record always has opened_at"
    observation, _ = observation_from_record(
        {**record, "events": events[:first]}, topology=topology, now=now, signal_of=signal_of
    )
    return observation


def add_record(memory: SimilarMemory, record: Mapping[str, Any], *, topology: Topology | None,
               signal_of: SignalOf | None) -> bool:  # fmt: skip
    """Add one resolved incident with what fixed it; return whether it joined (it needs a succeeded action)."""
    key = str(record["id"])
    fix = fix_of(record)
    if fix is None or not record.get("resolved_at"):
        memory.mark(key)
        return False
    sig = signature_of(first_observation(record, topology=topology, signal_of=signal_of))
    return memory.add(key, f"{key}: {record.get('title', '')}", fix, sig)


def refresh(memory: SimilarMemory, *, db_session: Session, topology: Topology | None,
            signal_of: SignalOf | None) -> int:  # fmt: skip
    """Add the store's newly resolved incidents (one indexed query when none is new); return how many joined."""
    ids = db_session.execute(
        sa.select(Incident.id)
        .where(Incident.status == "resolved")
        .order_by(Incident.resolved_at.desc())
        .limit(REFRESH_LIMIT)
    ).scalars()
    added = 0
    for incident_id in [i for i in ids if not memory.known(i)]:
        record = incidents.record(db_session=db_session, incident_id=incident_id)
        added += add_record(memory, record, topology=topology, signal_of=signal_of)
    return added


def add_artifact_memory(memory: SimilarMemory, artifact_memory: Any, *, version: str) -> int:
    """Add a policy artifact's simulated incidents (those saved with signatures); return how many joined."""
    sigs = getattr(artifact_memory, "signatures", None)
    if sigs is None or memory.seeded_from == version:
        return 0
    memory.seeded_from = version
    rows = np.asarray(sigs, dtype=np.float32)
    return memory.add_many(
        (f"{version}#{i}", str(what), str(fix), rows[i])
        for i, (what, fix) in enumerate(zip(artifact_memory.incidents, artifact_memory.fixes, strict=True))
    )
