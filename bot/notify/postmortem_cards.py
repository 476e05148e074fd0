"""What the bot says about postmortems: the summary card in the incident's thread, the list, the edit modal.

`resolved` is the one hook both resolution paths call (a person's ``resolve``, the alerts all
resolving): it drafts the postmortem (`remediation.postmortem.service`) and queues its summary card for
the incident's thread in the same transaction, and the update of the main channel's summary line of an
incident that has its own channel. Every stored string is escaped before it reaches mrkdwn.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import networkx as nx
from sqlalchemy.orm import Session

from bot.notify.channels import IncidentChannels
from bot.notify.mrkdwn import clip, escape, mention, safe
from bot.services import Services
from incidents_db import outbox
from remediation.postmortem import service as postmortems
from remediation.postmortem.export_md import duration
from remediation.postmortem.workflow import EDITABLE

BUTTONS = ("pm_edit", "pm_signoff", "pm_publish")  # action ids of the summary card; value: incident id
VIEW = "pm_edit"  # callback id of the edit modal
FIELD = 2900  # characters of one mrkdwn field of the card
STATUS = {"draft": "📝 draft", "in_review": "👀 in review", "published": "✅ published"}


def graph_of(services: Services) -> nx.DiGraph | None:
    """Return the configured service graph (a report prefers the incident's own built-in one)."""
    return services.topology.graph() if services.topology is not None else None


def bots_of(services: Services) -> frozenset[str]:
    """Return the user ids whose steps are the bot's, not a person's (for the time to acknowledge)."""
    return frozenset({"remediate", *([services.settings.requester] if services.settings.requester else [])})


def resolved(services: Services, *, db_session: Session, incident_id: str, now: datetime) -> None:
    """Draft the postmortem of an incident just resolved and queue its summary card (not committed).

    An incident with its own channel also gets its summary line in the main channel updated.
    """
    IncidentChannels(services).resummarise(db_session, incident_id, now)
    draft_on_resolve(
        db_session=db_session,
        incident_id=incident_id,
        now=now,
        graph=graph_of(services),
        bots=bots_of(services),
    )


def _people(users: Iterable[str]) -> str:
    return ", ".join(mention(u) for u in users) or "none"


def summary_card(report: Mapping[str, Any], headline: str = "Postmortem") -> tuple[str, list[dict[str, Any]]]:
    """Return the fallback text and blocks of a postmortem's summary card (with Edit / Sign off / Publish)."""
    fig, rc = report["figures"], report["root_cause"]
    inferred = rc["inferred"]
    mitigated = next((a for a in report["actions"] if a.get("mitigated")), None)
    fix = f"{mitigated['action']} on {mitigated.get('target')}" if mitigated else "no recorded action"
    incident = str(report["incident"])
    lines = [
        f"*Status* {STATUS.get(report['status'], escape(report['status']))} · *version* {report['version']}",
        f"*Reviewers* {_people(report['reviewers'])} · *signed off* {_people(report['signed_off_by'])}",
        f"*Time to acknowledge* {duration(fig['time_to_acknowledge_s'])} · *mitigate* "
        f"{duration(fig['time_to_mitigate_s'])} · *resolve* {duration(fig['time_to_resolve_s'])}",
        f"*Mitigated by* {safe(fix, 300)} · *actions tried* {fig['actions_tried']}",
        f"*Probable root cause* {safe(inferred.get('service') or 'not inferred', 200)}"
        f" ({safe(inferred.get('fault') or 'fault not told', 100)})",
    ]
    if rc.get("recorded"):
        recorded = rc["recorded"]
        lines.append(f"*Recorded root cause* {safe(recorded.get('text') or recorded.get('service'), 500)}")
    buttons = [
        {
            "type": "button",
            "action_id": "pm_edit",
            "value": incident,
            "text": {"type": "plain_text", "text": "Edit"},
        },
        {
            "type": "button",
            "action_id": "pm_signoff",
            "value": incident,
            "text": {"type": "plain_text", "text": "Sign off"},
        },
        {
            "type": "button",
            "action_id": "pm_publish",
            "value": incident,
            "style": "primary",
            "text": {"type": "plain_text", "text": "Publish"},
        },
    ]
    title = f"{headline}: {incident} - {report.get('title', '')}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(title, 150)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": safe(report["summary"], FIELD)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": clip("\n".join(lines), FIELD)}},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": clip(
                        f"`remediate postmortem show {escape(incident)} --format html` exports it; "
                        f"`postmortem {escape(incident)} review @someone` asks for a review",
                        2000,
                    ),
                }
            ],
        },
        {"type": "actions", "elements": buttons},
    ]
    return clip(escape(title), 3000), blocks


def queue_card(
    *, db_session: Session, report: Mapping[str, Any], now: datetime, headline: str = "Postmortem"
) -> None:
    """Queue the summary card for the incident's thread (not committed)."""
    text, blocks = summary_card(report, headline)
    outbox.enqueue(
        db_session=db_session,
        kind="thread",
        incident_id=str(report["incident"]),
        payload={"text": text, "blocks": blocks},
        now=now,
    )


def queue_line(*, db_session: Session, incident_id: str, text: str, now: datetime) -> None:
    """Queue one mrkdwn line for the incident's thread (not committed); ``text`` is already escaped."""
    outbox.enqueue(
        db_session=db_session, kind="thread", incident_id=incident_id, payload={"text": text}, now=now
    )


def draft_on_resolve(
    *, db_session: Session, incident_id: str, now: datetime, graph: nx.DiGraph | None, bots: Iterable[str]
) -> None:
    """Draft the resolved incident's postmortem and queue its summary card, once (not committed)."""
    if postmortems.find(db_session=db_session, incident_id=incident_id) is not None:
        return
    postmortems.ensure_draft(db_session=db_session, incident_id=incident_id, now=now, audited=False)
    report = postmortems.report(db_session=db_session, incident_id=incident_id, graph=graph, bots=bots)
    queue_card(db_session=db_session, report=report, now=now, headline="Postmortem drafted")


def list_text(rows: Sequence[postmortems.Listed]) -> str:
    """Return the recent postmortems as mrkdwn lines (status, version, reviewers, sign-offs)."""
    if not rows:
        return "No postmortems yet; one is drafted when an incident resolves."
    lines = [
        f"• *{escape(r.incident_id)}* {STATUS.get(r.status, escape(r.status))} v{r.version} "
        f"{safe(r.title, 120)} · reviewers {_people(r.reviewers)} · signed off {_people(r.signed_off)}"
        for r in rows
    ]
    return "*Recent postmortems*\n" + "\n".join(lines)


def _input(block_id: str, label: str, value: str, *, optional: bool = True) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": block_id, "multiline": True}
    if value:
        element["initial_value"] = clip(value, 3000)
    return {
        "type": "input",
        "block_id": block_id,
        "optional": optional,
        "element": element,
        "label": {"type": "plain_text", "text": label},
    }


def edit_view(report: Mapping[str, Any]) -> dict[str, Any]:
    """Return the modal editing summary, root cause, contributing factors, action items and reviewers."""
    recorded = (report["root_cause"].get("recorded") or {}).get("text", "")
    items = "\n".join(
        " | ".join(str(i.get(k) or "") for k in ("text", "owner", "due")).rstrip(" |")
        for i in report["action_items"]
    )
    reviewers: dict[str, Any] = {"type": "multi_users_select", "action_id": "reviewers"}
    if report["reviewers"]:
        reviewers["initial_users"] = list(report["reviewers"])
    return {
        "type": "modal",
        "callback_id": VIEW,
        "private_metadata": str(report["incident"]),
        "title": {"type": "plain_text", "text": clip(f"Postmortem {report['incident']}", 24)},
        "submit": {"type": "plain_text", "text": "Save"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            _input("summary", "Summary", str(report["summary"])),
            _input("root_cause", "Root cause", str(recorded)),
            _input(
                "contributing_factors",
                "Contributing factors (one a line)",
                "\n".join(report["contributing_factors"]),
            ),
            _input("action_items", "Action items (one a line: what | owner | due)", items),
            {
                "type": "input",
                "block_id": "reviewers",
                "optional": True,
                "element": reviewers,
                "label": {"type": "plain_text", "text": "Reviewers (saving puts it in review)"},
            },
        ],
    }


def _value(values: Mapping[str, Any], block: str) -> Any:
    entry = values.get(block, {}).get(block, {}) if isinstance(values.get(block), Mapping) else {}
    if not isinstance(entry, Mapping):
        return None
    return entry.get("selected_users") if block == "reviewers" else entry.get("value")


def parse_edit(values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Return the edited fields and the chosen reviewers from a submitted edit modal's state values."""
    changes: dict[str, Any] = {}
    for block in EDITABLE:
        raw = _value(values, block)
        if raw is None:
            continue
        text = str(raw)
        if block == "contributing_factors":
            changes[block] = [line.strip() for line in text.splitlines() if line.strip()]
        elif block == "action_items":
            rows = [
                [p.strip() for p in line.split("|")] + ["", ""] for line in text.splitlines() if line.strip()
            ]
            changes[block] = [{"text": r[0], "owner": r[1], "due": r[2]} for r in rows]
        else:
            changes[block] = text.strip()
    reviewers = _value(values, "reviewers")
    return changes, [str(u) for u in reviewers or [] if isinstance(u, str)]
