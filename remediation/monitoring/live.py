"""What the store knows about how the bot is doing, read at scrape time (docs/observability.md).

Every number here is computed from rows every replica shares (incidents, suggestions, requests,
executions, the audit log, kept snapshots, the policy registry), so replicas report the same values
and nothing is lost when a process restarts. Each function is one or two grouped queries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from incidents_db.models import ApprovalRequest, AuditEntry, Incident, PolicyVersion, Suggestion
from incidents_db.snapshots import ServiceSnapshot
from remediation.approvals import states as st
from sim.observation import METRICS

# a request people approved, whatever happened to it after
APPROVED = (st.APPROVED, st.EXECUTING, st.SUCCEEDED, st.FAILED, st.UNKNOWN)
FINISHED = (st.SUCCEEDED, st.FAILED, st.UNKNOWN)
TOP_N = (1, 3)


@dataclass(frozen=True)
class Acceptance:
    """How people answered the suggestions cards showed (M1 and the override rate).

    Attributes:
        shown: incidents whose card showed at least one suggestion.
        accepted: top-n -> incidents where people approved one of the first n suggestions.
        overridden: incidents with suggestions where people approved an action no card suggested.
    """

    shown: int
    accepted: dict[int, int]
    overridden: int


@dataclass(frozen=True)
class Outcomes:
    """Finished runs of approved suggestions of one ranking policy version."""

    policy: str
    succeeded: int
    finished: int


@dataclass(frozen=True)
class Telemetry:
    """Per service with a kept snapshot: why its telemetry counts as lost, and the feed's freshness.

    Attributes:
        lost: service -> "stale": its newest snapshot is older than the limit, so new incidents start
            without it and the policy reads the service as telemetry missing.
        present: (service, metric) pairs of the policy's metrics present in fresh snapshots (a metric
            absent from a snapshot reads as 0 to the policy).
        expected: (service, metric) pairs expected: every kept service times the policy's metrics.
        newest_age_s: seconds since the newest snapshot was received (None: none ever).
    """

    lost: dict[str, str]
    present: int
    expected: int
    newest_age_s: float | None

    @property
    def completeness(self) -> float | None:
        """Return the share of expected signals present (M9), None when nothing is expected."""
        return self.present / self.expected if self.expected else None


def open_incidents(*, db_session: Session) -> int:
    """Return how many incidents are open."""
    return int(db_session.execute(sa.select(sa.func.count()).where(Incident.status == "open")).scalar_one())


def mitigation_times(*, db_session: Session) -> list[float]:
    """Return, per resolved incident the bot handled (not imported history), seconds from open to resolved."""
    rows = db_session.execute(
        sa.select(Incident.opened_at, Incident.resolved_at).where(
            Incident.resolved_at.is_not(None), Incident.source != "import"
        )
    )
    return [
        max(0.0, (resolved - opened).total_seconds()) for opened, resolved in rows if resolved is not None
    ]


def _incidents(db_session: Session, query: sa.Select[Any]) -> int:
    return int(db_session.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one())


def acceptance(*, db_session: Session) -> Acceptance:
    """Return how often people approved the top-1 / top-3 suggestion, and how often none of them."""
    shown = sa.select(Suggestion.incident_id).distinct()
    accepted = {}
    for n in TOP_N:
        accepted[n] = _incidents(
            db_session,
            sa.select(Suggestion.incident_id)
            .join(ApprovalRequest, ApprovalRequest.id == Suggestion.request_id)
            .where(Suggestion.rank <= n, ApprovalRequest.state.in_(APPROVED))
            .distinct(),
        )
    from_card = sa.exists().where(Suggestion.request_id == ApprovalRequest.id)
    overridden = _incidents(
        db_session,
        sa.select(ApprovalRequest.incident_id)
        .where(
            ApprovalRequest.state.in_(APPROVED),
            ApprovalRequest.incident_id.in_(shown),
            ~from_card,
        )
        .distinct(),
    )
    return Acceptance(_incidents(db_session, shown), accepted, overridden)


def outcomes(*, db_session: Session, default_policy: str) -> list[Outcomes]:
    """Return, per ranking policy version, finished and succeeded runs of its approved suggestions (M1)."""
    rows = db_session.execute(
        sa.select(Suggestion.policy_version, ApprovalRequest.state, sa.func.count())
        .join(ApprovalRequest, ApprovalRequest.id == Suggestion.request_id)
        .where(ApprovalRequest.state.in_(FINISHED))
        .group_by(Suggestion.policy_version, ApprovalRequest.state)
    )
    found: dict[str, list[int]] = {}
    for policy, state, n in rows:
        counts = found.setdefault(str(policy or default_policy), [0, 0])
        counts[1] += int(n)
        if state == st.SUCCEEDED:
            counts[0] += int(n)
    return [Outcomes(p, s, f) for p, (s, f) in sorted(found.items())]


def denials(*, db_session: Session) -> dict[str, int]:
    """Return the audit log's denied steps by event (propose, approve, execute, freeze_on, ...) (M5)."""
    rows = db_session.execute(
        sa.select(AuditEntry.event, sa.func.count())
        .where(AuditEntry.decision == "denied")
        .group_by(AuditEntry.event)
    )
    return {str(event): int(n) for event, n in rows}


def policy_created(*, db_session: Session, version: str) -> datetime | None:
    """Return when a registered policy version was trained (None: not registered, e.g. the runbook)."""
    row = db_session.get(PolicyVersion, version)
    return row.created_at if row is not None else None


def telemetry(
    *, db_session: Session, now: datetime, max_age_s: float, metrics: Iterable[str] = METRICS
) -> Telemetry:
    """Return which services' snapshots went stale, and how complete the fresh signals are (F7, M9)."""
    wanted = tuple(metrics)
    lost: dict[str, str] = {}
    present = expected = 0
    newest: datetime | None = None
    rows = db_session.execute(
        sa.select(ServiceSnapshot.service, ServiceSnapshot.received_at, ServiceSnapshot.values)
    )
    for service, received, values in rows:
        newest = received if newest is None or received > newest else newest
        expected += len(wanted)
        if (now - received).total_seconds() > max_age_s:
            lost[str(service)] = "stale"
            continue
        present += sum(1 for m in wanted if m in (values or {}))
    age = max(0.0, (now - newest).total_seconds()) if newest is not None else None
    return Telemetry(lost, present, expected, age)


def vanished(record: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """Return, per service of an incident's timeline, metrics an earlier snapshot had and the newest lacks."""
    seen: dict[str, set[str]] = {}
    newest: dict[str, set[str]] = {}
    for event in record.get("events", []):
        if event.get("type") == "metrics" and event.get("service"):
            keys = {str(k) for k in dict(event.get("values") or {})}
            service = str(event["service"])
            seen.setdefault(service, set()).update(keys)
            newest[service] = keys
    return {s: tuple(sorted(seen[s] - keys)) for s, keys in sorted(newest.items()) if seen[s] - keys}


def incident_telemetry(
    *, db_session: Session, record: dict[str, Any], now: datetime, max_age_s: float
) -> tuple[str, ...]:
    """Return, for an incident's services, why their telemetry is lost: stale snapshots or vanished metrics."""
    services = sorted({str(s) for s in record.get("services") or () if s})
    stale = db_session.execute(
        sa.select(ServiceSnapshot.service, ServiceSnapshot.received_at).where(
            ServiceSnapshot.service.in_(services)
        )
    )
    lost = {str(s): "snapshots stale" for s, at in stale if (now - at).total_seconds() > max_age_s}
    for service, gone in vanished(record).items():
        lost.setdefault(service, f"{', '.join(gone)} gone")
    return tuple(f"{s} ({why})" for s, why in sorted(lost.items()))
