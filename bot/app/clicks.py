"""Button clicks on incident cards: approve, reject, why; and what follows a request's change."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.orm import Session

from bot.app import incidents
from bot.app.commands import Outcome, Reply, run
from bot.app.delivery import announce
from bot.app.errors import UsageError
from bot.app.requests import after_request_change, decide_request
from bot.app.services import Services
from bot.app.suggest import latest_request
from remediation.approvals import service as approvals
from remediation.approvals import states as st
from remediation.errors import RemediationError


class ButtonValue(BaseModel):
    """The value of a card button: an open request id, or the suggestion to propose."""

    model_config = ConfigDict(extra="forbid")

    i: str
    r: str | None = None
    a: str | None = None
    t: str | None = None
    p: dict[str, Any] = {}


def parse_value(raw: str) -> ButtonValue:
    """Parse a button value or raise UsageError (a forged or stale button)."""
    try:
        value = ButtonValue.model_validate(json.loads(raw))
    except (ValueError, ValidationError):
        raise UsageError("this button is not one of remediate's; reload the card") from None
    if value.r is None and value.a is None:
        raise UsageError("this button names no action; reload the card")
    return value


def _request_for(services: Services, s: Session, value: ButtonValue) -> str:
    """Return the open request behind a button, proposing the suggestion when none is open yet."""
    if value.r is not None:
        return value.r
    incident = incidents.get(db_session=s, incident_id=value.i)
    open_request = latest_request(db_session=s, incident_id=incident.id, action=value.a or "", target=value.t)
    if open_request is not None and open_request.state in st.OPEN:
        return open_request.id
    rec = incidents.record(db_session=s, incident_id=incident.id)
    requester = incidents.requester_of(rec) or services.requester
    view = approvals.propose(
        db_session=s,
        guard=services.guard,
        action=value.a or "",
        target=value.t,
        params=value.p,
        requester=requester,
        incident_id=incident.id,
        reason=f"suggested by {services.policy.name}",
    )
    return view.id


def click(services: Services, *, user: str, action_id: str, value: str) -> Outcome:
    """Handle one card button for a user; raise the package errors for refusals."""
    verb, _, n = action_id.partition(":")
    parsed = parse_value(value)
    if verb == "why":
        return run(services, user=user, text=f"why {parsed.i} {n or '1'}")
    if verb not in ("approve", "reject"):
        raise UsageError(f"unknown button {action_id!r}")
    with services.lock, services.sessions() as s:
        request_id = _request_for(services, s, parsed)
        try:
            view = decide_request(services, s, user=user, verb=verb, request_id=request_id)
        except RemediationError:
            # The refusal is audited by the workflow; the card still shows the (new) pending request.
            s.rollback()
            announce(
                db_session=s,
                incident_id=incidents.get(db_session=s, incident_id=parsed.i).id,
                now=services.clock(),
            )
            s.commit()
            raise
        text = after_request_change(services, s, view, user)
        s.commit()
    return Outcome(Reply(text), queued=True)
