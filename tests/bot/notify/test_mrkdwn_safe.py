"""Cards render every runbook reason and catalog description as well-formed mrkdwn (issue 20)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.notify.cards import postmortem_text, render_card, timeline_line
from bot.notify.mrkdwn import LOOKALIKES, bold, code, italic, styled_md
from bot.notify.suggest import Ranking, SuggestionView
from bot.sandbox.blockkit import check_blocks
from playbooks.catalog import builtin_catalog
from playbooks.runbooks import builtin_runbooks
from remediation.guardrails.decide import Decision
from remediation.policies import RankedAction
from remediation.postmortem.models import Draft

MARKS = "*_~"
BOUNDARY = r"\s.,;:!?()'\"…-"  # what may stand before an opening or after a closing mark
_SPAN = {m: re.compile(rf"(^|[{BOUNDARY}]){re.escape(m)}([^\s{re.escape(m)}\n](?:[^{re.escape(m)}\n]*[^\s{re.escape(m)}])?){re.escape(m)}(?=$|[{BOUNDARY}])", re.M) for m in MARKS}  # fmt: skip
_STRAY = re.compile(rf"(?:^|(?<=[{BOUNDARY}]))[*_~]|[*_~](?=$|[{BOUNDARY}])", re.M)
_BACK = {v: k for k, v in LOOKALIKES.items()}


def broken(md: str) -> list[str]:
    """Return what reads as a broken span in ``md``: a mark left over that Slack would take as a delimiter.

    Links and code are literal; spans pair like Slack's (an opening mark after a boundary, the closing
    one before a boundary, none of the span's own mark inside), innermost first.
    """
    text = re.sub(r"<[^<>\n]*>|`[^`\n]*`", "", md)
    while True:
        before = text
        for span in _SPAN.values():
            text = span.sub(lambda m: m.group(1) + m.group(2), text)
        if text == before:
            break
    return [text[max(0, m.start() - 20) : m.end() + 20] for m in _STRAY.finditer(text)]


def visible(md: str) -> str:
    """Return what a reader sees of styled mrkdwn: marks gone, look-alikes read as the characters."""
    text = md
    for mark in MARKS:
        text = _SPAN[mark].sub(lambda m: m.group(1) + m.group(2), text)
    return "".join(_BACK.get(ch, ch) for ch in text)


def every_reason() -> list[str]:
    """Each runbook step's reason as the runbook policy writes it, the descriptions, and the catalog's."""
    reasons = []
    for runbook in builtin_runbooks().runbooks:
        reasons.append(f"{runbook.id} on paymentservice: {runbook.description}")
        reasons += [
            f"{runbook.id} on paymentservice: {step.why or runbook.description}" for step in runbook.steps
        ]
    reasons += [action.description for action in builtin_catalog()]
    return reasons


def card_of(
    reasons: list[str], action: str = "restart_service", target: str = "redis_cart"
) -> list[dict[str, Any]]:
    decision = Decision(
        allowed=True, code="ok", reason="allowed", approvals_required=1, approver_roles=("sre",)
    )
    views = tuple(
        SuggestionView(
            n, RankedAction(action, target, {}, 1.0, 0.5, 240.0, "high", reason), decision, None, f"t{n}"
        )
        for n, reason in enumerate(reasons, start=1)
    )
    record = {
        "id": "INC-1",
        "title": "error_spike on *payment*_service",
        "severity": "sev2",
        "services": ["paymentservice"],
        "opened_at": "2026-12-01T10:36:30Z",
        "events": [
            {
                "at": "2026-12-01T10:36:30Z",
                "type": "alert",
                "status": "firing",
                "name": "Error_Spike_",
                "service": "p",
            },
        ],
    }
    _, blocks = render_card(Ranking(record, "U0ALICE", views), policy_name="runbook", now=datetime.now(UTC))
    assert check_blocks(blocks) == []
    return blocks


def mrkdwn_texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["text"]] if node.get("type") == "mrkdwn" else []
        return found + [t for v in node.values() for t in mrkdwn_texts(v)]
    if isinstance(node, list):
        return [t for v in node for t in mrkdwn_texts(v)]
    return []


def test_the_issues_reason_is_broken_as_it_was_and_whole_now() -> None:
    reason = "error_spike on paymentservice: a restart is the least specific fix that often helps"
    assert broken(f"_{reason}_")  # how cards wrote it before
    assert broken(italic(reason)) == []
    assert visible(italic(reason)) == reason


def test_every_runbook_reason_and_catalog_description_renders_well_formed() -> None:
    reasons = every_reason()
    assert len(reasons) > 20
    for start in range(0, len(reasons), 10):  # a card holds a handful of suggestions
        chunk = reasons[start : start + 10]
        blocks = card_of(chunk)
        for md in mrkdwn_texts(blocks):
            assert broken(md) == [], md
        shown = {
            b["block_id"]: b["text"]["text"] for b in blocks if b.get("block_id", "").startswith("text-")
        }
        for n, reason in enumerate(chunk, start=1):
            headline, _, rest = shown[f"text-{n}"].partition("\n")
            assert headline == f"*{n}. restart_service on redis_cart*"  # ids inside a word stay as typed
            assert visible(italic(reason)) == reason and italic(reason) in rest.split("\n")


@pytest.mark.parametrize(
    "text",
    [
        "a *b* c",
        "_leading and trailing_",
        "2*3*4 ~strike~ `code`",
        "ends with mark_",
        "*",
        "  spaced  ",
        "line one_\n_line two",
        "x" * 5000,
    ],
)
def test_styled_spans_hold_whatever_is_inside(text: str) -> None:
    for styled in (bold(text, 300), italic(text, 300), styled_md(text, "~", 300), code(text, 300)):
        assert broken(styled) == [], styled
        assert all(len(line) <= 300 for line in styled.split("\n"))


def test_timeline_and_postmortem_use_the_safe_layer() -> None:
    line = timeline_line(
        {
            "at": "2026-12-01T10:36:30Z",
            "type": "action",
            "action": "scale_out",
            "target": "a",
            "outcome": "_x*",
        }
    )
    assert broken(line) == []
    record = {
        "id": "INC-2",
        "title": "_half *open",
        "severity": "sev3",
        "services": [],
        "opened_at": "x",
        "events": [],
    }
    assert broken(postmortem_text(Draft(record=record, actions=()))) == []
