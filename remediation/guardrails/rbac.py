"""Who may do what: pure readings of the RBAC part of the guardrails config (roles, teams, policies)."""

from __future__ import annotations

from typing import Literal

from playbooks.models import Risk
from remediation.guardrails.models import ALL, OWNED, RbacConfig


def roles_of(config: RbacConfig, user: str) -> frozenset[str]:
    """Return the roles a Slack user id holds directly and through groups; none when disabled or unknown."""
    entry = config.users.get(user)
    if entry is not None and entry.disabled:
        return frozenset()
    roles = set(entry.roles) if entry else set()
    for group in config.groups.values():
        if user in group.members:
            roles.update(group.roles)
    return frozenset(roles)


def owned_services(config: RbacConfig, user: str) -> frozenset[str]:
    """Return the services owned by the teams the user belongs to (directly or through a group)."""
    owned: set[str] = set()
    for team in config.teams.values():
        members = set(team.members)
        for gid in team.groups:
            members.update(config.groups[gid].members)
        if user in members:
            owned.update(team.services)
    return frozenset(owned)


def known_users(config: RbacConfig) -> tuple[str, ...]:
    """Return every Slack user id the config names, sorted."""
    ids = set(config.users)
    for group in config.groups.values():
        ids.update(group.members)
    for team in config.teams.values():
        ids.update(team.members)
    return tuple(sorted(ids))


def may(
    config: RbacConfig, user: str, verb: Literal["request", "approve"], risk: Risk, target: str | None
) -> bool:
    """Return whether a policy lets the user request or approve an action of this risk on the target."""
    roles = roles_of(config, user)
    if not roles:
        return False
    for policy in config.policies:
        if not roles.intersection(policy.roles) or risk not in getattr(policy, verb):
            continue
        if target is None or ALL in policy.services or target in policy.services:
            return True
        if OWNED in policy.services and target in owned_services(config, user):
            return True
    return False


def eligible_approvers(
    config: RbacConfig, risk: Risk, target: str | None, requester: str | None
) -> tuple[str, ...]:
    """Return the user ids who may approve this risk on the target, never the requester."""
    return tuple(u for u in known_users(config) if u != requester and may(config, u, "approve", risk, target))


def approver_roles(config: RbacConfig, risk: Risk) -> tuple[str, ...]:
    """Return the roles some policy lets approve this risk."""
    return tuple(sorted({r for p in config.policies if risk in p.approve for r in p.roles}))


def may_publish_postmortems(config: RbacConfig, user: str) -> bool:
    """Return whether the user holds a role of ``postmortems.publish_roles`` (any role when none are named)."""
    roles = roles_of(config, user)
    wanted = config.postmortems.publish_roles
    return bool(roles) and (not wanted or bool(roles.intersection(wanted)))
