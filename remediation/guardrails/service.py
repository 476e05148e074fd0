"""Flip freezes and kill switches in the store, with the permission check and an audit entry."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from incidents_db.models import ApprovalRequest, GuardrailSwitch, Incident, Suggestion
from remediation.audit.service import append, lock_chain
from remediation.errors import GuardrailDeniedError
from remediation.guardrails.models import ALL, RbacConfig
from remediation.guardrails.rbac import roles_of


def set_switch(
    *,
    db_session: Session,
    config: RbacConfig,
    kind: Literal["freeze", "kill"],
    engaged: bool,
    actor: str,
    now: datetime,
    service: str | None = None,
    reason: str = "",
) -> list[str]:
    """Turn a freeze or kill switch on or off (global when ``service`` is None) if ``actor`` may flip it.

    Returns the ids of the open incidents the switch covers, whose cards must be re-rendered (an
    Approve button that the switch now forbids, or allows again). The change is flushed, not
    committed: the caller queues those refreshes and commits both together. A refusal is committed
    (its audit entry) before `GuardrailDeniedError` is raised.
    """
    lock_chain(db_session=db_session)
    scope = service or ALL
    allowed_roles = config.freeze.override_roles if kind == "freeze" else config.kill_switch.flip_roles
    label = "freeze" if kind == "freeze" else "kill switch"
    where = "every service" if scope == ALL else scope
    event = f"{kind}_{'on' if engaged else 'off'}"
    if not roles_of(config, actor) & set(allowed_roles):
        message = f"{actor} may not turn the {label} {'on' if engaged else 'off'}; roles allowed: {', '.join(allowed_roles) or 'none'}"
        append(
            db_session=db_session,
            actor=actor,
            event=event,
            decision="denied",
            reason=message,
            target=service,
            policy_version=config.policy_version,
        )
        db_session.commit()
        raise GuardrailDeniedError(message)
    row = db_session.get(GuardrailSwitch, (kind, scope))
    if row is None:
        db_session.add(
            GuardrailSwitch(kind=kind, scope=scope, engaged=engaged, actor=actor, reason=reason, at=now)
        )
    else:
        row.engaged, row.actor, row.reason, row.at = engaged, actor, reason, now
    text = f"{label} {'on' if engaged else 'off'} for {where}" + (f": {reason}" if reason else "")
    append(
        db_session=db_session,
        actor=actor,
        event=event,
        decision="allowed",
        reason=text,
        target=service,
        policy_version=config.policy_version,
    )
    db_session.flush()
    return covered_open_incidents(db_session=db_session, service=service)


def covered_open_incidents(*, db_session: Session, service: str | None) -> list[str]:
    """Return the ids of open incidents a switch on ``service`` (None: every service) can change, sorted.

    That is every open incident for a global switch; for one service, those it is part of and those
    with a suggestion or approval request targeting it (a card can offer a fix on a dependency).
    """
    is_open = Incident.status == "open"
    rows = db_session.execute(sa.select(Incident.id, Incident.services).where(is_open)).all()
    if service is None:
        return sorted(row.id for row in rows)
    found = {row.id for row in rows if service in (row.services or [])}
    for model in (Suggestion, ApprovalRequest):
        found.update(
            db_session.execute(
                sa.select(model.incident_id).join(Incident, Incident.id == model.incident_id)
                .where(is_open, model.target == service)
                .distinct()
            ).scalars()
        )  # fmt: skip
    return sorted(i for i in found if i)
