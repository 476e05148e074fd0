"""Declaring an incident from Slack (the `declare` command and the declare modal), and its roles."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from bot.app.errors import NotAllowedError
from bot.notify.delivery import announce
from bot.notify.mrkdwn import mention
from bot.services import Services
from incidents_db import incidents, roles
from incidents_db.installations import set_workspace
from remediation.guardrails.rbac import roles_of
from remediation.guardrails.workspaces import split


def need_role(services: Services, user: str, what: str) -> None:
    """Refuse a person with no role in the RBAC config (anyone with a role may declare and assign)."""
    if not roles_of(services.rbac, user):
        raise NotAllowedError(
            f"{mention(user)} has no role in the RBAC config, so may not {what}; ask an admin"
        )


def open_incident(
    services: Services,
    s: Session,
    *,
    user: str,
    title: str,
    services_: Sequence[str],
    severity: str = "sev3",
    description: str = "",
    commander: str | None = None,
    scribe: str | None = None,
) -> str:
    """Open an incident declared by ``user``, note it, attach snapshots, set its roles, queue its card.

    Returns its id. The caller holds the incidents' write lock and commits.
    """
    need_role(services, user, "declare incidents")
    now = services.clock()
    incident = incidents.create(
        db_session=s, title=title, services=list(services_), severity=severity, source="slack", now=now
    )
    workspace = split(user)[0]  # declared from another workspace (OAuth): it belongs there
    if workspace is not None:
        set_workspace(db_session=s, incident_id=incident.id, workspace=workspace)
    text = f"declared: {title}" + (f"\n{description}" if description else "")
    incidents.append(
        db_session=s, incident_id=incident.id, type_="note", at=now, actor=user, text=text, kind="declared"
    )
    incidents.attach_recent_snapshots(
        db_session=s,
        incident_id=incident.id,
        now=now,
        also=services.topology.services if services.topology is not None else (),
        max_age_s=services.settings.snapshot_max_age_s,
    )
    for role, holder in (("commander", commander), ("scribe", scribe)):
        if holder:
            roles.set_role(db_session=s, incident_id=incident.id, role=role, user=holder, actor=user, now=now)
    announce(db_session=s, incident_id=incident.id, now=now)
    return incident.id


def assign_role(
    services: Services, s: Session, *, user: str, incident_id: str, role: str, holder: str
) -> str:
    """Give ``holder`` an incident role as ``user`` (who needs a role) and refresh the card; return the id."""
    need_role(services, user, "assign incident roles")
    now = services.clock()
    real = incidents.get(db_session=s, incident_id=incident_id).id
    roles.set_role(db_session=s, incident_id=real, role=role, user=holder, actor=user, now=now)
    announce(db_session=s, incident_id=real, now=now)
    return real
