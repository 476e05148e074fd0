"""The report as GitHub-flavoured Markdown: headings, tables, lists; every stored string escaped.

Text from the store (titles, notes, reasons) may hold Markdown or HTML; `md` escapes both, so a note
cannot inject a link, a heading or a tag, and table cells keep to one line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")  # inline specials; [ and ] escaped, so no link forms
_LINE_START = re.compile(r"^(\d*)([#+=.)-])")  # would start a heading or list at a line's start
CELL = 300  # characters of a table cell before it is clipped


def md(value: Any, limit: int | None = None, *, starts_line: bool = False) -> str:
    """Return stored text safe inside Markdown: HTML entities, escaped punctuation, one line.

    With ``starts_line`` (a paragraph of its own), a leading ``#``, ``-``, ``1.`` ... is escaped too.
    """
    text = "" if value is None else str(value)
    text = " ".join(text.split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return _LINE_START.sub(r"\1\\\2", text, count=1) if starts_line else text


def duration(seconds: Any) -> str:
    """Return seconds as ``1 h 4 min``, ``4 min 30 s`` or ``42 s``; an em dash when unknown."""
    if not isinstance(seconds, int | float):
        return "—"
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h} h {m} min"
    return f"{m} min {sec} s" if m else f"{sec} s"


def _table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _who(users: Iterable[Any]) -> str:
    names = [md(u, 64) for u in users if u]
    return ", ".join(names) or "—"


def _actions(actions: Sequence[Mapping[str, Any]]) -> list[str]:
    if not actions:
        return ["No action was requested or taken."]
    return _table(
        ("when", "action", "target", "suggested rank", "policy", "requested by", "approved by", "outcome"),
        (
            (
                md(a["at"]),
                md(a["action"], 100) + (" **(mitigated)**" if a.get("mitigated") else ""),
                md(a.get("target") or "—", 100),
                a["suggested_rank"] if a.get("suggested_rank") is not None else "by hand",
                md(a.get("policy") or "—", 80),
                _who([a.get("requested_by")]),
                _who(a.get("approved_by") or []),
                md(a.get("outcome"), 40),
            )
            for a in actions
        ),
    )


def _decisions(decisions: Sequence[Mapping[str, Any]]) -> list[str]:
    lines: list[str] = []
    for d in decisions:
        shown = ", ".join(
            f"#{s['rank']} {md(s['action'], 80)}{' on ' + md(s['target'], 80) if s.get('target') else ''}"
            for s in d["suggestions"]
        )
        did = f"{md(d['did']['action'], 80)}{' on ' + md(d['did']['target'], 80) if d['did'].get('target') else ''}"
        chosen = (
            "by hand"
            if d["by_hand"]
            else f"suggestion #{d['chosen_rank']}"
            if d["chosen_rank"]
            else "a request"
        )
        lines.append(
            f"- {md(d['at'])}: card showed {shown or 'nothing'}; people did **{did}** ({chosen}), "
            f"{md(d['outcome'])}{' - this mitigated' if d['mitigated'] else ''}"
        )
    return lines or ["No decision point: nothing was done."]


def _root_cause(rc: Mapping[str, Any]) -> list[str]:
    inferred, recorded = rc["inferred"], rc.get("recorded")
    lines = [
        f"- **Inferred from the service graph:** {md(inferred.get('service') or 'not inferred')}"
        f" (fault: {md(inferred.get('fault') or 'not told')})"
    ]
    lines += [f"  - {md(e, 400)}" for e in inferred.get("evidence", [])]
    if recorded:
        parts = [f"{k}: {md(recorded[k], 2000)}" for k in ("service", "fault", "text") if recorded.get(k)]
        lines.append(f"- **Recorded:** {'; '.join(parts)}")
    else:
        lines.append("- **Recorded:** none yet")
    return lines


def _items(items: Sequence[Mapping[str, Any]]) -> list[str]:
    if not items:
        return ["None yet."]
    return _table(
        ("action item", "owner", "due"),
        (
            (md(i.get("text"), CELL), md(i.get("owner") or "—", 80), md(i.get("due") or "—", 40))
            for i in items
        ),
    )


def render_markdown(report: Mapping[str, Any]) -> str:
    """Return the report as Markdown that renders on GitHub."""
    r, imp, fig, det = report, report["impact"], report["figures"], report["detection"]
    first = det.get("first_alert")
    worst = ", ".join(
        f"{md(k)} {md(v['value'])} on {md(v['service'])}" for k, v in sorted(imp["user_facing"].items())
    )
    out = [
        f"# Postmortem {md(r['incident'])}: {md(r['title'], 300)}",
        "",
        f"**Status:** {md(r['status'])} · **Version:** {r['version']} · **Reviewers:** {_who(r['reviewers'])}"
        f" · **Signed off by:** {_who(r['signed_off_by'])}",
        "",
        "## Summary",
        "",
        md(r["summary"], 5000, starts_line=True),
        "",
        "## Impact",
        "",
        f"- Severity: {md(imp['severity'])}; duration {duration(imp['duration_s'])}"
        f" ({md(imp['opened_at'])} to {md(imp['resolved_at'] or 'open')})",
        f"- Affected services: {', '.join(md(s, 100) for s in imp['affected_services']) or '—'}",
        f"- User-facing ({md(imp['user_facing_scope'])}): {worst or 'no metrics recorded'}",
        "",
        "## Detection",
        "",
        f"- First alert: {md(first['name']) + ' on ' + md(first['service']) + ' at ' + md(first['at']) if first else 'none (declared by hand)'}",
        f"- Acknowledged by {_who([det.get('acknowledged_by')])} at {md(det.get('acknowledged_at') or '—')}"
        f" (time to acknowledge {duration(det.get('time_to_acknowledge_s'))})",
        "",
        "## Key figures",
        "",
        *_table(
            (
                "time to acknowledge",
                "time to mitigate",
                "time to resolve",
                "actions tried",
                "approvals waited for",
            ),
            [
                (
                    duration(fig["time_to_acknowledge_s"]),
                    duration(fig["time_to_mitigate_s"]),
                    duration(fig["time_to_resolve_s"]),
                    fig["actions_tried"],
                    f"{fig['approvals_waited_for']} ({duration(fig['approval_wait_total_s'])} in all)",
                )
            ],
        ),
        "",
        "## Timeline",
        "",
        *_table(
            ("when", "what", "detail"),
            ((md(i["at"]), md(i["kind"]), md(i.get("text"), CELL)) for i in r["timeline"]),
        ),
        "",
        "## Actions",
        "",
        *_actions(r["actions"]),
        "",
        "## What the bot suggested against what people did",
        "",
        *_decisions(r["decisions"]),
        "",
        "## Root cause",
        "",
        *_root_cause(r["root_cause"]),
        "",
        "## Contributing factors",
        "",
        *([f"- {md(f, 2000)}" for f in r["contributing_factors"]] or ["None recorded."]),
        "",
        "## Action items",
        "",
        *_items(r["action_items"]),
        "",
    ]
    return "\n".join(out)
