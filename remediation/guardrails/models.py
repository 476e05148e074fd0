"""The RBAC and guardrails YAML, parsed once into validated models (see docs/safety.md)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from playbooks.models import Risk

# used with re.fullmatch ("$" passes a trailing newline); T.../U... names a person of another workspace
# than the home one (OAuth installs, remediation/guardrails/workspaces.py), E.../W... of a Grid org install
SLACK_USER_ID = r"(?:[TE][A-Z0-9]{2,}/)?[UW][A-Z0-9]{2,}"
SLACK_GROUP_ID = r"S[A-Z0-9]{2,}"
SLACK_USERGROUP = r"(?:[TE][A-Z0-9]{2,}/)?S[A-Z0-9]{2,}"  # T.../S...: a user group of another workspace
GROUP_NAME = r"[a-z][a-z0-9_.-]{0,62}"  # a group resolved from a schedule needs no Slack id as its key
SCHEDULE_ID = r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}"
SOURCES: tuple[str, ...] = ("slack_usergroup", "pagerduty_schedule", "opsgenie_schedule")
ALL = "*"
OWNED = "owned"
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Resolved:
    """What a group's source (Slack user group, on-call schedule) names now, as `roles_of` reads it.

    ``members`` are granted; they are the last known ones while the source fails, for a bounded time
    (``stale``), and none once that time is over (``expired``: ``last_members`` says who they were).
    """

    kind: str
    ref: str
    members: tuple[str, ...] = ()
    as_of: datetime | None = None
    failing_since: datetime | None = None
    error: str = ""
    expired: bool = False
    last_members: tuple[str, ...] = ()

    @property
    def stale(self) -> bool:
        """Return whether the members are the last known ones of a source that fails now."""
        return self.failing_since is not None and not self.expired and self.as_of is not None

    @property
    def label(self) -> str:
        """Return the source for a sentence: ``Slack user group S0...``, ``PagerDuty schedule P...``."""
        names = {"slack_usergroup": "Slack user group", "pagerduty_schedule": "PagerDuty schedule"}
        return f"{names.get(self.kind, 'Opsgenie schedule')} {self.ref}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class User(_Model):
    """A person, keyed in the config by their immutable Slack user id (never by display name).

    ``email`` matches them to the people a PagerDuty or Opsgenie schedule names (before Slack is asked).
    """

    name: str = ""
    email: str = ""
    roles: tuple[str, ...] = ()
    disabled: bool = False


class Group(_Model):
    """A group of people: every member gets the group's roles.

    ``members`` are listed in the file; at most one source adds the people it names now, refreshed on a
    schedule (`remediation.guardrails.membership`): a Slack user group (``slack_usergroup: S...``; a
    group of another workspace of an OAuth install is ``T.../S...``, its members ``T.../U...``), whoever
    is on call in a PagerDuty schedule (``pagerduty_schedule: P...``) or an Opsgenie schedule
    (``opsgenie_schedule``: its id or name).
    """

    name: str = ""
    members: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    slack_usergroup: str | None = None
    pagerduty_schedule: str | None = None
    opsgenie_schedule: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Group:
        named = [k for k in SOURCES if getattr(self, k) is not None]
        if len(named) > 1:
            raise ValueError(f"name at most one source of members, got {' and '.join(named)}")
        if self.slack_usergroup is not None and not re.fullmatch(SLACK_USERGROUP, self.slack_usergroup):
            raise ValueError(
                "slack_usergroup must be a Slack user-group id (S..., or T.../S... for another workspace), "
                f"got {self.slack_usergroup!r}"
            )
        for key in ("pagerduty_schedule", "opsgenie_schedule"):
            value = getattr(self, key)
            if value is not None and not re.fullmatch(SCHEDULE_ID, value):
                raise ValueError(f"{key} must be a schedule id, got {value!r}")
        return self

    @property
    def source(self) -> tuple[str, str] | None:
        """Return ``(kind, id)`` of the group's source of members, or None for a group listed in full."""
        return next(((k, getattr(self, k)) for k in SOURCES if getattr(self, k) is not None), None)

    @field_validator("members")
    @classmethod
    def _ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [m for m in value if not re.fullmatch(SLACK_USER_ID, m)]
        if bad:
            raise ValueError(f"members must be Slack user ids (U... or W...), got {', '.join(bad)}")
        return value


class Team(_Model):
    """A team: its members own its services (policies with ``services: owned`` refer to them)."""

    members: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    services: tuple[str, ...] = ()


class Policy(_Model):
    """Holders of ``roles`` may request and approve actions of the listed risks on the listed services.

    ``services`` is ``["*"]`` for every service, ``["owned"]`` for the services of the holder's teams,
    or service names (combinable).
    """

    name: str = Field(min_length=1)
    roles: tuple[str, ...] = Field(min_length=1)
    services: tuple[str, ...] = (ALL,)
    request: tuple[Risk, ...] = ()
    approve: tuple[Risk, ...] = ()


class Recurrence(_Model):
    """A weekly window: on these days, from ``start`` to ``end`` (wall time in ``tz``)."""

    days: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = Field(min_length=1)
    start: time
    end: time
    tz: str = "UTC"

    @field_validator("tz")
    @classmethod
    def _tz(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; expected an IANA name like Europe/Berlin"
            ) from None
        return value


class Freeze(_Model):
    """A change freeze: one-off (``start``/``end``) or recurring (``every``), global or per service."""

    name: str = Field(min_length=1)
    services: tuple[str, ...] = (ALL,)
    start: datetime | None = None
    end: datetime | None = None
    every: Recurrence | None = None
    reason: str = ""

    @model_validator(mode="after")
    def _when(self) -> Freeze:
        one_off = self.start is not None or self.end is not None
        if one_off == (self.every is not None):
            raise ValueError("give either start and end (one-off) or every (recurring)")
        if one_off:
            if self.start is None or self.end is None:
                raise ValueError("a one-off freeze needs both start and end")
            if self.start.tzinfo is None or self.end.tzinfo is None:
                raise ValueError("start and end need a time zone, e.g. 2026-12-20T00:00:00Z")
            if self.end <= self.start:
                raise ValueError("end must be after start")
        return self


class FreezePolicy(_Model):
    """Freeze windows plus who may act through one and which actions a freeze never blocks."""

    windows: tuple[Freeze, ...] = ()
    override_roles: tuple[str, ...] = ()
    exempt_actions: tuple[str, ...] = ("wait", "escalate")


class RateLimitRule(_Model):
    """At most ``max`` executions of ``action`` (``*``: any) on ``service`` (``*``: each) per ``per_s``."""

    action: str = ALL
    service: str = ALL
    max: int = Field(ge=0)
    per_s: int = Field(ge=1)


class BlastRadius(_Model):
    """Limits on how much can change at once."""

    max_concurrent: int = Field(default=3, ge=1, description="executions running at once, all services")
    max_concurrent_per_service: int = Field(default=1, ge=1)
    max_replica_share: float = Field(
        default=0.5, gt=0, le=1, description="share of replicas one action removes"
    )
    max_replicas_added: int = Field(default=10, ge=1, description="replicas one action may add")
    max_scale_factor: float = Field(default=3.0, ge=1, description="replicas after / before for one action")


class KillSwitch(_Model):
    """Who may flip the kill switch (global or per service); ``engaged`` turns it on from the config."""

    flip_roles: tuple[str, ...] = ()
    engaged: bool = False
    services: tuple[str, ...] = ()


class PostmortemPolicy(_Model):
    """Who may publish a postmortem once its reviewers signed off; empty: anyone holding some role."""

    publish_roles: tuple[str, ...] = ()


class RbacConfig(_Model):
    """The whole RBAC and guardrails configuration."""

    version: Literal[1] = 1
    policy_version: str = "rbac-unversioned"
    roles: dict[str, str] = Field(default_factory=dict)
    users: dict[str, User] = Field(default_factory=dict)
    groups: dict[str, Group] = Field(default_factory=dict)
    teams: dict[str, Team] = Field(default_factory=dict)
    policies: tuple[Policy, ...] = ()
    approvals_required: dict[Risk, int] = Field(
        default_factory=lambda: {Risk.LOW: 1, Risk.MEDIUM: 1, Risk.HIGH: 2, Risk.CRITICAL: 2}
    )
    approval_ttl_s: int = Field(default=3600, ge=60)
    freeze: FreezePolicy = FreezePolicy()
    rate_limits: tuple[RateLimitRule, ...] = ()
    blast_radius: BlastRadius = BlastRadius()
    kill_switch: KillSwitch = KillSwitch()
    postmortems: PostmortemPolicy = PostmortemPolicy()
    _resolved: dict[str, Resolved] = PrivateAttr(default_factory=dict)

    @property
    def resolved(self) -> Mapping[str, Resolved]:
        """Return, per group id, what its source names now (`membership.with_sources` fills it)."""
        return self._resolved

    def with_resolved(self, resolved: Mapping[str, Resolved]) -> RbacConfig:
        """Return a copy of this config whose groups' sources name ``resolved`` (the file's part unchanged)."""
        copy = self.model_copy()
        copy._resolved = dict(resolved)
        return copy

    @field_validator("users")
    @classmethod
    def _user_ids(cls, value: dict[str, User]) -> dict[str, User]:
        bad = [u for u in value if not re.fullmatch(SLACK_USER_ID, u)]
        if bad:
            raise ValueError(f"users are keyed by Slack user id (U... or W...), got {', '.join(bad)}")
        return value

    @field_validator("groups")
    @classmethod
    def _group_ids(cls, value: dict[str, Group]) -> dict[str, Group]:
        bad = [g for g in value if not (re.fullmatch(SLACK_GROUP_ID, g) or re.fullmatch(GROUP_NAME, g))]
        if bad:
            raise ValueError(
                f"groups are keyed by Slack user-group id (S...) or a lower-case name, got {', '.join(bad)}"
            )
        return value

    @field_validator("approvals_required")
    @classmethod
    def _every_risk(cls, value: dict[Risk, int]) -> dict[Risk, int]:
        missing = [r.value for r in Risk if r not in value]
        if missing:
            raise ValueError(f"give a count for every risk; missing {', '.join(missing)}")
        if any(n < 1 for n in value.values()):
            raise ValueError("every risk needs at least 1 approval (nothing runs unapproved)")
        return value

    @model_validator(mode="after")
    def _references(self) -> RbacConfig:
        known = set(self.roles)
        problems: list[str] = []

        def check(where: str, roles: tuple[str, ...]) -> None:
            for role in roles:
                if role not in known:
                    problems.append(f"{where}: unknown role {role!r}")

        for uid, user in self.users.items():
            check(f"users.{uid}.roles", user.roles)
        for gid, group in self.groups.items():
            check(f"groups.{gid}.roles", group.roles)
        for i, policy in enumerate(self.policies):
            check(f"policies.{i}.roles", policy.roles)
        check("freeze.override_roles", self.freeze.override_roles)
        check("kill_switch.flip_roles", self.kill_switch.flip_roles)
        check("postmortems.publish_roles", self.postmortems.publish_roles)
        for name, team in self.teams.items():
            for gid in team.groups:
                if gid not in self.groups:
                    problems.append(f"teams.{name}.groups: unknown group {gid!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self
