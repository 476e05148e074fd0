"""The report as one self-contained HTML file: inline CSS, an inline SVG timeline chart, no outside fetches.

Every stored string goes through `html.escape`; there is no script, no link to a stylesheet, no image
source, so the file opens the same offline, in a mail attachment or an archive.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any

from remediation.postmortem.export_md import duration
from remediation.postmortem.facts import parse_time

# lanes of the chart: timeline kinds drawn on each, and the colour of their marks
LANES: tuple[tuple[str, frozenset[str], str], ...] = (
    ("alerts", frozenset({"alert", "alert_resolved", "metric"}), "#d9534f"),
    ("changes", frozenset({"deploy", "config_change"}), "#8e44ad"),
    ("bot", frozenset({"suggestion"}), "#3498db"),
    ("people", frozenset({"request", "approval", "rejection", "note", "action"}), "#2c3e50"),
    ("guardrails", frozenset({"denial"}), "#e67e22"),
    ("executions", frozenset({"execution", "resolved"}), "#27ae60"),
)
WIDTH, LANE_H, LEFT, RIGHT = 900, 34, 110, 50
STYLE = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:2em auto;max-width:980px;color:#222}
h1{font-size:1.5em} h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;width:100%;font-size:.9em} th,td{border:1px solid #ddd;padding:4px 6px;
text-align:left;vertical-align:top;overflow-wrap:anywhere} th{background:#f4f4f4}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;background:#eee;font-size:.85em}
.mitigated{font-weight:bold;color:#27ae60} td:first-child{white-space:nowrap} .figures td{font-size:1.1em} svg text{font-size:11px}
"""


def e(value: Any) -> str:
    """Return stored text escaped for HTML (None as an em dash)."""
    return "—" if value is None or value == "" else escape(str(value), quote=True)


def _x(at: datetime, start: datetime, span: float) -> float:
    return LEFT + (WIDTH - LEFT - RIGHT) * max(0.0, (at - start).total_seconds()) / span


def timeline_svg(timeline: Sequence[Mapping[str, Any]], opened: str, resolved: str | None) -> str:
    """Return an inline SVG chart: one lane per kind of event, a mark per event with its text as tooltip."""
    times = [parse_time(i["at"]) for i in timeline] or [parse_time(opened)]
    start = min([parse_time(opened), *times])
    end = max([parse_time(resolved) if resolved else start, *times])
    span = max((end - start).total_seconds(), 1.0)
    height = LANE_H * len(LANES) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="incident timeline" '
        f'width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}">'
    ]
    for n, (lane, kinds, colour) in enumerate(LANES):
        y = LANE_H * n + LANE_H // 2
        parts.append(f'<text x="4" y="{y + 4}">{lane}</text>')
        parts.append(f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}" stroke="#ddd"/>')
        for item in timeline:
            if item["kind"] not in kinds:
                continue
            x = _x(parse_time(item["at"]), start, span)
            hollow = item["kind"] == "alert_resolved"
            fill = "white" if hollow else colour
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y}" r="5" fill="{fill}" stroke="{colour}">'
                f"<title>{e(item['at'])} {e(item.get('text'))}</title></circle>"
            )
    axis_y = LANE_H * len(LANES) + 12
    for k in range(5):
        x = LEFT + (WIDTH - LEFT - RIGHT) * k / 4
        parts.append(
            f'<text x="{x:.1f}" y="{axis_y + 8}" text-anchor="middle">+{duration(span * k / 4)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _rows(cells: Iterable[Sequence[Any]]) -> str:
    return "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells)


def _table(head: Sequence[str], rows: Iterable[Sequence[Any]], css: str = "") -> str:
    th = "".join(f"<th>{h}</th>" for h in head)
    return f'<table class="{css}"><thead><tr>{th}</tr></thead><tbody>{_rows(rows)}</tbody></table>'


def _actions(actions: Sequence[Mapping[str, Any]]) -> str:
    if not actions:
        return "<p>No action was requested or taken.</p>"
    rows = (
        (
            e(a["at"]),
            e(a["action"]) + (' <span class="mitigated">mitigated</span>' if a.get("mitigated") else ""),
            e(a.get("target")),
            e(a["suggested_rank"] if a.get("suggested_rank") is not None else "by hand"),
            e(a.get("policy")),
            e(a.get("requested_by")),
            e(", ".join(a.get("approved_by") or [])),
            e(a.get("outcome")),
        )
        for a in actions
    )
    head = ("when", "action", "target", "suggested rank", "policy", "requested by", "approved by", "outcome")
    return _table(head, rows)


def _decisions(decisions: Sequence[Mapping[str, Any]]) -> str:
    if not decisions:
        return "<p>No decision point: nothing was done.</p>"
    rows = []
    for d in decisions:
        shown = "<br>".join(
            f"#{e(s['rank'])} {e(s['action'])} {e(s.get('target') or '')}" for s in d["suggestions"]
        )
        chosen = "by hand" if d["by_hand"] else f"#{d['chosen_rank']}" if d["chosen_rank"] else "request"
        did = f"{e(d['did']['action'])} {e(d['did'].get('target') or '')}"
        rows.append(
            (e(d["at"]), shown or "—", did, e(chosen), e(d["outcome"]) + (" ✔" if d["mitigated"] else ""))
        )
    return _table(("when", "the card suggested", "people did", "chosen", "outcome"), rows)


def _detection(det: Mapping[str, Any]) -> str:
    first = det.get("first_alert")
    alert = (
        f"{e(first['name'])} on {e(first['service'])} at {e(first['at'])}"
        if first
        else "none (declared by hand)"
    )
    return (
        f"<h2>Detection</h2><ul><li>First alert: {alert}</li><li>Acknowledged by {e(det.get('acknowledged_by'))} "
        f"at {e(det.get('acknowledged_at'))} (time to acknowledge {e(duration(det.get('time_to_acknowledge_s')))})"
        "</li></ul>"
    )


def _root_cause(rc: Mapping[str, Any]) -> str:
    inferred, recorded = rc["inferred"], rc.get("recorded")
    evidence = "".join(f"<li>{e(x)}</li>" for x in inferred.get("evidence", []))
    rec = (
        "; ".join(f"{k}: {e(recorded[k])}" for k in ("service", "fault", "text") if recorded.get(k))
        if recorded
        else "none yet"
    )
    return (
        f"<p><b>Inferred from the service graph:</b> {e(inferred.get('service') or 'not inferred')} "
        f"(fault: {e(inferred.get('fault') or 'not told')})</p><ul>{evidence}</ul>"
        f"<p><b>Recorded:</b> {rec}</p>"
    )


def render_html(report: Mapping[str, Any]) -> str:
    """Return the report as one HTML document (UTF-8, no outside resources)."""
    r, imp, fig = report, report["impact"], report["figures"]
    worst = ", ".join(
        f"{e(k)} {e(v['value'])} on {e(v['service'])}" for k, v in sorted(imp["user_facing"].items())
    )
    items = r["action_items"]
    body = [
        f"<h1>Postmortem {e(r['incident'])}: {e(r['title'])}</h1>",
        f'<p><span class="badge">{e(r["status"])}</span> version {e(r["version"])} · reviewers '
        f"{e(', '.join(r['reviewers']))} · signed off by {e(', '.join(r['signed_off_by']))}</p>",
        f"<h2>Summary</h2><p>{e(r['summary'])}</p>",
        f"<h2>Impact</h2><ul><li>Severity {e(imp['severity'])}, duration {e(duration(imp['duration_s']))} "
        f"({e(imp['opened_at'])} to {e(imp['resolved_at'])})</li><li>Affected services: "
        f"{e(', '.join(imp['affected_services']))}</li><li>User-facing ({e(imp['user_facing_scope'])}): "
        f"{worst or 'no metrics recorded'}</li></ul>",
        _detection(r["detection"]),
        "<h2>Key figures</h2>"
        + _table(
            (
                "time to acknowledge",
                "time to mitigate",
                "time to resolve",
                "actions tried",
                "approvals waited for",
            ),
            [
                (
                    e(duration(fig["time_to_acknowledge_s"])),
                    e(duration(fig["time_to_mitigate_s"])),
                    e(duration(fig["time_to_resolve_s"])),
                    e(fig["actions_tried"]),
                    e(fig["approvals_waited_for"]),
                )
            ],
            "figures",
        ),
        "<h2>Timeline</h2>" + timeline_svg(r["timeline"], imp["opened_at"], imp["resolved_at"]),
        _table(
            ("when", "what", "detail"), ((e(i["at"]), e(i["kind"]), e(i.get("text"))) for i in r["timeline"])
        ),
        "<h2>Actions</h2>" + _actions(r["actions"]),
        "<h2>What the bot suggested against what people did</h2>" + _decisions(r["decisions"]),
        "<h2>Root cause</h2>" + _root_cause(r["root_cause"]),
        "<h2>Contributing factors</h2><ul>"
        + ("".join(f"<li>{e(f)}</li>" for f in r["contributing_factors"]) or "<li>None recorded.</li>")
        + "</ul>",
        "<h2>Action items</h2>"
        + (
            _table(
                ("action item", "owner", "due"),
                ((e(i.get("text")), e(i.get("owner")), e(i.get("due"))) for i in items),
            )
            if items
            else "<p>None yet.</p>"
        ),
    ]
    title = f"Postmortem {e(r['incident'])}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )
