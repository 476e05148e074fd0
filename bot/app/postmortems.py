"""Postmortems in chat and on the summary card: commands, buttons, the edit modal's submission.

`postmortem INC [review @a @b | comment TEXT | signoff | publish]` and `postmortems`; the card's Edit
button opens a modal, Sign off and Publish take the step.

Each is one short transaction through `remediation.postmortem` (which audits every change); what
changed goes to the incident's thread (a line, and a fresh summary card), replies are one line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from apscheduler.schedulers.background import BackgroundScheduler
from slack_bolt import Ack, App
from slack_sdk import WebClient
from sqlalchemy.orm import Session

from bot.app.errors import incident_named
from bot.notify import postmortem_cards as cards
from bot.notify.delivery import OutboxWorker
from bot.notify.mrkdwn import escape, mention, safe
from bot.notify.postmortem_cards import bots_of, graph_of
from bot.services import Services
from remediation.errors import PostmortemError
from remediation.postmortem import service as postmortems
from remediation.postmortem import workflow

log = logging.getLogger("remediate.postmortem")
SUBCOMMANDS = ("review", "comment", "signoff", "publish")
Said = tuple[str, bool]  # the reply line, and whether the outbox got rows (the worker is woken)


def _report(services: Services, s: Session, incident_id: str) -> dict[str, Any]:
    return postmortems.report(
        db_session=s, incident_id=incident_id, graph=graph_of(services), bots=bots_of(services)
    )


def _card(services: Services, s: Session, incident_id: str, line: str) -> None:
    """Queue a line and the fresh summary card for the incident's thread."""
    now = services.clock()
    cards.queue_line(db_session=s, incident_id=incident_id, text=line, now=now)
    cards.queue_card(db_session=s, report=_report(services, s, incident_id), now=now)


def listing(s: Session) -> Said:
    """Reply with the recent postmortems, their status and reviewers."""
    return cards.list_text(postmortems.list_postmortems(db_session=s, limit=20)), False


def chat(services: Services, s: Session, user: str, args: tuple[str, ...]) -> Said:
    """Run `postmortem INC [step ...]`: show (drafting it if needed) or take one review step."""
    now = services.clock()
    row = postmortems.ensure_draft(db_session=s, incident_id=args[0], now=now)
    incident_id = row.incident_id
    step, rest = (args[1], args[2:]) if len(args) > 1 else ("show", ())
    if step == "show":
        report = _report(services, s, incident_id)
        cards.queue_card(db_session=s, report=report, now=now)
        return (
            f"Postmortem of {escape(incident_id)} ({report['status']}, v{report['version']}) posted in the card's thread.",
            True,
        )
    if step == "review":
        workflow.assign_reviewers(
            db_session=s, config=services.rbac, incident_id=incident_id, actor=user, reviewers=rest, now=now
        )
        line = f"{mention(user)} asked {', '.join(mention(r) for r in rest)} to review the postmortem"
    elif step == "comment":
        note = workflow.comment(
            db_session=s, incident_id=incident_id, actor=user, text=" ".join(rest), now=now
        )
        cards.queue_line(
            db_session=s,
            incident_id=incident_id,
            text=f"💬 {mention(user)} on the postmortem: {safe(note.text, 3000)}",
            now=now,
        )
        return f"Comment on the postmortem of {escape(incident_id)} posted in the thread.", True
    elif step == "signoff":
        workflow.sign_off(db_session=s, incident_id=incident_id, actor=user, now=now)
        line = f"{mention(user)} signed off the postmortem"
    else:
        workflow.publish(
            db_session=s,
            config=services.rbac,
            incident_id=incident_id,
            actor=user,
            now=now,
            graph=graph_of(services),
            bots=bots_of(services),
        )
        line = f"{mention(user)} published the postmortem (version {row.version})"
    _card(services, s, incident_id, line)
    return f"Done: {line}.", True


def click(
    services: Services,
    *,
    user: str,
    action_id: str,
    incident_id: str,
    open_modal: Callable[[dict[str, Any]], None],
) -> Said:
    """Act on a summary card button: Edit opens the modal; Sign off and Publish take the step."""
    with incident_named(), services.sessions() as s:
        if action_id == "pm_edit":
            view = cards.edit_view(_report(services, s, incident_id))
            s.commit()
            open_modal(view)
            return "", False
        out = chat(services, s, user, (incident_id, "signoff" if action_id == "pm_signoff" else "publish"))
        s.commit()
        return out


def submit(services: Services, *, user: str, view: Mapping[str, Any]) -> dict[str, Any] | None:
    """Save a submitted edit modal (fields, then reviewers); return Slack's ``errors`` answer on refusal."""
    incident_id = str(view.get("private_metadata", ""))
    values = (view.get("state") or {}).get("values") or {}
    changes, reviewers = cards.parse_edit(values)
    now = services.clock()
    try:
        with incident_named(), services.sessions() as s:
            row = workflow.edit(
                db_session=s,
                config=services.rbac,
                incident_id=incident_id,
                actor=user,
                changes=changes,
                now=now,
            )
            line = f"{mention(user)} edited the postmortem (version {row.version})"
            if reviewers and (sorted(reviewers) != sorted(row.reviewers or []) or row.status != "in_review"):
                workflow.assign_reviewers(
                    db_session=s,
                    config=services.rbac,
                    incident_id=incident_id,
                    actor=user,
                    reviewers=reviewers,
                    now=now,
                )
                line += f" and asked {', '.join(mention(r) for r in reviewers)} to review it"
            _card(services, s, row.incident_id, line)
            s.commit()
    except PostmortemError as exc:
        return {"response_action": "errors", "errors": {"summary": str(exc)[:150]}}
    return None


class Host(Protocol):
    """What the postmortem listeners need from the app's listeners: services, the outbox, the work pool."""

    services: Services
    worker: OutboxWorker

    def after_ack(self, job: Callable[[], None]) -> None:
        """Run a job on the work pool after the ack."""


def mount(bolt: App, host: Host, error_text: Callable[[Exception], str]) -> None:
    """Register the summary card's buttons and the edit modal's submission (before any catch-all)."""

    @bolt.action(re.compile(r"\Apm_(edit|signoff|publish)\Z"))
    def on_button(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        host.after_ack(lambda: _button(host, body, client, error_text))

    @bolt.view(cards.VIEW)
    def on_submit(ack: Ack, body: dict[str, Any]) -> None:
        # answered in the ack (Slack shows refusals on the modal), so this one runs before it: one short transaction
        try:
            answer = submit(host.services, user=body["user"]["id"], view=body.get("view") or {})
        except Exception as exc:
            answer = {"response_action": "errors", "errors": {"summary": error_text(exc)[:150]}}
        if answer is None:
            ack()
        else:
            ack(**answer)
        host.worker.wake()


def _button(
    host: Host, body: dict[str, Any], client: WebClient, error_text: Callable[[Exception], str]
) -> None:
    action, user = body["actions"][0], body["user"]["id"]
    incident_id = str(action.get("value", ""))

    def open_modal(view: dict[str, Any]) -> None:
        client.views_open(trigger_id=body["trigger_id"], view=view)

    try:
        text, queued = click(
            host.services,
            user=user,
            action_id=action["action_id"],
            incident_id=incident_id,
            open_modal=open_modal,
        )
    except Exception as exc:
        text, queued = error_text(exc), False
    if queued:
        host.worker.wake()
    if text:
        channel = (body.get("channel") or {}).get("id", "")
        host.worker.respond(
            response_url=body.get("response_url"),
            channel=channel,
            user=user,
            text=text,
            replace_original=False,
        )


def remind(services: Services, *, after_s: float | None = None) -> list[str]:
    """Remind the reviewers of postmortems in review longer than ``after_s`` (the setting); return their incidents."""
    wait = services.settings.postmortem_reminder_s if after_s is None else after_s
    now = services.clock()
    with services.sessions() as s:
        due = workflow.due_reminders(db_session=s, after_s=wait, now=now)
        for row in due:
            waiting = [u for u in row.reviewers or [] if u not in postmortems.signed_off(row)]
            line = (
                f"⏰ The postmortem of {escape(row.incident_id)} has waited in review since "
                f"{row.review_started_at:%Y-%m-%d %H:%M} UTC; {', '.join(mention(u) for u in waiting)}, "
                f"please review and sign off (`postmortem {escape(row.incident_id)} signoff`)"
            )
            cards.queue_line(db_session=s, incident_id=row.incident_id, text=line, now=now)
        s.commit()
    return [row.incident_id for row in due]


def remind_job(services: Services) -> None:
    """The scheduled reminder: never raises (retried at the next tick)."""
    try:
        remind(services)
    except Exception:
        log.exception("reminding postmortem reviewers failed")


def schedule_reminders(scheduler: BackgroundScheduler, services: Services) -> None:
    """Add the reminder job: it looks every five minutes (or each ``postmortem_reminder_s`` if shorter)."""
    scheduler.add_job(
        remind_job,
        "interval",
        seconds=min(300.0, services.settings.postmortem_reminder_s),
        args=[services],
        id="remind-postmortem-reviewers",
        max_instances=1,
        coalesce=True,
    )
