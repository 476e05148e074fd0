"""Kill switch and freeze from Slack (command, App Home form): the CLI's store function, guarded and audited.

`set_switch` checks the RBAC roles (freeze: override roles; kill switch: flip roles) and audits the
flip or the refusal; the cards the switch covers are re-rendered, their Approve buttons come and go.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy.orm import Session

from bot.notify.delivery import refresh_cards
from bot.notify.mrkdwn import escape, mention
from bot.services import Services
from remediation.guardrails.service import set_switch

LABELS = {"freeze": "freeze", "kill": "kill switch"}


def flip_switch(
    services: Services,
    s: Session,
    *,
    user: str,
    kind: Literal["freeze", "kill"],
    engaged: bool,
    service: str | None,
    reason: str = "",
) -> str:
    """Engage or release a freeze or the kill switch as ``user`` (refused and audited without the role).

    The cards the switch covers are re-rendered (their Approve buttons come and go); flushed, the
    caller commits. Returns the line said in the channel.
    """
    now = services.clock()
    covered = set_switch(
        db_session=s, config=services.rbac, kind=kind, engaged=engaged, actor=user, now=now,
        service=service, reason=reason,
    )  # fmt: skip
    refresh_cards(db_session=s, incident_ids=covered, now=now)
    where = escape(service) if service else "every service"
    why = f": {escape(reason)}" if reason else ""
    return f"{mention(user)} turned the {LABELS[kind]} {'on' if engaged else 'off'} for {where}{why}."
