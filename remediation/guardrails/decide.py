"""The one pure guardrail function: ``decide(action, target, params, actor, context) -> Decision``.

Pure: everything it looks at arrives in its arguments (the config, the catalog, the clock, the
switches, recent and running executions), so the bot, the approval service and the simulator's
action mask get the same answer for the same inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from playbooks.catalog import Catalog
from playbooks.models import Action, Risk
from remediation.guardrails.models import ALL, OWNED, WEEKDAYS, Freeze, RbacConfig

Stage = Literal["request", "approve", "execute", "plan"]
"""request: actor proposes; approve: actor approves; execute: run it now; plan: could it run (masks)."""


@dataclass(frozen=True)
class Run:
    """One execution the limits count: what ran, where, and when it started."""

    action: str
    target: str | None
    started_at: datetime


@dataclass(frozen=True)
class Switches:
    """Freezes and kill switches flipped at run time; ``"*"`` stands for every service."""

    frozen: frozenset[str] = frozenset()
    killed: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Context:
    """Everything besides the action and actor that a decision depends on."""

    config: RbacConfig
    catalog: Catalog
    now: datetime
    stage: Stage = "request"
    requester: str | None = None
    approvals: tuple[str, ...] = ()
    service_kinds: Mapping[str, str] = field(default_factory=dict)
    replicas: Mapping[str, int] = field(default_factory=dict)
    switches: Switches = Switches()
    recent_runs: tuple[Run, ...] = ()
    running: tuple[Run, ...] = ()


@dataclass(frozen=True)
class Decision:
    """The answer: allowed or not, why in plain words, and what approval the action needs."""

    allowed: bool
    code: str
    reason: str
    risk: Risk | None = None
    approvals_required: int = 0
    approvals_counted: int = 0
    approvers: tuple[str, ...] = ()
    approver_roles: tuple[str, ...] = ()
    policy_version: str = ""
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Return the decision as plain JSON-ready values."""
        return {
            "allowed": self.allowed,
            "code": self.code,
            "reason": self.reason,
            "risk": self.risk.value if self.risk else None,
            "approvals_required": self.approvals_required,
            "approvals_counted": self.approvals_counted,
            "approvers": list(self.approvers),
            "approver_roles": list(self.approver_roles),
            "policy_version": self.policy_version,
            "notes": list(self.notes),
        }


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


def _in_window(freeze: Freeze, now: datetime) -> bool:
    if freeze.start is not None and freeze.end is not None:
        return freeze.start <= now < freeze.end
    every = freeze.every
    assert every is not None  # the model guarantees one of the two
    local = now.astimezone(ZoneInfo(every.tz))
    day, clock = WEEKDAYS[local.weekday()], local.time().replace(tzinfo=None)
    if every.start <= every.end:
        return day in every.days and every.start <= clock < every.end
    # Overnight window (22:00-06:00): the part after midnight belongs to the previous day's window.
    previous = WEEKDAYS[(local - timedelta(days=1)).weekday()]
    return (day in every.days and clock >= every.start) or (previous in every.days and clock < every.end)


def active_freezes(config: RbacConfig, switches: Switches, target: str | None, now: datetime) -> list[str]:
    """Return a description of every freeze covering the target now (global ones included)."""
    found = []
    for freeze in config.freeze.windows:
        covers = ALL in freeze.services or (target is not None and target in freeze.services)
        if covers and _in_window(freeze, now):
            found.append(f"freeze window {freeze.name!r}" + (f" ({freeze.reason})" if freeze.reason else ""))
    if ALL in switches.frozen:
        found.append("the global freeze switched on by hand")
    if target is not None and target in switches.frozen:
        found.append(f"the freeze on {target} switched on by hand")
    return found


def _deny(code: str, reason: str, **kw: Any) -> Decision:
    return Decision(allowed=False, code=code, reason=reason, **kw)


def _limits(
    action: Action, target: str | None, params: dict[str, Any], ctx: Context
) -> tuple[str, str] | None:
    """Return (code, reason) when a rate or blast-radius limit refuses running the action now."""
    config, now = ctx.config, ctx.now
    rules = [(action.rate_limit.max, action.rate_limit.per_s, "the catalog")] if action.rate_limit else []
    for rule in config.rate_limits:
        if rule.action in (ALL, action.id) and (rule.service == ALL or rule.service == target):
            rules.append((rule.max, rule.per_s, "the guardrails config"))
    for limit, per_s, source in rules:
        since = now - timedelta(seconds=per_s)
        count = sum(
            1
            for r in ctx.recent_runs
            if r.action == action.id and r.target == target and r.started_at > since
        )
        if count >= limit:
            where = f" on {target}" if target else ""
            return "rate_limit", (
                f"{action.id}{where} already ran {count} time(s) in the last {per_s // 60} min; "
                f"{source} allows {limit}. Wait, or choose another action"
            )
    blast = config.blast_radius
    if len(ctx.running) >= blast.max_concurrent:
        return (
            "blast_radius",
            f"{len(ctx.running)} actions are running already; at most {blast.max_concurrent} at once",
        )
    if target is not None:
        on_target = sum(1 for r in ctx.running if r.target == target)
        if on_target >= blast.max_concurrent_per_service:
            return "blast_radius", (
                f"{on_target} action(s) already running on {target}; at most "
                f"{blast.max_concurrent_per_service} per service. Wait for it to finish"
            )
    if action.blast is not None and target is not None:
        touched = action.blast.replicas(params)
        current = ctx.replicas.get(target)
        if action.blast.effect == "remove" and current is not None:
            allowed = max(1, int(blast.max_replica_share * current))
            if touched > allowed:
                return "blast_radius", (
                    f"{action.id} would take {touched} of {target}'s {current} replicas out; "
                    f"at most {allowed} ({blast.max_replica_share:.0%}) at once"
                )
        if action.blast.effect == "add":
            if touched > blast.max_replicas_added:
                return (
                    "blast_radius",
                    f"{action.id} would add {touched} replicas; at most {blast.max_replicas_added} at once",
                )
            if current and (current + touched) / current > blast.max_scale_factor:
                return "blast_radius", (
                    f"{action.id} would grow {target} from {current} to {current + touched} replicas; "
                    f"at most x{blast.max_scale_factor:g} in one step"
                )
    return None


def decide(
    action: str, target: str | None, params: Mapping[str, Any], actor: str | None, context: Context
) -> Decision:
    """Decide whether ``actor`` may do ``context.stage`` for the action on the target right now.

    Args:
        action: catalog action id.
        target: service name for service-scoped actions, None for global ones.
        params: the action's parameters as given (validated here).
        actor: Slack user id of the requester (request), the approver (approve); ignored for execute
            and plan.
        context: config, catalog, clock, stage, approvals so far, switches, recent and running runs.

    Returns:
        The decision; ``reason`` is a sentence a person can act on.
    """
    ctx, config = context, context.config
    pv = config.policy_version
    spec = ctx.catalog.actions.get(action)
    if spec is None:
        return _deny("unknown_action", f"{action!r} is not in the action catalog", policy_version=pv)
    risk = spec.risk
    required = config.approvals_required[risk]
    base: dict[str, Any] = {"risk": risk, "approvals_required": required, "policy_version": pv}
    base["approver_roles"] = approver_roles(config, risk)
    if spec.scope == "service" and not target:
        return _deny("bad_target", f"{action} acts on one service; name the target service", **base)
    if spec.scope == "global" and target:
        return _deny("bad_target", f"{action} acts on no service; leave the target empty", **base)
    kind = ctx.service_kinds.get(target) if target else None
    if kind is not None and kind not in spec.applies_to:
        return _deny(
            "not_applicable",
            f"{action} does not apply to {target} (a {kind}); it applies to {', '.join(spec.applies_to)}",
            **base,
        )
    try:
        clean = spec.validate_params(dict(params))
    except ValueError as exc:
        return _deny("bad_params", str(exc), **base)
    requester = actor if ctx.stage == "request" else ctx.requester
    approvers = eligible_approvers(config, risk, target, requester)
    base["approvers"] = approvers
    counted = tuple(dict.fromkeys(a for a in ctx.approvals if a in approvers))
    base["approvals_counted"] = len(counted)
    exempt = action in config.freeze.exempt_actions
    notes: list[str] = []

    killed = [s for s in (ALL, target) if s is not None and s in ctx.switches.killed] or (
        [ALL] if config.kill_switch.engaged else [s for s in config.kill_switch.services if s == target]
    )
    if killed and not exempt:
        where = "for every service" if ALL in killed else f"for {target}"
        who = ", ".join(config.kill_switch.flip_roles) or "nobody (edit the config)"
        return _deny(
            "kill_switch",
            f"the kill switch is engaged {where}; nothing runs until a {who} turns it off",
            **base,
        )

    freezes = [] if exempt else active_freezes(config, ctx.switches, target, ctx.now)
    if freezes:
        override = set(config.freeze.override_roles)
        holders = [actor] if ctx.stage in ("request", "approve") and actor else []
        if ctx.stage == "execute":
            holders = list(counted)
        by = [h for h in holders if roles_of(config, h) & override]
        if not by:
            roles = ", ".join(sorted(override)) or "nobody"
            return _deny(
                "freeze",
                f"{freezes[0]} is in effect for {target or 'every service'}; only {roles} may act through it",
                **base,
            )
        notes.append(f"{freezes[0]} overridden by {', '.join(by)}")
    base["notes"] = tuple(notes)

    if ctx.stage == "request":
        if not actor or not roles_of(config, actor):
            return _deny("unknown_user", f"{actor or 'nobody'} has no role in the guardrails config", **base)
        if not may(config, actor, "request", risk, target):
            return _deny(
                "not_permitted",
                f"{actor}'s roles ({', '.join(sorted(roles_of(config, actor)))}) may not request {risk.value}-risk actions on {target or 'any service'}",
                **base,
            )
        if len(approvers) < required:
            return _deny(
                "no_approvers",
                f"{action} needs {required} approval(s) but only {len(approvers)} person(s) may approve it; fix the config",
                **base,
            )
        return Decision(
            True,
            "ok",
            f"{actor} may request {action}; it needs {required} approval(s) from {', '.join(base['approver_roles'])}",
            **base,
        )
    if ctx.stage == "approve":
        if actor is not None and actor == ctx.requester:
            return _deny(
                "self_approval",
                f"{actor} requested this action and may not approve it; ask another approver",
                **base,
            )
        if not actor or not roles_of(config, actor):
            return _deny("unknown_user", f"{actor or 'nobody'} has no role in the guardrails config", **base)
        if actor in ctx.approvals:
            return _deny(
                "already_approved",
                f"{actor} already approved this request; a second person must approve",
                **base,
            )
        if actor not in approvers:
            return _deny(
                "not_permitted",
                f"{actor}'s roles ({', '.join(sorted(roles_of(config, actor)))}) may not approve {risk.value}-risk actions on {target or 'any service'}",
                **base,
            )
        return Decision(True, "ok", f"{actor} may approve ({len(counted) + 1} of {required})", **base)
    if ctx.stage == "execute" and len(counted) < required:
        missing = required - len(counted)
        return _deny(
            "needs_approval",
            f"{action} needs {missing} more approval(s) from {', '.join(base['approver_roles']) or 'nobody'}",
            **base,
        )
    if ctx.stage == "plan" and len(approvers) < required:
        return _deny(
            "no_approvers", f"nobody enough may approve {action} on {target or 'any service'}", **base
        )
    limited = _limits(spec, target, clean, ctx)
    if limited is not None:
        return _deny(limited[0], limited[1], **base)
    verb = "may run now" if ctx.stage == "execute" else "could run once approved"
    return Decision(True, "ok", f"{action}{' on ' + target if target else ''} {verb}", **base)
