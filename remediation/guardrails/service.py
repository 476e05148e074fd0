"""Flip freezes and kill switches in the store, with the permission check and an audit entry."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy.orm import Session

from incidents_db.models import GuardrailSwitch
from remediation.audit.service import append, lock_chain
from remediation.errors import GuardrailDeniedError
from remediation.guardrails.decide import roles_of
from remediation.guardrails.models import ALL, RbacConfig


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
) -> None:
    """Turn a freeze or kill switch on or off (global when ``service`` is None) if ``actor`` may flip it."""
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
    db_session.commit()
