"""What a card says about verified remediation: each verdict, the next fix after a failed one, repeats."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.notify.mrkdwn import escape, safe
from bot.notify.suggest import SuggestionView

ICON = {"effective": "✅", "partial": "🟡", "ineffective": "❌", "harmful": "⚠️"}
ORDINAL = {2: "second", 3: "third", 4: "fourth", 5: "fifth"}
# a canary disarmed without a verdict (incidents_db.canaries.DISARMED): its icon, and its run when unnamed
NO_VERDICT = {"unknown": ("❔", "run ended unknown"), "run_failed": ("❌", "run failed")}


def _label(action: Any, target: Any) -> str:
    return f"{safe(action, 100)} on {safe(target, 100)}" if target else safe(action, 100)


def verdict_lines(
    record: Mapping[str, Any], suggestions: Sequence[SuggestionView], limit: int = 4
) -> list[str]:
    """Return one line per verdict on the timeline (newest last); the newest failed one names the next fix."""
    notes = [
        e
        for e in record.get("events", [])
        if e.get("type") == "note" and (e.get("verdict") or e.get("canary") in NO_VERDICT)
    ]
    lines = []
    for n, e in enumerate(notes[-limit:], start=1):
        verdict, summary = str(e.get("verdict")), escape(e.get("summary") or "")
        label = _label(e.get("action"), e.get("target"))
        if e.get("canary") in NO_VERDICT:  # its run ended unknown or failed: no verdict, a person decides
            icon, run = NO_VERDICT[str(e.get("canary"))]
            run, note = escape(e.get("canary_run") or run), escape(e.get("canary_note") or "")
            line = f"🐤 canary of {label}: {icon} its {run}; {note}"
        elif e.get("canary"):  # docs/verification.md: what the canary's verdict led to
            note = escape(e.get("canary_note") or "")
            line = f"🐤 canary of {label}: {ICON.get(verdict, '')} {verdict} ({summary}); {note}"
        elif verdict in ("ineffective", "partial"):
            what = "did not help" if verdict == "ineffective" else "helped only in part"
            line = f"{ICON[verdict]} {label} {what}: {summary}"
            if n == len(notes[-limit:]) and suggestions:
                line += f"; next: {_label(suggestions[0].ranked.action, suggestions[0].ranked.target)}"
        elif verdict == "harmful":
            undone = "; undone automatically" if e.get("undo_request_id") else "; its undo is offered first"
            line = f"{ICON[verdict]} {label} made things worse: {summary}{undone}"
        else:
            line = f"{ICON.get(verdict, '')} {label} worked: {summary}"
        lines.append(line)
    return lines


def recurring_line(action: str, target: str | None, runs: int) -> str:
    """Return the card's note on a fix repeated ``runs`` times in the window, with a postmortem follow-up."""
    nth = ORDINAL.get(runs, f"{runs}th")
    return (
        f"🔁 {nth} {_label(action, target)} in the window: repeated fixes can hide a real problem; "
        "suggested postmortem item: find why it keeps needing this"
    )
