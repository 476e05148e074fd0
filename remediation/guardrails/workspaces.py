"""Which Slack workspace a person acts from, and the rule that keeps each workspace to its own incidents.

With the OAuth install (docs/slack.md, Install anywhere) one bot serves several workspaces. A person
is then named ``T123/U456`` (workspace, then user; ``E.../W...`` for an Enterprise Grid org-wide
install) everywhere a user id goes: RBAC keys and group members, approvals, the audit log. A plain
``U456`` is a person of the home workspace (the only one in single-token mode). An incident belongs
to the workspace it was declared in (alerts: the home workspace); a person of another workspace may
not request, approve, reject or close it, and each such refusal is audited.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from incidents_db.installations import request_workspace, workspace_of
from remediation.audit.service import append
from remediation.errors import GuardrailDeniedError
from remediation.guardrails.models import RbacConfig


def qualified(workspace: str | None, user: str) -> str:
    """Return the actor id of a user: plain for the home workspace (None), else ``workspace/user``."""
    return user if workspace is None else f"{workspace}/{user}"


def split(actor: str) -> tuple[str | None, str]:
    """Return (workspace or None for home, Slack user id) of an actor id."""
    workspace, _, user = actor.rpartition("/")
    return workspace or None, user


def refusal(actor: str, incident_id: str, incident_workspace: str | None) -> str | None:
    """Return why ``actor`` may not act on an incident of ``incident_workspace``, or None when they may."""
    mine = split(actor)[0]
    if mine == incident_workspace:
        return None
    theirs = f"workspace {incident_workspace}" if incident_workspace else "the home workspace"
    return (
        f"{incident_id} belongs to {theirs}; people of "
        f"{f'workspace {mine}' if mine else 'the home workspace'} cannot act on it"
    )


def check(
    *,
    db_session: Session,
    config: RbacConfig,
    actor: str,
    verb: str,
    incident_id: str | None = None,
    request_id: str | None = None,
) -> None:
    """Refuse (audited, committed) an actor acting on another workspace's incident or request.

    ``verb`` (request, approve, reject, resolve, ...) names the step in the audit entry. An incident or
    request that does not exist passes: the step itself then refuses it with its own message.
    """
    if request_id is not None:
        incident_id, workspace = request_workspace(db_session=db_session, request_id=request_id)
    elif incident_id is not None:
        incident_id, workspace = workspace_of(db_session=db_session, incident_id=incident_id)
    if incident_id is None:
        return
    reason = refusal(actor, incident_id, workspace)
    if reason is None:
        return
    append(
        db_session=db_session,
        actor=actor,
        event=f"{verb}_workspace",
        decision="denied",
        reason=reason,
        incident_id=incident_id,
        request_id=request_id,
        policy_version=config.policy_version,
    )
    db_session.commit()
    raise GuardrailDeniedError(reason)
