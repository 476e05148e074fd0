"""The postmortem's timeline: the incident's events plus suggestions, requests, votes and denials, in order.

Every item has ``at`` (RFC 3339 UTC) and ``kind``; ``text`` is one plain line (renderers escape it);
the other keys carry the details a reader or a script wants (who, rank, outcome, rule).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from remediation.postmortem.facts import Facts, parse_time

# a metric moved when it crossed one of these between two snapshots of a service (or first showed it)
MOVES: Mapping[str, tuple[float, bool]] = {  # metric -> (threshold, higher is worse)
    "error_rate": (0.05, True),
    "latency_p99_ms": (500.0, True),
    "availability": (0.9, False),
    "saturation": (0.9, True),
}


def stamp(at: datetime) -> str:
    """Return an RFC 3339 UTC timestamp to the second (``Z`` zone)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bad(metric: str, value: float) -> bool:
    threshold, higher = MOVES[metric]
    return value >= threshold if higher else value < threshold


def metric_moves(previous: Mapping[str, Any], values: Mapping[str, Any]) -> list[str]:
    """Return "metric old -> new" for each watched metric that crossed its threshold since ``previous``."""
    moved: list[str] = []
    for metric in MOVES:
        new = values.get(metric)
        if not isinstance(new, int | float) or isinstance(new, bool):
            continue
        old = previous.get(metric)
        was_bad = isinstance(old, int | float) and _bad(metric, float(old))
        if _bad(metric, float(new)) != was_bad:
            before = f"{float(old):.4g}" if isinstance(old, int | float) else "?"
            moved.append(f"{metric} {before} -> {float(new):.4g}")
    return moved


def _event_item(event: Mapping[str, Any], last_metrics: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    kind, service = str(event.get("type")), event.get("service")
    item: dict[str, Any] = {"at": stamp(parse_time(event["at"])), "kind": kind}
    if service:
        item["service"] = service
    if kind == "alert":
        firing = event.get("status") == "firing"
        item["kind"] = "alert" if firing else "alert_resolved"
        item["name"] = event.get("name")
        item["text"] = f"{event.get('name')} {'fired' if firing else 'resolved'} on {service}"
    elif kind == "metrics":
        raw = event.get("values")
        values: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        moved = metric_moves(last_metrics.get(str(service), {}), values)
        last_metrics[str(service)] = dict(values)
        if not moved:
            return None
        item.update(kind="metric", text=f"{service}: {', '.join(moved)}")
    elif kind in ("deploy", "config_change"):
        detail = event.get("version") or event.get("key") or ""
        item["text"] = f"{kind.replace('_', ' ')} on {service}{f' ({detail})' if detail else ''}"
    elif kind == "action":
        item.update(_action_item(event))
    elif kind == "note":
        item.update(actor=event.get("actor"), text=str(event.get("text", "")))
    elif kind == "resolved":
        item.update(actor=event.get("actor"), text="incident resolved")
    else:
        item["text"] = kind
    return item


def _action_item(event: Mapping[str, Any]) -> dict[str, Any]:
    by_request = bool(event.get("request_id"))
    target = event.get("target")
    what = f"{event.get('action')}{f' on {target}' if target else ''}"
    return {
        "kind": "execution" if by_request else "action",
        "action": event.get("action"),
        "target": target,
        "actor": event.get("actor"),
        "outcome": event.get("outcome"),
        "request_id": event.get("request_id"),
        "text": f"{what}: {event.get('outcome')}"
        + ("" if by_request else f" (by hand, {event.get('actor')})"),
    }


def _bot_items(facts: Facts) -> Iterable[tuple[datetime, dict[str, Any]]]:
    for s in facts.shown:
        what = f"{s.action}{f' on {s.target}' if s.target else ''}"
        yield (
            s.at,
            {
                "kind": "suggestion",
                "rank": s.rank,
                "action": s.action,
                "target": s.target,
                "confidence": round(s.confidence, 3),
                "policy": s.policy,
                "text": f"suggested #{s.rank} {what} (confidence {s.confidence:.0%}, policy {s.policy or 'unknown'})",
            },
        )
    for r in facts.requests:
        what = f"{r.action}{f' on {r.target}' if r.target else ''}"
        yield r.at, {"kind": "request", "actor": r.requester, "request_id": r.id, "text": f"requested {what}"}
        for v in r.votes:
            kind = "approval" if v.decision == "approve" else "rejection"
            verb = "approved" if kind == "approval" else "rejected"
            yield v.at, {"kind": kind, "actor": v.who, "request_id": r.id, "text": f"{verb} {what}"}
    for d in facts.denials:
        what = f"{d.action or '?'}{f' on {d.target}' if d.target else ''}"
        yield (
            d.at,
            {
                "kind": "denial",
                "actor": d.actor,
                "rule": d.step,
                "reason": d.reason,
                "request_id": d.request_id,
                "text": f"guardrails refused {d.step} of {what}: {d.reason}",
            },
        )


def build_timeline(facts: Facts) -> list[dict[str, Any]]:
    """Return the merged timeline, oldest first (ties: the record's order, then the bot's)."""
    merged: list[tuple[datetime, int, dict[str, Any]]] = []
    last_metrics: dict[str, dict[str, Any]] = {}
    for i, event in enumerate(facts.record.get("events", [])):
        item = _event_item(event, last_metrics)
        if item is not None:
            merged.append((parse_time(event["at"]), i, item))
    offset = len(merged) + 1_000_000
    for j, (at, item) in enumerate(_bot_items(facts)):
        merged.append((at, offset + j, {"at": stamp(at), **item}))
    merged.sort(key=lambda x: (x[0], x[1]))
    return [item for _, _, item in merged]
