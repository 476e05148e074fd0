"""The one pure guardrail function: ``decide(action, target, params, actor, context) -> Decision``.

Pure: everything it looks at arrives in its arguments (the config, the catalog, the clock, the
switches, recent and running executions), so the bot, the approval service and the simulator's
action mask get the same answer for the same inputs (a recording trace also gets a decision span).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Literal

from opentelemetry import trace

from playbooks.catalog import Catalog
from playbooks.models import Action, Risk
from remediation.guardrails.models import ALL, RbacConfig
from remediation.guardrails.rbac import approver_roles, eligible_approvers, may, membership_note, roles_of
from remediation.guardrails.windows import active_freezes

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


Refusal = tuple[str, str]
"""A check's refusal: a short code and a reason a person can act on."""


@dataclass(frozen=True)
class _Ask:
    """One question to the guardrails and the facts every check shares (all derived from the arguments)."""

    name: str  # the action id as asked
    spec: Action
    target: str | None
    params: Mapping[str, Any]
    actor: str | None
    ctx: Context

    @cached_property
    def validated(self) -> tuple[dict[str, Any], str | None]:
        """Return the params as the catalog validates them, or the error that says why they do not."""
        try:
            return self.spec.validate_params(dict(self.params)), None
        except ValueError as exc:
            return {}, str(exc)

    @cached_property
    def approvers(self) -> tuple[str, ...]:
        """Return who may approve the action on the target (never the requester)."""
        requester = self.actor if self.ctx.stage == "request" else self.ctx.requester
        return eligible_approvers(self.ctx.config, self.spec.risk, self.target, requester)

    @cached_property
    def counted(self) -> tuple[str, ...]:
        """Return the approvals so far given by people who may approve, each once."""
        return tuple(dict.fromkeys(a for a in self.ctx.approvals if a in self.approvers))

    @property
    def required(self) -> int:
        """Return how many approvals the action's risk needs."""
        return self.ctx.config.approvals_required[self.spec.risk]

    @property
    def exempt(self) -> bool:
        """Return whether freezes and kill switches let this action through (the config's exempt list)."""
        return self.name in self.ctx.config.freeze.exempt_actions

    def roles(self) -> str:
        """Return the actor's roles for a sentence (with where a stale or expired one came from)."""
        roles = ", ".join(sorted(roles_of(self.ctx.config, self.actor or "")))
        return roles + membership_note(self.ctx.config, self.actor)


Check = Callable[[_Ask], Refusal | None]


def _deny(code: str, reason: str, **kw: Any) -> Decision:
    return Decision(allowed=False, code=code, reason=reason, **kw)


def _target_shape(ask: _Ask) -> Refusal | None:
    """Refuse a service action without a target, or a global one with a target."""
    if ask.spec.scope == "service" and not ask.target:
        return "bad_target", f"{ask.name} acts on one service; name the target service"
    if ask.spec.scope == "global" and ask.target:
        return "bad_target", f"{ask.name} acts on no service; leave the target empty"
    return None


def _applies(ask: _Ask) -> Refusal | None:
    """Refuse an action on a kind of service it does not apply to."""
    kind = ask.ctx.service_kinds.get(ask.target) if ask.target else None
    if kind is not None and kind not in ask.spec.applies_to:
        applies = ", ".join(ask.spec.applies_to)
        return (
            "not_applicable",
            f"{ask.name} does not apply to {ask.target} (a {kind}); it applies to {applies}",
        )
    return None


def _valid_params(ask: _Ask) -> Refusal | None:
    """Refuse parameters the catalog's schema rejects."""
    error = ask.validated[1]
    return ("bad_params", error) if error is not None else None


def _kill_switch(ask: _Ask) -> Refusal | None:
    """Refuse while a kill switch covers the target (set by hand or in the config), unless exempt."""
    config, target = ask.ctx.config, ask.target
    killed = [s for s in (ALL, target) if s is not None and s in ask.ctx.switches.killed] or (
        [ALL] if config.kill_switch.engaged else [s for s in config.kill_switch.services if s == target]
    )
    if not killed or ask.exempt:
        return None
    where = "for every service" if ALL in killed else f"for {target}"
    who = ", ".join(config.kill_switch.flip_roles) or "nobody (edit the config)"
    return "kill_switch", f"the kill switch is engaged {where}; nothing runs until a {who} turns it off"


def _freeze_overrides(ask: _Ask) -> tuple[list[str], list[str]]:
    """Return the freezes covering the target now and who at this stage may act through them."""
    config, ctx = ask.ctx.config, ask.ctx
    freezes = [] if ask.exempt else active_freezes(config, ctx.switches.frozen, ask.target, ctx.now)
    if not freezes:
        return [], []
    holders = [ask.actor] if ctx.stage in ("request", "approve") and ask.actor else []
    if ctx.stage == "execute":
        holders = list(ask.counted)
    override = set(config.freeze.override_roles)
    return freezes, [h for h in holders if roles_of(config, h) & override]


def _freeze(ask: _Ask) -> Refusal | None:
    """Refuse during a freeze unless the actor (or, to run, an approver) holds an override role."""
    freezes, by = _freeze_overrides(ask)
    if not freezes or by:
        return None
    roles = ", ".join(sorted(ask.ctx.config.freeze.override_roles)) or "nobody"
    where = ask.target or "every service"
    return "freeze", f"{freezes[0]} is in effect for {where}; only {roles} may act through it"


def _freeze_notes(ask: _Ask) -> tuple[str, ...]:
    """Return the note that a freeze was overridden, and by whom, when one was."""
    freezes, by = _freeze_overrides(ask)
    return (f"{freezes[0]} overridden by {', '.join(by)}",) if freezes and by else ()


def _known_actor(ask: _Ask) -> Refusal | None:
    """Refuse someone with no role in the config."""
    if not ask.actor or not roles_of(ask.ctx.config, ask.actor):
        return "unknown_user", f"{ask.actor or 'nobody'} has no role in the guardrails config{ask.roles()}"
    return None


def _may_request(ask: _Ask) -> Refusal | None:
    """Refuse a requester whose roles may not request this risk on the target."""
    risk, target = ask.spec.risk, ask.target
    if ask.actor is not None and may(ask.ctx.config, ask.actor, "request", risk, target):
        return None
    return "not_permitted", (
        f"{ask.actor}'s roles ({ask.roles()}) may not request {risk.value}-risk actions on "
        f"{target or 'any service'}"
    )


def _enough_approvers(ask: _Ask) -> Refusal | None:
    """Refuse a request that too few people may approve (the config needs fixing)."""
    if len(ask.approvers) >= ask.required:
        return None
    return "no_approvers", (
        f"{ask.name} needs {ask.required} approval(s) but only {len(ask.approvers)} person(s) may "
        "approve it; fix the config"
    )


def _not_self(ask: _Ask) -> Refusal | None:
    """Refuse the requester approving their own request."""
    if ask.actor is not None and ask.actor == ask.ctx.requester:
        return (
            "self_approval",
            f"{ask.actor} requested this action and may not approve it; ask another approver",
        )
    return None


def _not_twice(ask: _Ask) -> Refusal | None:
    """Refuse a second approval by the same person."""
    if ask.actor in ask.ctx.approvals:
        return "already_approved", f"{ask.actor} already approved this request; a second person must approve"
    return None


def _may_approve(ask: _Ask) -> Refusal | None:
    """Refuse an approver whose roles may not approve this risk on the target."""
    if ask.actor in ask.approvers:
        return None
    return "not_permitted", (
        f"{ask.actor}'s roles ({ask.roles()}) may not approve {ask.spec.risk.value}-risk actions on "
        f"{ask.target or 'any service'}"
    )


def _quorum(ask: _Ask) -> Refusal | None:
    """Refuse running before enough eligible people approved."""
    if len(ask.counted) >= ask.required:
        return None
    roles = ", ".join(approver_roles(ask.ctx.config, ask.spec.risk)) or "nobody"
    return (
        "needs_approval",
        f"{ask.name} needs {ask.required - len(ask.counted)} more approval(s) from {roles}",
    )


def _approvable(ask: _Ask) -> Refusal | None:
    """Refuse planning an action that too few people may approve."""
    if len(ask.approvers) >= ask.required:
        return None
    return "no_approvers", f"nobody enough may approve {ask.name} on {ask.target or 'any service'}"


def _rate_limit(ask: _Ask) -> Refusal | None:
    """Refuse when the action ran on the target as often as the catalog or the config allows lately."""
    action, target, ctx = ask.spec, ask.target, ask.ctx
    rules = [(action.rate_limit.max, action.rate_limit.per_s, "the catalog")] if action.rate_limit else []
    for rule in ctx.config.rate_limits:
        if rule.action in (ALL, action.id) and (rule.service == ALL or rule.service == target):
            rules.append((rule.max, rule.per_s, "the guardrails config"))
    for limit, per_s, source in rules:
        since = ctx.now - timedelta(seconds=per_s)
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
    return None


def _concurrency(ask: _Ask) -> Refusal | None:
    """Refuse when too many actions run already, in all or on the target."""
    blast, running, target = ask.ctx.config.blast_radius, ask.ctx.running, ask.target
    if len(running) >= blast.max_concurrent:
        return (
            "blast_radius",
            f"{len(running)} actions are running already; at most {blast.max_concurrent} at once",
        )
    if target is not None:
        on_target = sum(1 for r in running if r.target == target)
        if on_target >= blast.max_concurrent_per_service:
            return "blast_radius", (
                f"{on_target} action(s) already running on {target}; at most "
                f"{blast.max_concurrent_per_service} per service. Wait for it to finish"
            )
    return None


def _replicas(ask: _Ask) -> Refusal | None:
    """Refuse taking out too large a share of the target's replicas, or adding too many at once."""
    action, target, blast = ask.spec, ask.target, ask.ctx.config.blast_radius
    if action.blast is None or target is None:
        return None
    touched = action.blast.replicas(ask.validated[0])
    current = ask.ctx.replicas.get(target)
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


def _ok(ask: _Ask) -> str:
    """Return the reason of an allowed decision, worded for the stage."""
    action, stage = ask.name, ask.ctx.stage
    if stage == "request":
        roles = ", ".join(approver_roles(ask.ctx.config, ask.spec.risk))
        return f"{ask.actor} may request {action}; it needs {ask.required} approval(s) from {roles}"
    if stage == "approve":
        return f"{ask.actor} may approve ({len(ask.counted) + 1} of {ask.required}){membership_note(ask.ctx.config, ask.actor)}"
    verb = "may run now" if stage == "execute" else "could run once approved"
    return f"{action}{' on ' + ask.target if ask.target else ''} {verb}"


SHAPE: tuple[Check, ...] = (_target_shape, _applies, _valid_params)
"""Checks of the question itself; their refusals name no approvers."""
SWITCHES: tuple[Check, ...] = (_kill_switch, _freeze)
"""Run-time switches and freeze windows, at every stage."""
LIMITS: tuple[Check, ...] = (_rate_limit, _concurrency, _replicas)
"""Rate and blast-radius limits on running the action now."""
STAGES: dict[str, tuple[Check, ...]] = {
    "request": (_known_actor, _may_request, _enough_approvers),
    "approve": (_not_self, _known_actor, _not_twice, _may_approve),
    "execute": (_quorum, *LIMITS),
    "plan": (_approvable, *LIMITS),
}
"""The checks of each stage, after the shape and the switches, in the order they run."""


def _first(checks: tuple[Check, ...], ask: _Ask) -> Refusal | None:
    """Return the first refusal of the checks, run in order, or None when all pass."""
    for check in checks:
        refusal = check(ask)
        if refusal is not None:
            return refusal
    return None


def decide(
    action: str, target: str | None, params: Mapping[str, Any], actor: str | None, context: Context
) -> Decision:
    """Decide whether ``actor`` may do ``context.stage`` for the action on the target right now.

    The checks run in order from the tables above (`SHAPE`, `SWITCHES`, then `STAGES` for the stage);
    the first refusal is the answer.

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
    config = context.config
    spec = context.catalog.actions.get(action)
    if spec is None:
        return _deny(
            "unknown_action", f"{action!r} is not in the action catalog", policy_version=config.policy_version
        )
    ask = _Ask(action, spec, target, params, actor, context)
    base: dict[str, Any] = {
        "risk": spec.risk,
        "approvals_required": ask.required,
        "policy_version": config.policy_version,
        "approver_roles": approver_roles(config, spec.risk),
    }
    refusal = _first(SHAPE, ask)
    if refusal is not None:
        return _traced(_deny(*refusal, **base), ask)
    base.update(approvers=ask.approvers, approvals_counted=len(ask.counted))
    refusal = _first(SWITCHES, ask)
    if refusal is not None:
        return _traced(_deny(*refusal, **base), ask)
    base["notes"] = _freeze_notes(ask)
    refusal = _first(STAGES[context.stage], ask)
    if refusal is not None:
        return _traced(_deny(*refusal, **base), ask)
    return _traced(Decision(True, "ok", _ok(ask), **base), ask)


def _traced(decision: Decision, ask: _Ask) -> Decision:
    """Record the decision as a span when a trace is recording (not on the simulator's mask path)."""
    if trace.get_current_span().get_span_context().trace_flags.sampled:  # an ended parent counts too
        attributes = {"remediate.action": ask.name, "remediate.stage": ask.ctx.stage, "remediate.rule": decision.code,
                      "remediate.verdict": "allowed" if decision.allowed else "denied",
                      "remediate.target": ask.target or "", "remediate.actor": ask.actor or ""}  # fmt: skip
        trace.get_tracer("remediate").start_span("guardrails.decide", attributes=attributes).end()
    return decision
