"""What the workflow checks against (`Guard`) and the guardrail context it reads from the store."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from incidents_db.models import ApprovalRequest, Execution, GuardrailSwitch
from playbooks.catalog import Catalog
from remediation.approvals.views import to_view
from remediation.guardrails.decide import Context, Run, Stage, Switches
from remediation.guardrails.models import RbacConfig


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Guard:
    """What the workflow checks against: config, catalog, clock, and what is known of the services."""

    config: RbacConfig
    catalog: Catalog
    clock: Callable[[], datetime] = _utcnow
    service_kinds: Mapping[str, str] = field(default_factory=dict)
    replicas: Mapping[str, int] = field(default_factory=dict)


def read_switches(*, db_session: Session) -> Switches:
    """Return the freezes and kill switches engaged at run time."""
    rows = db_session.execute(sa.select(GuardrailSwitch).where(GuardrailSwitch.engaged.is_(True))).scalars()
    frozen: set[str] = set()
    killed: set[str] = set()
    for row in rows:
        (frozen if row.kind == "freeze" else killed).add(row.scope)
    return Switches(frozen=frozenset(frozen), killed=frozenset(killed))


def build_context(
    *, db_session: Session, guard: Guard, stage: Stage, row: ApprovalRequest | None = None
) -> Context:
    """Assemble the guardrail context from the store: switches, runs of the last day, running executions."""
    now = guard.clock()
    joined = sa.select(
        ApprovalRequest.action, ApprovalRequest.target, Execution.started_at, Execution.state
    ).join(Execution, Execution.request_id == ApprovalRequest.id)
    window = max([86400, *[r.per_s for r in guard.config.rate_limits]])
    recent, running = [], []
    for action, target, started, _state in db_session.execute(
        joined.where(Execution.dry_run.is_(False), Execution.started_at > now - timedelta(seconds=window))
    ):
        recent.append(Run(action, target, started))
    for action, target, started, _state in db_session.execute(joined.where(Execution.state == "running")):
        running.append(Run(action, target, started))
    approvals = to_view(db_session, row).approvers if row is not None else ()
    return Context(
        config=guard.config,
        catalog=guard.catalog,
        now=now,
        stage=stage,
        requester=row.requester if row is not None else None,
        approvals=approvals,
        service_kinds=guard.service_kinds,
        replicas=guard.replicas,
        switches=read_switches(db_session=db_session),
        recent_runs=tuple(recent),
        running=tuple(running),
    )
