"""Block Kit rendering: the incident card, its timeline lines, and short replies. Pure functions."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from bot.app.suggest import Ranking, SuggestionView
from remediation.approvals import states as st

HIGH_RISKS = ("high", "critical")
MAX_SIGNALS = 8
RISK_MARK = {"low": "🟢", "medium": "🟡", "high": "🟠", "critical": "🔴"}


def _plain(text: str, limit: int = 150) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:limit], "emoji": True}


def _md(text: str, limit: int = 3000) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text[: limit - 1] + "…" if len(text) > limit else text}


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    return f"~{max(1, round(seconds / 60))} min"


def target_label(action: str, target: str | None) -> str:
    """Return ``action on target`` (or just the action for global ones)."""
    return f"{action} on {target}" if target else action


def key_signals(record: dict[str, Any]) -> list[str]:
    """Return the alerts still firing and the latest metrics of affected services, as short lines."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    metrics: dict[str, dict[str, float]] = {}
    for event in record.get("events", []):
        if event.get("type") == "alert":
            latest[(str(event.get("name")), str(event.get("service")))] = event
        elif event.get("type") == "metrics":
            metrics.setdefault(str(event.get("service")), {}).update(event.get("values", {}))
    lines = []
    for (name, service), event in sorted(latest.items()):
        if event.get("status") == "firing":
            value = f" = {event['value']:g}" if isinstance(event.get("value"), int | float) else ""
            lines.append(f"🔥 *{name}* on `{service}`{value}")
    affected = set(record.get("services") or ())
    for service, values in sorted(metrics.items()):
        if affected and service not in affected:
            continue  # snapshots of the whole graph feed the ranking; the card shows the affected ones
        shown = ", ".join(f"{k} {float(v):.3g}" for k, v in sorted(values.items())[:4])
        lines.append(f"📈 `{service}`: {shown}")
    return lines[:MAX_SIGNALS] or ["no firing alerts"]


def suggestion_value(incident_id: str, view: SuggestionView) -> str:
    """Return the button value: the request id when one is open, else the suggestion itself."""
    request = view.request
    if request is not None and request.state in st.OPEN:
        return json.dumps({"r": request.id, "i": incident_id})
    item = view.ranked
    return json.dumps({"i": incident_id, "a": item.action, "t": item.target, "p": dict(item.params)})


def _status_line(view: SuggestionView) -> str:
    request = view.request
    if request is None or request.state == st.EXPIRED:
        if not view.decision.allowed:
            return f"🚫 cannot be approved now: {view.decision.reason}"
        need = view.decision.approvals_required
        roles = ", ".join(view.decision.approver_roles) or "nobody"
        return f"needs {need} approval(s) from {roles}"
    approvers = ", ".join(f"<@{a}>" for a in request.approvers)
    if request.state in (st.PENDING, st.PROPOSED):
        done = len(request.approvers)
        return f"⏳ {done} of {request.required_approvals} approvals" + (
            f" ({approvers})" if approvers else ""
        )
    if request.state in (st.APPROVED, st.EXECUTING):
        return f"⚙️ approved by {approvers}; running"
    labels = {
        st.SUCCEEDED: "✅ executed",
        st.FAILED: "❌ failed",
        st.UNKNOWN: "❔ outcome unknown",
        st.REJECTED: "✋ rejected",
        st.CANCELLED: "cancelled",
    }
    return labels.get(request.state, request.state) + (f" (approved by {approvers})" if approvers else "")


def _buttons(incident_id: str, view: SuggestionView) -> dict[str, Any]:
    value = suggestion_value(incident_id, view)
    label = target_label(view.ranked.action, view.ranked.target)
    approve: dict[str, Any] = {
        "type": "button",
        "action_id": f"approve:{view.n}",
        "text": _plain("Approve", 75),
        "style": "primary",
        "value": value,
    }
    if view.ranked.risk in HIGH_RISKS:
        approve["confirm"] = {
            "title": _plain("High-risk action", 100),
            "text": _md(f"Approve *{label}* ({view.ranked.risk} risk) on {incident_id}?", 300),
            "confirm": _plain("Approve", 30),
            "deny": _plain("Cancel", 30),
            "style": "danger",
        }
    reject = {
        "type": "button",
        "action_id": f"reject:{view.n}",
        "text": _plain("Reject", 75),
        "style": "danger",
        "value": value,
    }
    why = {"type": "button", "action_id": f"why:{view.n}", "text": _plain("Why", 75), "value": value}
    elements = [approve, reject, why] if view.approvable else [why]
    return {"type": "actions", "block_id": f"suggestion-{view.n}", "elements": elements}


def render_card(ranking: Ranking, *, policy_name: str, now: datetime) -> tuple[str, list[dict[str, Any]]]:
    """Return (fallback text, blocks) of an incident's card."""
    rec = ranking.record
    resolved = bool(rec.get("resolved_at"))
    state = "✅ Resolved" if resolved else "🔴 Open"
    text = f"{rec['id']} [{rec['severity']}] {rec['title']} ({'resolved' if resolved else 'open'})"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(f"{rec['id']}: {rec['title']}")},
        {
            "type": "section",
            "fields": [
                _md(f"*Severity*\n{rec['severity']}"),
                _md(f"*Status*\n{state}"),
                _md(f"*Services*\n{', '.join(rec.get('services') or []) or 'unknown'}"),
                _md(f"*Opened*\n{rec['opened_at']}"),
            ],
        },
        {"type": "section", "text": _md("*Key signals*\n" + "\n".join(key_signals(rec)))},
    ]
    if not resolved:
        blocks.append({"type": "divider"})
        if not ranking.suggestions:
            blocks.append({"type": "section", "text": _md("No suggestions.")})
        for view in ranking.suggestions:
            item = view.ranked
            mark = RISK_MARK.get(item.risk, "")
            line = (
                f"*{view.n}. {target_label(item.action, item.target)}*\n"
                f"confidence {item.confidence:.0%} · {mark} {item.risk} risk · "
                f"time to mitigate {_minutes(item.expected_ttm_s)}\n"
                f"_{item.reason}_\n{_status_line(view)}"
            )
            blocks.append({"type": "section", "block_id": f"text-{view.n}", "text": _md(line)})
            blocks.append(_buttons(rec["id"], view))
    footer = f"ranked by {policy_name} · updated {now:%H:%M:%S} UTC · timeline in thread"
    if not resolved and not any(e.get("type") == "metrics" for e in rec.get("events", [])):
        # say so: without metrics the ranking sees alerts and changes only (docs/alerts.md)
        footer += " · ranked on alerts only: no metric snapshots received"
    blocks.append({"type": "context", "elements": [_md(footer, 2000)]})
    return text, blocks


def timeline_line(event: dict[str, Any]) -> str:
    """Return one timeline event as a short mrkdwn line."""
    at = str(event.get("at", ""))[11:19]
    kind = event.get("type")
    if kind == "alert":
        icon = "🔥" if event.get("status") == "firing" else "✅"
        return f"`{at}` {icon} alert {event.get('name')} {event.get('status')} on `{event.get('service')}`"
    if kind == "action":
        who = event.get("actor", "?")
        return (
            f"`{at}` ⚙️ {target_label(str(event.get('action')), event.get('target'))} → "
            f"*{event.get('outcome')}* (approved by {who})"
            + (f": {event['detail']}" if event.get("detail") else "")
        )
    if kind == "note":
        return f"`{at}` 📝 <@{event.get('actor')}>: {event.get('text', '')}"
    if kind == "resolved":
        return f"`{at}` ✅ resolved" + (f" by <@{event['actor']}>" if event.get("actor") else "")
    if kind == "metrics":
        return f"`{at}` 📈 metrics of `{event.get('service')}`"
    return f"`{at}` {kind} {event.get('service') or ''}".rstrip()


def timeline_text(events: Iterable[dict[str, Any]], limit: int = 30) -> str:
    """Return timeline lines joined, the oldest first, at most ``limit`` (the rest summarised)."""
    lines = [timeline_line(e) for e in events]
    if len(lines) > limit:
        hidden = len(lines) - limit
        lines = [*lines[: limit // 2], f"… {hidden} more events …", *lines[-(limit - limit // 2) :]]
    return "\n".join(lines)
