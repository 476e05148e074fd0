"""Who may do what: pure readings of the RBAC part of the guardrails config (roles, teams, policies).

A group's members are those the file lists plus those its source names now (``config.resolved``,
kept current by `remediation.guardrails.membership`); `role_origins` says which gave a role.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, NamedTuple

from playbooks.models import Risk
from remediation.guardrails.models import ALL, OWNED, RbacConfig


class RoleOrigin(NamedTuple):
    """Where one role of a person comes from: ``via`` for a sentence, ``stale`` when from a failing source."""

    role: str
    via: str
    stale: bool = False


def members_of(config: RbacConfig, group_id: str) -> tuple[str, ...]:
    """Return a group's members: listed in the file, then named by its source now (none once expired)."""
    resolved = config.resolved.get(group_id)
    listed = config.groups[group_id].members
    return tuple(dict.fromkeys(listed + resolved.members)) if resolved else listed


def roles_of(config: RbacConfig, user: str) -> frozenset[str]:
    """Return the roles a Slack user id holds directly and through groups; none when disabled or unknown."""
    entry = config.users.get(user)
    if entry is not None and entry.disabled:
        return frozenset()
    roles = set(entry.roles) if entry else set()
    for gid, group in config.groups.items():
        if user in members_of(config, gid):
            roles.update(group.roles)
    return frozenset(roles)


def _at(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC") if when else "never"


def role_origins(config: RbacConfig, user: str) -> tuple[RoleOrigin, ...]:
    """Return every way the user holds a role: the file's user entry, a group's listed or sourced members."""
    entry = config.users.get(user)
    if entry is not None and entry.disabled:
        return ()
    found = [RoleOrigin(r, "file user entry") for r in (entry.roles if entry else ())]
    for gid, group in config.groups.items():
        resolved = config.resolved.get(gid)
        if user in group.members:
            found += [RoleOrigin(r, f"group {gid} members (file)") for r in group.roles]
        if resolved is not None and user in resolved.members:
            fresh = (
                f"stale: last seen {_at(resolved.as_of)}"
                if resolved.stale
                else f"as of {_at(resolved.as_of)}"
            )
            via = f"group {gid}: {resolved.label} ({fresh})"
            found += [RoleOrigin(r, via, resolved.stale) for r in group.roles]
    return tuple(found)


def membership_note(config: RbacConfig, user: str | None) -> str:
    """Return a sentence when the user's roles rest on a failing source, or lost one that expired; else "".

    A role held only through stale membership is named with the source and since when it fails; a
    group whose last known membership expired is named too, so a refused person learns why.
    """
    if not user:
        return ""
    origins = role_origins(config, user)
    solid = {o.role for o in origins if not o.stale}
    notes: list[str] = []
    for gid, resolved in sorted(config.resolved.items()):
        roles = (
            ", ".join(r for r in config.groups[gid].roles if r not in solid) if gid in config.groups else ""
        )
        if resolved.stale and user in resolved.members and roles:
            notes.append(
                f"role {roles} comes from stale membership of {resolved.label} (last seen "
                f"{_at(resolved.as_of)}; unreachable since {_at(resolved.failing_since)})"
            )
        elif resolved.expired and user in resolved.last_members and roles:
            notes.append(
                f"membership of {resolved.label} expired (unreachable since {_at(resolved.failing_since)}), "
                f"so role {roles} no longer applies"
            )
    return "" if not notes else " (" + "; ".join(notes) + ")"


def owned_services(config: RbacConfig, user: str) -> frozenset[str]:
    """Return the services owned by the teams the user belongs to (directly or through a group)."""
    owned: set[str] = set()
    for team in config.teams.values():
        members = set(team.members)
        for gid in team.groups:
            members.update(members_of(config, gid))
        if user in members:
            owned.update(team.services)
    return frozenset(owned)


def known_users(config: RbacConfig) -> tuple[str, ...]:
    """Return every Slack user id the config names, sorted."""
    ids = set(config.users)
    for gid in config.groups:
        ids.update(members_of(config, gid))
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


def source_notes(config: RbacConfig) -> tuple[str, ...]:
    """Return one sentence per group source that fails now: its last members kept, or expired (for cards)."""
    notes: dict[str, str] = {}
    for resolved in config.resolved.values():
        if resolved.stale:
            notes[resolved.label] = (
                f"{resolved.label} unreachable since {_at(resolved.failing_since)}: its last known members "
                f"(as of {_at(resolved.as_of)}) may still act, for a bounded time"
            )
        elif resolved.expired:
            notes[resolved.label] = (
                f"{resolved.label} unreachable since {_at(resolved.failing_since)}: its membership expired, "
                "so its members may not act through it"
            )
    return tuple(notes[k] for k in sorted(notes))
