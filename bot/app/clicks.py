"""Button clicks on incident cards: approve, reject, why; each acts on one stored suggestion.

A button's value is only ``{"s": token}``, the token of a suggestion the bot stored when it rendered
the card (`remediation.approvals.suggestions`). The row says what the button does and which one request
it acts on; the store makes that request unique however many clicks race, on any copy of the card.
Anything else (an old ``a``/``t``/``p`` value, an unknown token, a token of another incident's card) is
refused and the card is refreshed. A suggestion whose request is final answers who decided it and when.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session

from bot import tracing
from bot.app.commands import Outcome, Reply, why
from bot.app.errors import UsageError, incident_named
from bot.app.grammar import suggestion_number
from bot.app.requests import after_request_change, decide_request
from bot.app.tenancy import check_workspace
from bot.notify.delivery import announce
from bot.notify.mrkdwn import mention
from bot.services import Services
from incidents_db import incidents, outbox, verifications
from remediation.approvals import service as approvals
from remediation.approvals import states as st
from remediation.approvals import suggestions
from remediation.errors import RemediationError
from remediation.verification import canary

REFUSED = "this button is not one remediate rendered for this card; the card is refreshed"


class ButtonValue(BaseModel):
    """The value of a card button: the token of a stored suggestion, nothing else."""

    model_config = ConfigDict(extra="forbid")

    s: str = Field(min_length=1, max_length=32)


@dataclass(frozen=True)
class CardRef:
    """The message a button was clicked on (from the block_actions body), as far as Slack said."""

    channel: str | None = None
    ts: str | None = None


def parse_value(raw: str) -> str | None:
    """Return the suggestion token of a button value, or None for anything else (old or forged)."""
    try:
        return ButtonValue.model_validate(json.loads(raw)).s
    except (ValueError, TypeError, ValidationError):
        return None


def _decided_text(s: Session, request: approvals.RequestView) -> str:
    found = suggestions.decided(db_session=s, request_id=request.id)
    who = ", ".join(mention(a) for a in found.by) or "remediate"
    when = f" at {found.at:%Y-%m-%d %H:%M:%S} UTC" if found.at is not None else ""
    state = "approved, running" if request.state in (st.APPROVED, st.EXECUTING) else request.state
    text = f"This suggestion was already decided by {who}{when} ({state}); the card is refreshed."
    if request.state in st.FINAL and request.incident_id:
        text += f" To try it again: `/remediate suggest {request.incident_id}`."
    return text


def _refuse(services: Services, s: Session, incident_id: str | None, message: str) -> UsageError:
    """Queue a refresh of the clicked card (when known) and return the refusal to raise."""
    if incident_id is not None:
        announce(db_session=s, incident_id=incident_id, now=services.clock())
        s.commit()
    return UsageError(message)


def shown_suggestion(services: Services, s: Session, value: str, card: CardRef) -> suggestions.Shown:
    """Return the stored suggestion a click names, refusing forged, stale-format or foreign buttons."""
    token = parse_value(value)
    shown = suggestions.find(db_session=s, token=token) if token else None
    clicked = (
        suggestions.card_incident(db_session=s, channel=card.channel, ts=card.ts)
        if card.channel and card.ts
        else None
    )
    if shown is None:
        raise _refuse(services, s, clicked, REFUSED)
    posted = outbox.get_card(db_session=s, incident_id=shown.incident_id)
    if posted is not None and (posted.channel, posted.ts) != (card.channel, card.ts):
        raise _refuse(services, s, clicked, REFUSED)
    return shown


def _known_targets(services: Services, s: Session, incident_id: str) -> frozenset[str]:
    incident = incidents.get(db_session=s, incident_id=incident_id)
    graph = set(services.topology.services) if services.topology is not None else set()
    return frozenset(graph | set(incident.services or ()))


def click(
    services: Services, *, user: str, action_id: str, value: str, card: CardRef | None = None
) -> Outcome:
    """Handle one card button for a user; raise the package errors for refusals."""
    verb, _, n = action_id.partition(":")
    if verb not in ("approve", "approve_undo", "approve_canary", "reject", "why"):
        raise UsageError(f"unknown button {action_id!r}")
    with incident_named(), services.sessions() as s:
        shown = shown_suggestion(services, s, value, card or CardRef())
        # the click continues its incident's trace (from the alert), linked to the click's own request
        origin = outbox.origin_trace(db_session=s, incident_id=shown.incident_id)
        with tracing.restored(f"card.{verb}", origin, incident_id=shown.incident_id, user=user):
            if verb != "why":
                return _decide(services, s, user=user, verb=verb, shown=shown)
            out = why(services, s, incident_id=shown.incident_id, n=suggestion_number(n or "1"))
            s.commit()
    return out


def _decide(services: Services, s: Session, *, user: str, verb: str, shown: suggestions.Shown) -> Outcome:
    incident = incidents.get(db_session=s, incident_id=shown.incident_id)
    if incident.status == "resolved":
        raise _refuse(
            services, s, incident.id, f"{incident.id} is resolved; nothing runs from its card any more"
        )
    check_workspace(services, actor=user, verb=verb, incident_id=incident.id)  # refused and audited
    rec = incidents.record(db_session=s, incident_id=incident.id)
    request_id: str | None = shown.request_id
    try:
        if request_id is None:
            request_id = suggestions.request_for(
                db_session=s,
                guard=services.guard,
                token=shown.token,
                requester=incidents.requester_of(rec) or services.settings.requester,
                reason=f"suggested by {services.policy.name}",
                known_targets=_known_targets(services, s, incident.id),
            ).id
        current = approvals.get(db_session=s, request_id=request_id)
        if current.state != st.PENDING:
            return _decided(services, s, current)
        # both choices are armed inside the approval's transaction, once the guardrails allowed it: a
        # refused click commits its audited denial and nothing else
        also = {
            "approve_undo": _undo_if_harmful(current),
            "approve_canary": _canary_first(services, request_id, user),
        }.get(verb)
        verb = "approve" if verb in ("approve_undo", "approve_canary") else verb
        view = decide_request(services, s, user=user, verb=verb, request_id=request_id, also=also)
    except RemediationError:
        s.rollback()
        if request_id is not None:
            current = approvals.get(db_session=s, request_id=request_id)
            if current.state != st.PENDING:  # another click decided it first
                return _decided(services, s, current)
        # The refusal is audited by the workflow; the card still shows the (new) pending request.
        announce(db_session=s, incident_id=incident.id, now=services.clock())
        s.commit()
        raise
    text = after_request_change(services, s, view, user)
    s.commit()
    return Outcome(Reply(text), queued=True)


def _undo_if_harmful(request: approvals.RequestView) -> Callable[[Session], None]:
    """Return the step that arms "undo automatically if harmful" (docs/verification.md) once allowed."""

    def arm(db_session: Session) -> None:
        verifications.arm(db_session=db_session, request_id=request.id, action=request.action,
                          target=request.target, incident_id=request.incident_id)  # fmt: skip

    return arm


def _canary_first(services: Services, request_id: str, user: str) -> Callable[[Session], None]:
    """Return the step that arms "canary first" inside the approval's transaction, once it is allowed."""

    def arm(db_session: Session) -> None:
        canary.arm(db_session=db_session, guard=services.guard, request_id=request_id, by=user,
                   share=services.settings.canary_share, topology=services.topology)  # fmt: skip

    return arm


def _decided(services: Services, s: Session, request: approvals.RequestView) -> Outcome:
    """Answer a click on a suggestion whose request is no longer pending, and refresh the card."""
    text = _decided_text(s, request)
    if request.incident_id is not None:
        announce(db_session=s, incident_id=request.incident_id, now=services.clock())
    s.commit()
    return Outcome(Reply(text), queued=True)
