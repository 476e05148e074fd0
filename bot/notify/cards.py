"""Block Kit rendering: the incident card, its timeline lines, and short replies. Pure functions."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

from bot.notify.mrkdwn import bold, clip, clip_md, escape, italic, link, mention, safe, styled_md
from bot.notify.suggest import Ranking, SuggestionView
from bot.notify.times import CLOCK, duration, slack_date
from bot.notify.verdicts import recurring_line, verdict_lines
from incidents_db.roles import roles_of_record
from remediation.approvals import states as st
from remediation.postmortem.models import Draft

HIGH_RISKS = ("high", "critical")
MAX_SIGNALS = 8
# Block Kit's limits (Slack answers invalid_blocks past them) and ours for what we build from outside text
MAX_HEADER, MAX_SECTION, MAX_FIELD, MAX_CONTEXT = 150, 3000, 2000, 2000
MAX_FALLBACK = 3000  # the card's fallback text: what notifications show
MAX_NAME = 200  # an alert name, service or metric key as shown in a line
MAX_LINE = 500  # one timeline line
LINKS = ("runbook", "source", "dashboard", "silence")  # an alert's links, in the order a card shows them
RISK_MARK = {"low": "🟢", "medium": "🟡", "high": "🟠", "critical": "🔴"}


def _plain(text: str, limit: int = MAX_HEADER) -> dict[str, Any]:
    """Plain text is never parsed for links or mentions, so outside text goes in unescaped (clipped)."""
    return {"type": "plain_text", "text": clip(text, limit) or "-", "emoji": True}


def _md(text: str, limit: int = MAX_SECTION) -> dict[str, Any]:
    """``text`` is mrkdwn already: outside parts were escaped where they were put in (`safe`)."""
    return {"type": "mrkdwn", "text": clip_md(text, limit) or "-"}


def _minutes(seconds: float | None) -> str:
    return duration(seconds)


def target_label(action: str, target: str | None) -> str:
    """Return ``action on target`` (or just the action for global ones) as mrkdwn, both escaped."""
    return f"{safe(action, MAX_NAME)} on {safe(target, MAX_NAME)}" if target else safe(action, MAX_NAME)


def _number(value: Any) -> str:
    """Return a metric value short (``0.123``), or escaped as it came when it is no number (history)."""
    try:
        return f"{float(value):.3g}"
    except (TypeError, ValueError, OverflowError):
        return safe(value, 20)


def _stamp(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def change_lines(record: dict[str, Any], limit: int = 3) -> list[str]:
    """Return the deploys and config changes on the timeline, newest first, with their age at opening."""
    opened = _stamp(record.get("opened_at"))
    lines: list[str] = []
    for event in reversed(record.get("events", [])):
        kind = event.get("type")
        if kind not in ("deploy", "config_change") or len(lines) >= limit:
            continue
        service = safe(event.get("service"), MAX_NAME)
        detail = event.get("version") if kind == "deploy" else event.get("change")
        what = "deployed" if kind == "deploy" else "config changed"
        line = f"🚀 `{service}` {what}" + (f" `{safe(detail, MAX_NAME)}`" if detail else "")
        at = _stamp(event.get("at"))
        if at is not None and opened is not None:
            before_s = (opened - at).total_seconds()
            line += f" {duration(before_s)} before opening" if before_s >= 0 else " after opening"
        lines.append(line + (f" ({safe(event['source'], MAX_NAME)})" if event.get("source") else ""))
    return lines


def key_signals(record: dict[str, Any], not_understood: Collection[tuple[str, str]] = ()) -> list[str]:
    """Return the alerts still firing, recent changes and the latest metrics of affected services."""
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
            unread = " · _not understood by the policy_" if (name, service) in not_understood else ""
            lines.append(f"🔥 {bold(name, MAX_NAME)} on `{safe(service, MAX_NAME)}`{value}{unread}")
    lines += change_lines(record)
    affected = set(record.get("services") or ())
    for service, values in sorted(metrics.items()):
        if affected and service not in affected:
            continue  # snapshots of the whole graph feed the ranking; the card shows the affected ones
        shown = ", ".join(f"{safe(k, MAX_NAME)} {_number(v)}" for k, v in sorted(values.items())[:4])
        lines.append(f"📈 `{safe(service, MAX_NAME)}`: {shown}")
    return lines[:MAX_SIGNALS] or ["no firing alerts"]


def link_lines(record: dict[str, Any]) -> list[str]:
    """Return, per firing alert that gave links, one line linking them (only http(s) URLs are linked)."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for event in record.get("events", []):
        if event.get("type") == "alert":
            latest[(str(event.get("name")), str(event.get("service")))] = event
    lines, size = [], 0
    for (name, service), event in sorted(latest.items()):
        given = event.get("links") if event.get("status") == "firing" else None
        shown = [link(given.get(k), k) for k in LINKS] if isinstance(given, dict) else []
        if any(shown):
            line = f"🔗 {bold(name, MAX_NAME)} on `{safe(service, MAX_NAME)}`: " + " · ".join(
                s for s in shown if s
            )
            if size + len(line) + 1 > MAX_SECTION - 20:
                break  # whole lines only: half a link would show as raw text
            lines.append(line)
            size += len(line) + 1
    return lines


def suggestion_value(view: SuggestionView) -> str:
    """Return the button value: only the stored suggestion's token (the row says what it does)."""
    return json.dumps({"s": view.token}, separators=(",", ":"))


def params_text(params: Mapping[str, Any]) -> str:
    """Return an action's parameters as ``key=value`` pairs (escaped for mrkdwn), or ""."""
    return ", ".join(
        f"{escape(k)}={escape(json.dumps(v) if not isinstance(v, str) else v)}"
        for k, v in sorted(params.items())
    )


def _status_line(view: SuggestionView, incident_id: str) -> str:
    request = view.request
    again = f"; `/remediate suggest {escape(incident_id)}` offers it again"
    if request is not None and request.state == st.EXPIRED:
        return f"⌛ expired without a decision, nothing ran{again}"
    if request is None:
        if not view.decision.allowed:
            return f"🚫 cannot be approved now: {escape(view.decision.reason)}"
        need = view.decision.approvals_required
        roles = ", ".join(view.decision.approver_roles) or "nobody"
        return f"needs {need} approval(s) from {roles}"
    approvers = ", ".join(mention(a) for a in request.approvers)
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
    line = labels.get(request.state, request.state)
    if request.state == st.REJECTED:
        return line + again
    why = f": {escape(request.note)}" if request.note else ""  # failed without running, and why
    return line + (f" (approved by {approvers})" if approvers else "") + why + again


def _buttons(incident_id: str, view: SuggestionView) -> dict[str, Any]:
    value = suggestion_value(view)
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
            "text": _md(
                f"Approve {styled_md(label, '*')} ({view.ranked.risk} risk) on {escape(incident_id)}?", 300
            ),
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
    # what the executor would do (bot/app/controls.py); Cancel withdraws an open request
    dry = {"type": "button", "action_id": f"dryrun:{view.n}", "text": _plain("Dry run", 75), "value": value}
    elements.append(dry)
    if view.request is not None and view.request.state in st.OPEN:
        elements.append({**dry, "action_id": f"cancel:{view.n}", "text": _plain("Cancel request", 75)})
    if view.approvable and view.editable:  # edit before approving: the guardrails decide again
        elements.insert(1, {**why, "action_id": f"edit:{view.n}", "text": _plain("Edit", 75)})
    if view.approvable and view.inverse:  # docs/verification.md: the inverse runs once on a harmful verdict
        undo = {
            **approve,
            "action_id": f"approve_undo:{view.n}",
            "text": _plain("Approve, undo if harmful", 75),
        }
        elements.insert(1, undo)
    if view.approvable and view.canary:  # docs/verification.md: a share of the replicas first, verified
        canary = {**approve, "action_id": f"approve_canary:{view.n}", "text": _plain("Canary first", 75)}
        canary.pop("style", None)
        elements.insert(1, canary)
    return {"type": "actions", "block_id": f"suggestion-{view.n}", "elements": elements}


def render_card(
    ranking: Ranking, *, policy_name: str, now: datetime, advisory: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """Return (fallback text, blocks) of an incident's card; ``advisory`` leads it when approving runs nothing."""
    rec = ranking.record
    resolved = bool(rec.get("resolved_at"))
    state = "✅ Resolved" if resolved else "🔴 Open"
    incident_id = escape(rec["id"])
    text = clip_md(
        f"{incident_id} [{escape(rec['severity'])}] {escape(rec['title'])} "
        f"({'resolved' if resolved else 'open'})",
        MAX_FALLBACK,
    )
    services = escape(", ".join(str(x) for x in rec.get("services") or []) or "unknown")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(f"{rec['id']}: {rec['title']}")},
        {
            "type": "section",
            "fields": [
                _md(f"*Severity*\n{escape(rec['severity'])}", MAX_FIELD),
                _md(f"*Status*\n{state}", MAX_FIELD),
                _md(f"*Services*\n{services}", MAX_FIELD),
                _md(f"*Opened*\n{slack_date(rec['opened_at'])}", MAX_FIELD),
                *(_md(f"*{r.title()}*\n{mention(u)}", MAX_FIELD) for r, u in roles_of_record(rec).items()),
            ],
        },
        {
            "type": "section",
            "text": _md("*Key signals*\n" + "\n".join(key_signals(rec, ranking.not_understood))),
        },
    ]
    links = link_lines(rec)
    if links and not resolved:
        blocks.append({"type": "section", "text": _md("*Links*\n" + "\n".join(links))})
    verified = verdict_lines(rec, ranking.suggestions)  # docs/verification.md
    verified += [recurring_line(action, target, runs) for action, target, runs in ranking.recurring]
    if verified:
        blocks.append({"type": "section", "text": _md("*Verification*\n" + "\n".join(verified))})
    if ranking.unknown_to_graph and not resolved:  # docs/topology.md
        names = escape(", ".join(ranking.unknown_to_graph))
        blocks.append({"type": "section", "text": _md(
            f"⚠️ *Unknown to the service graph:* {names}. Only actions that need no graph are suggested "
            "(escalate, wait, actions on services the graph knows); the next graph refresh picks it up."
        )})  # fmt: skip
    if ranking.telemetry_lost and not resolved:  # F7 (docs/observability.md)
        blocks.append({"type": "context", "elements": [_md("📉 *Telemetry lost:* " + escape(", ".join(ranking.telemetry_lost)), MAX_CONTEXT)]})  # fmt: skip
    if ranking.access and not resolved:  # never widened on failure: docs/safety.md
        line = "👥 *Approvers:* " + escape("; ".join(ranking.access))
        blocks.append({"type": "context", "elements": [_md(line, MAX_CONTEXT)]})
    if not resolved:  # whichever policy ranks (docs/policy.md, similar incidents)
        blocks.append({"type": "context", "elements": [_md(similar_line(ranking), MAX_CONTEXT)]})
    if advisory and not resolved:  # up front, before anyone clicks Approve (docs/executors.md)
        blocks.insert(1, {"type": "context", "elements": [_md(f"ℹ️ {bold(advisory)}", MAX_CONTEXT)]})
    if not resolved:
        blocks.append({"type": "divider"})
        if not ranking.suggestions:
            blocks.append({"type": "section", "text": _md("No suggestions.")})
        for view in ranking.suggestions:
            item = view.ranked
            mark = RISK_MARK.get(item.risk, "")
            line = (
                styled_md(f"{view.n}. {target_label(item.action, item.target)}", "*")
                + "\n"
                + f"confidence {item.confidence:.0%} · {mark} {item.risk} risk · "
                f"time to mitigate {_minutes(item.expected_ttm_s)}\n"
                + (f"with {params_text(item.params)}\n" if item.params else "")
                + f"{italic(item.reason)}\n{_status_line(view, rec['id'])}"
            )
            blocks.append({"type": "section", "block_id": f"text-{view.n}", "text": _md(line)})
            blocks.append(_buttons(rec["id"], view))
    footer = f"ranked by {escape(ranking.ranked_by or policy_name)} · updated {slack_date(now, CLOCK)} · timeline in thread"
    if not resolved and not any(e.get("type") == "metrics" for e in rec.get("events", [])):
        # say so: without metrics the ranking sees alerts and changes only (docs/alerts.md)
        footer += " · ranked on alerts only: no metric snapshots received"
    blocks.append({"type": "context", "elements": [_md(footer, MAX_CONTEXT)]})
    return text, blocks


def similar_line(ranking: Ranking) -> str:
    """Return the card's line naming the most similar past incidents and what fixed them."""
    if not ranking.similar:
        return "🧭 No similar past incident yet: the memory grows as incidents resolve with a fix."
    return "🧭 *Similar past incidents:* " + " · ".join(
        f"{safe(s.incident, MAX_NAME)} (fixed by {safe(s.fix, MAX_NAME)}, {max(s.similarity, 0.0):.0%} alike)"
        for s in ranking.similar
    )


def timeline_line(event: dict[str, Any]) -> str:
    """Return one timeline event as a short mrkdwn line (every part from outside escaped)."""
    return clip_md(_timeline_line(event), MAX_LINE)


def _timeline_line(event: dict[str, Any]) -> str:
    at = slack_date(event.get("at"), CLOCK)
    kind = event.get("type")
    service = safe(event.get("service"), MAX_NAME)
    if kind == "alert":
        icon = "🔥" if event.get("status") == "firing" else "✅"
        name, status = safe(event.get("name"), MAX_NAME), escape(event.get("status"))
        return f"{at} {icon} alert {name} {status} on `{service}`"
    if kind == "action":
        who = safe(event.get("actor", "?"), MAX_NAME)
        return (
            f"{at} ⚙️ {target_label(str(event.get('action')), event.get('target'))} → "
            f"{bold(event.get('outcome'))} (approved by {who})"
            + (f": {escape(event['detail'])}" if event.get("detail") else "")
        )
    if kind == "note":
        return f"{at} 📝 {mention(event.get('actor'))}: {escape(event.get('text', ''))}"
    if kind == "resolved":
        return f"{at} ✅ resolved" + (f" by {mention(event['actor'])}" if event.get("actor") else "")
    if kind == "metrics":
        return f"{at} 📈 metrics of `{service}`"
    if kind in ("deploy", "config_change"):
        detail = event.get("version") if kind == "deploy" else event.get("change")
        what = "deploy" if kind == "deploy" else "config change"
        return f"{at} 🚀 {what} of `{service}`" + (f" `{safe(detail, MAX_NAME)}`" if detail else "")
    return f"{at} {escape(kind)} {service if event.get('service') else ''}".rstrip()


def timeline_text(events: Iterable[dict[str, Any]], limit: int = 30) -> str:
    """Return timeline lines joined, the oldest first, at most ``limit`` (the rest summarised)."""
    lines = [timeline_line(e) for e in events]
    if len(lines) > limit:
        hidden = len(lines) - limit
        lines = [*lines[: limit // 2], f"… {hidden} more events …", *lines[-(limit - limit // 2) :]]
    return "\n".join(lines)


def postmortem_text(draft: Draft) -> str:
    """Return a postmortem draft as mrkdwn: header, what was done, the timeline, what is left to write."""
    rec, actions = draft.record, draft.actions
    return "\n".join(
        [
            bold(f"Postmortem draft: {rec['id']} - {rec['title']}"),
            f"*Severity* {escape(rec['severity'])} · *Services* {escape(', '.join(rec.get('services') or []))}",
            f"*Opened* {slack_date(rec['opened_at'])} · *Resolved* "
            + (slack_date(rec["resolved_at"]) if rec.get("resolved_at") else "still open"),
            "*What was done*",
            *(
                f"• {target_label(str(a.get('action')), a.get('target'))}: {escape(a.get('outcome'))}"
                for a in actions
            ),
            *(["• nothing was run"] if not actions else []),
            "*Timeline*",
            timeline_text(rec["events"], limit=20),
            "*Root cause* _to be written_ · *Follow-ups* _to be written_",
        ]
    )
