"""Build a policy observation from a live incident timeline (the `remediate.incident/v1` form)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from sim.observation import Observation, build_observation
from sim.topology import Topology, parse_topology

DEFAULT_KIND = "service"


def topology_with(base: Topology | None, services: Iterable[str]) -> Topology:
    """Return ``base``, extended with isolated nodes (kind "service") for services it does not know."""
    known = set(base.services) if base is not None else set()
    extra = sorted({s for s in services if s and s not in known})
    if base is not None and not extra:
        return base
    doc: dict[str, Any] = base.to_node_link() if base is not None else {"nodes": [], "edges": []}
    nodes = list(doc.get("nodes", [])) + [{"id": s, "kind": DEFAULT_KIND} for s in extra]
    if not nodes:
        nodes = [{"id": "unknown", "kind": DEFAULT_KIND}]
    name = base.name if base is not None else "ad-hoc"
    return parse_topology({**doc, "nodes": nodes}, source="incident services", name=name)


SignalOf = Callable[[str, Mapping[str, str]], str | None]


def alert_labels(event: Mapping[str, Any]) -> dict[str, str]:
    """Return an alert event's labels as a string map (imported history may carry other values)."""
    labels = event.get("labels")
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {}


def observation_from_record(
    record: Mapping[str, Any], *, topology: Topology | None, now: datetime, signal_of: SignalOf | None = None
) -> tuple[Observation, Topology]:
    """Return the observation of an incident record at ``now`` and the topology it was built on.

    Alerts still firing (the latest status per alert, by name, service and fingerprint), the latest
    metrics per service, deploys and config changes, and actions taken all feed
    `sim.observation.build_observation`, so the features match the simulator's. ``signal_of`` maps a
    real alert (name, labels) to the policy signal it carries (`playbooks.vocabulary`); an alert it maps
    to None keeps its name, which the observation ignores unless it is a signal itself.
    """
    events = list(record.get("events", []))
    services = set(record.get("services") or ())
    services.update(str(e["service"]) for e in events if e.get("service"))
    graph = topology_with(topology, services)
    latest_alert: dict[tuple[str, str, str], Mapping[str, Any]] = {}
    metrics: dict[str, dict[str, float]] = {}
    changes, actions = [], []
    for event in events:
        kind = event.get("type")
        if kind == "alert":
            latest_alert[
                (str(event.get("name")), str(event.get("service")), str(event.get("fingerprint")))
            ] = event
        elif kind == "metrics" and event.get("service"):
            metrics.setdefault(str(event["service"]), {}).update(
                {k: float(v) for k, v in dict(event.get("values", {})).items()}
            )
        elif kind in ("deploy", "config_change"):
            changes.append(event)
        elif kind == "action" and event.get("target"):
            actions.append(event)
    firing = [a for a in latest_alert.values() if a.get("status") == "firing"]
    if signal_of is not None:
        firing = [
            {**a, "name": signal_of(str(a.get("name")), alert_labels(a)) or a.get("name")} for a in firing
        ]
    opened = record.get("opened_at")
    opened_at = datetime.fromisoformat(opened.replace("Z", "+00:00")) if isinstance(opened, str) else None
    observation = build_observation(
        topology=graph,
        metrics=metrics,
        alerts=firing,
        changes=changes,
        actions=actions,
        now=now,
        opened_at=opened_at,
    )
    return observation, graph
