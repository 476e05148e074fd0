"""Read the freezes and kill switches engaged at run time, with who engaged them and why."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from incidents_db.models import GuardrailSwitch


class Engaged(NamedTuple):
    """One engaged switch: ``kind`` freeze or kill, ``scope`` a service or ``*`` (every service)."""

    kind: str
    scope: str
    actor: str
    reason: str
    at: datetime


def engaged_switches(*, db_session: Session) -> list[Engaged]:
    """Return the engaged freezes and kill switches, kill switches first, then by scope."""
    rows = db_session.execute(
        sa.select(GuardrailSwitch)
        .where(GuardrailSwitch.engaged.is_(True))
        .order_by(GuardrailSwitch.kind.desc(), GuardrailSwitch.scope)
    ).scalars()
    return [Engaged(r.kind, r.scope, r.actor, r.reason or "", r.at) for r in rows]
