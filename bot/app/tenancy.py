"""Who acts, from which workspace: Slack payloads to actor ids, and the workspace check before a step.

With one token every person is their plain user id. With the OAuth install (docs/slack.md) a person
of a workspace other than ``home_team_id`` is ``T.../U...`` (``E.../W...`` from an Enterprise Grid
org-wide install), so RBAC, approvals and the audit log key people by (workspace, user); the rule
itself is `remediation.guardrails.workspaces`.
"""

from __future__ import annotations

from typing import Any

from bot.services import Services
from remediation.guardrails import workspaces


def _id(value: Any) -> str | None:
    """Return an id given as a string or as Slack's ``{"id": ...}`` object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def workspace_key(services: Services, body: dict[str, Any]) -> str | None:
    """Return the workspace a payload comes from: None for home (and always with one token)."""
    if not services.settings.oauth:
        return None
    org = str(body.get("is_enterprise_install", "")).lower() == "true"
    enterprise = _id(body.get("enterprise_id")) or _id(body.get("enterprise"))
    raw = body.get("user")
    user: dict[str, Any] = raw if isinstance(raw, dict) else {}
    team = _id(body.get("team_id")) or _id(body.get("team")) or _id(user.get("team_id"))
    key = enterprise if org and enterprise else team
    return None if key is None or key == services.settings.home_team_id else key


def actor(services: Services, body: dict[str, Any], user: str) -> str:
    """Return the actor id of ``user`` sending ``body``: plain at home, ``workspace/user`` elsewhere."""
    return workspaces.qualified(workspace_key(services, body), user)


def check_workspace(
    services: Services,
    *,
    actor: str,
    verb: str,
    incident_id: str | None = None,
    request_id: str | None = None,
) -> None:
    """Refuse (audited) ``actor`` acting on another workspace's incident or request, in its own transaction."""
    with services.sessions() as s:
        workspaces.check(
            db_session=s,
            config=services.rbac,
            actor=actor,
            verb=verb,
            incident_id=incident_id,
            request_id=request_id,
        )
