"""The postmortem report as JSON-ready values, built from the store's facts alone (deterministic).

Sections: summary, impact, detection, timeline, actions (what was suggested, requested, approved, run),
decisions (what the bot suggested against what people did), root cause (inferred beside recorded),
contributing factors, action items, figures. Fields people edit in review (summary, root cause,
contributing factors, action items) replace the derived ones; everything else is derived each time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import networkx as nx

from remediation.postmortem.facts import Facts, Request, Shown, parse_time
from remediation.postmortem.rootcause import infer
from remediation.postmortem.timeline import build_timeline, stamp

FORMAT = "remediate.postmortem/v1"
BOTS = frozenset({"remediate"})
DONE = frozenset({"succeeded", "failed", "unknown", "no_effect"})


@dataclass(frozen=True)
class Review:
    """Where the postmortem stands in review, and what people wrote into it."""

    status: str = "draft"
    version: int = 1
    reviewers: tuple[str, ...] = ()
    signed_off: tuple[str, ...] = ()
    fields: Mapping[str, Any] = field(default_factory=dict)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else max(0.0, (end - start).total_seconds())


def _events(facts: Facts, kind: str) -> list[Mapping[str, Any]]:
    return [e for e in facts.record.get("events", []) if e.get("type") == kind]


def _first_alert(facts: Facts) -> Mapping[str, Any] | None:
    return next((e for e in _events(facts, "alert") if e.get("status") == "firing"), None)


def _acknowledged(facts: Facts, bots: frozenset[str]) -> tuple[datetime, str] | None:
    """Return when and by whom a person first acted: a note, an action, a request or a vote."""
    seen: list[tuple[datetime, str]] = []
    for e in facts.record.get("events", []):
        actor = e.get("actor")
        if e.get("type") in ("note", "action") and actor and str(actor) not in bots:
            seen.append((parse_time(e["at"]), str(actor).split(",")[0]))
    seen += [(r.at, r.requester) for r in facts.requests if r.requester not in bots]
    seen += [(v.at, v.who) for r in facts.requests for v in r.votes]
    return min(seen) if seen else None


def _suggestion_of(facts: Facts, request: Request) -> Shown | None:
    linked = [s for s in facts.shown if s.request_id == request.id]
    return linked[0] if linked else None


def build_actions(facts: Facts) -> list[dict[str, Any]]:
    """Return every request and every hand action, in time order, with rank, approvers and outcome."""
    ran = {str(e.get("request_id")): e for e in _events(facts, "action") if e.get("request_id")}
    out: list[tuple[datetime, dict[str, Any]]] = []
    for r in facts.requests:
        shown = _suggestion_of(facts, r)
        approved = [v for v in r.votes if v.decision == "approve"]
        done = ran.get(r.id)
        out.append(
            (
                r.at,
                {
                    "at": stamp(r.at),
                    "action": r.action,
                    "target": r.target,
                    "params": r.params,
                    "suggested_rank": shown.rank if shown else None,
                    "confidence": round(shown.confidence, 3) if shown else None,
                    "policy": (shown.policy if shown else None) or r.policy,
                    "requested_by": r.requester,
                    "request_id": r.id,
                    "approved_by": [v.who for v in approved],
                    "rejected_by": [v.who for v in r.votes if v.decision == "reject"],
                    "approval_wait_s": _seconds(r.at, approved[-1].at) if approved else None,
                    "outcome": str(done.get("outcome")) if done else r.state,
                    "done_at": stamp(parse_time(done["at"])) if done else None,
                },
            )
        )
    for e in _events(facts, "action"):
        if e.get("request_id"):
            continue
        at = parse_time(e["at"])
        out.append(
            (
                at,
                {
                    "at": stamp(at),
                    "action": e.get("action"),
                    "target": e.get("target"),
                    "params": dict(e.get("params") or {}),
                    "suggested_rank": None,
                    "confidence": None,
                    "policy": None,
                    "requested_by": e.get("actor"),
                    "request_id": None,
                    "approved_by": [],
                    "rejected_by": [],
                    "approval_wait_s": None,
                    "outcome": e.get("outcome"),
                    "done_at": stamp(at),
                },
            )
        )
    out.sort(key=lambda x: (x[0], x[1]["request_id"] or ""))
    actions = [a for _, a in out]
    mitigating = mitigating_index(actions)
    for i, a in enumerate(actions):
        a["mitigated"] = i == mitigating
    return actions


def mitigating_index(actions: Sequence[Mapping[str, Any]]) -> int | None:
    """Return the index of the action that mitigated: the last one that succeeded, None if none did."""
    done = [i for i, a in enumerate(actions) if a.get("outcome") == "succeeded"]
    return done[-1] if done else None


def build_decisions(facts: Facts, actions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return, per action taken, the suggestions on the card then, which rank was chosen, and by hand or not."""
    out: list[dict[str, Any]] = []
    for a in actions:
        latest: dict[tuple[str, str | None], Shown] = {}
        for s in facts.shown:
            if stamp(s.at) <= a["at"]:  # shown by then (to the second, as the report says times)
                latest[(s.action, s.target)] = s
        shown = sorted(latest.values(), key=lambda s: (s.rank, s.action, s.target or ""))[:5]
        out.append(
            {
                "at": a["at"],
                "did": {"action": a["action"], "target": a["target"]},
                "suggestions": [
                    {
                        "rank": s.rank,
                        "action": s.action,
                        "target": s.target,
                        "confidence": round(s.confidence, 3),
                        "policy": s.policy,
                    }
                    for s in shown
                ],
                "chosen_rank": a["suggested_rank"],
                "by_hand": a["request_id"] is None,
                "outcome": a["outcome"],
                "mitigated": a["mitigated"],
            }
        )
    return out


def build_impact(facts: Facts, graph: nx.DiGraph | None) -> dict[str, Any]:
    """Return duration, affected services, severity and the worst user-facing metrics recorded."""
    rec = facts.record
    opened = parse_time(rec["opened_at"])
    resolved = parse_time(rec["resolved_at"]) if rec.get("resolved_at") else None
    fronts = {n for n, kind in (graph.nodes(data="kind") if graph is not None else []) if kind == "frontend"}
    worst: dict[str, dict[str, Any]] = {}
    for e in _events(facts, "metrics"):
        service, values = e.get("service"), e.get("values") or {}
        if fronts and service not in fronts:
            continue
        for metric, higher in (("error_rate", True), ("latency_p99_ms", True), ("availability", False)):
            value = values.get(metric)
            if not isinstance(value, int | float):
                continue
            old = worst.get(metric)
            if old is None or (value > old["value"] if higher else value < old["value"]):
                worst[metric] = {
                    "service": service,
                    "value": round(value, 4),
                    "at": stamp(parse_time(e["at"])),
                }
    return {
        "severity": rec.get("severity"),
        "opened_at": stamp(opened),
        "resolved_at": stamp(resolved) if resolved else None,
        "duration_s": _seconds(opened, resolved),
        "affected_services": sorted(
            {*rec.get("services", []), *(e.get("service") for e in _events(facts, "alert"))}
        ),
        "user_facing": worst,
        "user_facing_scope": "frontends" if fronts else "all services",
    }


def build_figures(facts: Facts, actions: Sequence[Mapping[str, Any]], bots: frozenset[str]) -> dict[str, Any]:
    """Return time to acknowledge / mitigate / resolve (from the first alert, else the opening) and counts."""
    rec = facts.record
    first = _first_alert(facts)
    start = parse_time(first["at"]) if first else parse_time(rec["opened_at"])
    ack = _acknowledged(facts, bots)
    m = mitigating_index(actions)
    mitigated = parse_time(actions[m]["done_at"] or actions[m]["at"]) if m is not None else None
    resolved = parse_time(rec["resolved_at"]) if rec.get("resolved_at") else None
    waits = [float(a["approval_wait_s"]) for a in actions if a.get("approval_wait_s") is not None]
    return {
        "time_to_acknowledge_s": _seconds(start, ack[0]) if ack else None,
        "time_to_mitigate_s": _seconds(start, mitigated),
        "time_to_resolve_s": _seconds(start, resolved),
        "actions_tried": sum(1 for a in actions if a.get("outcome") in DONE),
        "requests": len(facts.requests),
        "approvals_waited_for": len(waits),
        "approval_wait_total_s": sum(waits),
        "approval_wait_max_s": max(waits, default=None),
        "guardrail_denials": len(facts.denials),
    }


def _derived_factors(facts: Facts, actions: Sequence[Mapping[str, Any]], service: str | None) -> list[str]:
    factors: list[str] = []
    for e in facts.record.get("events", []):
        if e.get("type") in ("deploy", "config_change") and e.get("service") == service:
            factors.append(f"a {e['type'].replace('_', ' ')} on {service} at {stamp(parse_time(e['at']))}")
    failed = [a for a in actions if a.get("outcome") in ("failed", "no_effect")]
    if failed:
        factors.append(
            f"{len(failed)} action(s) did not help: " + ", ".join(str(a["action"]) for a in failed)
        )
    slow = [a for a in actions if (a.get("approval_wait_s") or 0) >= 300]
    if slow:
        factors.append(f"{len(slow)} approval(s) took five minutes or more")
    if facts.denials:
        factors.append(f"guardrails refused {len(facts.denials)} step(s)")
    return factors


def build_report(
    facts: Facts, *, graph: nx.DiGraph | None, review: Review, bots: frozenset[str] = BOTS
) -> dict[str, Any]:
    """Return the whole report (``remediate.postmortem/v1``) for the facts and the review's state."""
    rec, edited = facts.record, review.fields
    actions = build_actions(facts)
    inferred = infer(rec.get("events", []), graph)
    recorded = dict(rec.get("root_cause") or {})
    if edited.get("root_cause"):
        recorded["text"] = str(edited["root_cause"])
    first = _first_alert(facts)
    ack = _acknowledged(facts, bots)
    figures = build_figures(facts, actions, bots)
    return {
        "format": FORMAT,
        "incident": rec["id"],
        "title": rec.get("title", ""),
        "status": review.status,
        "version": review.version,
        "reviewers": list(review.reviewers),
        "signed_off_by": list(review.signed_off),
        "summary": str(edited.get("summary") or _summary(rec, actions, inferred.service, figures)),
        "impact": build_impact(facts, graph),
        "detection": {
            "first_alert": (
                {
                    "at": stamp(parse_time(first["at"])),
                    "name": first.get("name"),
                    "service": first.get("service"),
                }
                if first
                else None
            ),
            "acknowledged_at": stamp(ack[0]) if ack else None,
            "acknowledged_by": ack[1] if ack else None,
            "time_to_acknowledge_s": figures["time_to_acknowledge_s"],
        },
        "timeline": build_timeline(facts),
        "actions": actions,
        "decisions": build_decisions(facts, actions),
        "root_cause": {"inferred": inferred.as_dict(), "recorded": recorded or None},
        "contributing_factors": list(
            edited.get("contributing_factors") or _derived_factors(facts, actions, inferred.service)
        ),
        "action_items": [dict(i) for i in edited.get("action_items") or []],
        "figures": figures,
    }


def _summary(
    rec: Mapping[str, Any],
    actions: Sequence[Mapping[str, Any]],
    cause: str | None,
    figures: Mapping[str, Any],
) -> str:
    m = mitigating_index(actions)
    fix = f"{actions[m]['action']} on {actions[m]['target']}" if m is not None else "no recorded action"
    took = figures.get("time_to_resolve_s")
    length = f" over {round(took / 60)} min" if isinstance(took, float) else ""
    return (
        f'{rec.get("severity")} incident "{rec.get("title", "")}"{length}; {len(actions)} action(s) requested or '
        f"taken, mitigated by {fix}; probable root cause: {cause or 'not inferred'}."
    )
