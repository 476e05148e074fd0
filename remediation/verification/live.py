"""Pictures of a live incident: the alerts firing and the latest metrics, from its timeline and snapshots."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from incidents_db.snapshots import latest
from remediation.verification.judge import Picture
from sim.topology import Topology


def _stamp(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def picture_from_record(record: Mapping[str, Any], until: datetime | None = None) -> Picture:
    """Fold the record's timeline up to ``until`` (all of it when None) into firing alerts and metrics."""
    firing: set[tuple[str, str]] = set()
    metrics: dict[str, dict[str, float]] = {}
    for event in record.get("events", []):
        at = _stamp(event.get("at"))
        if until is not None and at is not None and at > until:
            break
        svc = str(event.get("service") or "")
        if event.get("type") == "alert":
            key = (svc, str(event.get("name")))
            (firing.add if event.get("status") == "firing" else firing.discard)(key)
        elif event.get("type") == "metrics":
            metrics[svc] = {
                str(k): float(v) for k, v in (event.get("values") or {}).items() if isinstance(v, int | float)
            }
    return Picture(frozenset(firing), metrics)


def with_snapshots(
    picture: Picture, *, db_session: Session, since: datetime, services: Iterable[str]
) -> Picture:
    """Overlay the kept snapshots received since ``since`` (newer than the timeline's copies)."""
    metrics = {k: dict(v) for k, v in picture.metrics.items()}
    for row in latest(db_session=db_session, since=since, services=services):
        metrics[row.service] = {
            str(k): float(v) for k, v in dict(row.values).items() if isinstance(v, int | float)
        }
    return Picture(picture.firing, metrics)


def callers(topology: Topology | None, target: str | None) -> set[str]:
    """Return every service calling ``target`` directly or through others (none without a graph)."""
    if topology is None or target is None or target not in topology.index:
        return set()
    seen: set[str] = set()
    todo = [topology.index[target]]
    while todo:
        n = todo.pop()
        for caller in topology.src[topology.dst == n].tolist():
            name = topology.services[caller]
            if name not in seen:
                seen.add(name)
                todo.append(caller)
    return seen


def neighbours(topology: Topology | None, target: str | None) -> set[str]:
    """Return the direct callers and callees of ``target`` (none without a graph)."""
    if topology is None or target is None or target not in topology.index:
        return set()
    n = topology.index[target]
    near = topology.src[topology.dst == n].tolist() + topology.dst[topology.src == n].tolist()
    return {topology.services[i] for i in near}


def exposed(topology: Topology | None, picture: Picture) -> set[str]:
    """Return the callers of every service already alerting (where an old fault spreads on its own)."""
    out: set[str] = set()
    for svc, _ in picture.firing:
        out |= callers(topology, svc)
    return out
