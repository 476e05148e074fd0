"""SQLAlchemy 2 typed models of the store. The schema itself is created by the Alembic migrations.

Every timestamp column is `UTCDateTime`: timezone-aware UTC in Python on every backend (SQLite keeps
no zone, so values are stored as naive UTC there and given their zone back when read).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from incidents_db.errors import NaiveTimestampError


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A `DateTime(timezone=True)` that always hands back timezone-aware UTC datetimes."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        """Refuse naive datetimes and normalise aware ones to UTC (naive UTC on SQLite)."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise NaiveTimestampError(f"timestamp {value.isoformat()} has no time zone; give it one (e.g. Z)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        """Attach UTC to values read back from backends that drop the zone."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """Return the current time, timezone-aware UTC."""
    return datetime.now(UTC)


NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
}


# The number of an incident id ``INC-<n>`` (n: 1 to 18 ASCII digits, so it fits a BIGINT), else NULL;
# the same SQL on SQLite and PostgreSQL. `incidents.next_incident_id` is one above the highest.
INCIDENT_NUMBER_SQL = (
    "CASE WHEN substr(id, 1, 4) = 'INC-' AND length(id) BETWEEN 5 AND 22"
    " AND ltrim(substr(id, 5), '0123456789') = '' THEN CAST(substr(id, 5) AS BIGINT) END"
)


class Base(DeclarativeBase):
    """Declarative base of every store table."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

    type_annotation_map = {datetime: UTCDateTime()}


class Service(Base):
    """A service known to the store (from a topology or seen in history)."""

    __tablename__ = "services"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(32), default="service")
    tier: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    owner_team: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    topology: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Incident(Base):
    """One incident: its header. The timeline lives in `IncidentEvent` rows."""

    __tablename__ = "incidents"
    __table_args__ = (
        sa.Index("ix_incidents_resolved_at", "resolved_at"),
        sa.Index("ix_incidents_number", "number"),  # the next id: max(number), one index step (0019)
        sa.Index("ix_incidents_status_updated_at", "status", "updated_at"),  # open ones, latest first (0019)
        sa.CheckConstraint("severity IN ('sev1','sev2','sev3','sev4')", name="ck_incidents_severity"),
        sa.CheckConstraint("status IN ('open','resolved')", name="ck_incidents_status"),
    )

    id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    title: Mapped[str] = mapped_column(sa.Text)
    severity: Mapped[str] = mapped_column(sa.String(8))
    status: Mapped[str] = mapped_column(sa.String(16), default="open")
    topology: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    services: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    root_cause_service: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    root_cause_fault: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    source: Mapped[str] = mapped_column(sa.String(16), default="import")
    # the Slack workspace (T...) or org (E...) it belongs to; None: the home workspace (docs/slack.md)
    slack_workspace: Mapped[str | None] = mapped_column(sa.String(32), nullable=True, default=None)
    opened_at: Mapped[datetime] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # n of an id ``INC-<n>`` (up to 18 digits), else None; computed by the database, so every writer
    # (create, import by COPY or executemany, hand-written rows) fills it (migration 0019)
    number: Mapped[int | None] = mapped_column(
        sa.BigInteger, sa.Computed(INCIDENT_NUMBER_SQL, persisted=True), nullable=True
    )


class IncidentEvent(Base):
    """One timeline entry of an incident; `payload` holds the event's fields beyond at/type/service."""

    __tablename__ = "incident_events"
    __table_args__ = (sa.UniqueConstraint("incident_id", "seq", name="uq_incident_events_incident_seq"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(sa.ForeignKey("incidents.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(sa.Integer)
    at: Mapped[datetime] = mapped_column()
    type: Mapped[str] = mapped_column(sa.String(32))
    service: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)


class Suggestion(Base):
    """A ranked remediation suggestion the bot rendered on an incident's card (migration 0006).

    A card button carries only ``token``; the row says what the button does. ``fix_key`` hashes
    (incident, action, target, params), so every copy of a card offering the same fix shares one row
    per ``generation``, and ``request_id``, set once by the first click, is the one request those
    buttons act on. A new generation (an explicit fresh suggestion) is the only way to try again.
    """

    __tablename__ = "suggestions"
    __table_args__ = (
        sa.Index("ux_suggestions_token", "token", unique=True),
        sa.Index("ux_suggestions_fix", "fix_key", "generation", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(sa.ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    policy_version: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    rank: Mapped[int] = mapped_column(sa.Integer)
    action: Mapped[str] = mapped_column(sa.String(200))
    target: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    score: Mapped[float] = mapped_column(sa.Float)
    confidence: Mapped[float] = mapped_column(sa.Float)
    risk: Mapped[str] = mapped_column(sa.String(16))
    expected_ttm_s: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    token: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    fix_key: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    generation: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    request_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)


class ApprovalRequest(Base):
    """A request to run one action, moving through the approval state machine."""

    __tablename__ = "approval_requests"
    __table_args__ = (
        sa.CheckConstraint(
            "state IN ('proposed','pending','approved','executing','succeeded','failed','unknown',"
            "'rejected','expired','cancelled')",
            name="ck_approval_requests_state",
        ),
    )

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    incident_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("incidents.id", ondelete="SET NULL"), nullable=True, index=True
    )
    action: Mapped[str] = mapped_column(sa.String(200))
    target: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    risk: Mapped[str] = mapped_column(sa.String(16))
    requester: Mapped[str] = mapped_column(sa.String(64))
    state: Mapped[str] = mapped_column(sa.String(16), default="proposed")
    required_approvals: Mapped[int] = mapped_column(sa.Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    policy_version: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    version: Mapped[int] = mapped_column(sa.Integer, default=1)


class Approval(Base):
    """One person's decision on an approval request (at most one per person and request)."""

    __tablename__ = "approvals"
    __table_args__ = (
        sa.UniqueConstraint("request_id", "approver", name="uq_approvals_request_approver"),
        sa.CheckConstraint("decision IN ('approve','reject')", name="ck_approvals_decision"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(sa.ForeignKey("approval_requests.id", ondelete="CASCADE"))
    approver: Mapped[str] = mapped_column(sa.String(64))
    decision: Mapped[str] = mapped_column(sa.String(16))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    comment: Mapped[str] = mapped_column(sa.Text, default="")


class Execution(Base):
    """The one execution of an approved request (unique per request: exactly once)."""

    __tablename__ = "executions"
    __table_args__ = (
        sa.CheckConstraint("state IN ('running','succeeded','failed','unknown')", name="ck_executions_state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(
        sa.ForeignKey("approval_requests.id", ondelete="CASCADE"), unique=True
    )
    executor: Mapped[str] = mapped_column(sa.String(32))
    dry_run: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    state: Mapped[str] = mapped_column(sa.String(16), default="running")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    outcome: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    output: Mapped[str] = mapped_column(sa.Text, default="")
    # who runs it and until when (renewed by a heartbeat); recovery only takes an expired lease
    lease_owner: Mapped[str | None] = mapped_column(sa.String(100), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)


class AuditEntry(Base):
    """One line of the hash-chained audit log; `seq` is assigned by the writer (1, 2, 3, no gaps)."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(sa.String(200))
    event: Mapped[str] = mapped_column(sa.String(32))
    decision: Mapped[str] = mapped_column(sa.String(16))
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    action: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    target: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    incident_id: Mapped[str | None] = mapped_column(sa.String(200), nullable=True, index=True)
    request_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True, index=True)
    policy_version: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64))
    # the OpenTelemetry trace the decision was made in (migration 0012); hashed when present
    trace_id: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)


class PolicyVersion(Base):
    """A trained policy known to the registry and where it is in its life cycle."""

    __tablename__ = "policy_versions"
    __table_args__ = (
        sa.CheckConstraint(
            "status IN ('candidate','shadow','promoted','retired')", name="ck_policy_versions_status"
        ),
    )

    id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    parent: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    path: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16), default="candidate")
    metrics: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    config: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    promoted_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Postmortem(Base):
    """The postmortem of one incident (at most one per incident)."""

    __tablename__ = "postmortems"
    __table_args__ = (
        sa.CheckConstraint(
            "status IN ('draft','in_review','approved','published')", name="ck_postmortems_status"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(sa.ForeignKey("incidents.id", ondelete="CASCADE"), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    status: Mapped[str] = mapped_column(sa.String(16), default="draft")
    body: Mapped[str] = mapped_column(sa.Text, default="")
    reviewers: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    # migration 0009: the review (see remediation/postmortem/workflow.py)
    version: Mapped[int] = mapped_column(sa.Integer, default=1, server_default="1")
    fields: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, nullable=True)  # edited by people
    signoffs: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, nullable=True)  # user -> version
    review_started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    reminded_at: Mapped[datetime | None] = mapped_column(nullable=True)
    published_at: Mapped[datetime | None] = mapped_column(nullable=True)


class MiningState(Base):
    """Key/value state of trajectory mining (the watermark of the last run)."""

    __tablename__ = "mining_state"

    key: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)


class GuardrailSwitch(Base):
    """A freeze or kill switch flipped at run time; ``scope`` is a service name or ``*`` for all."""

    __tablename__ = "guardrail_switches"
    __table_args__ = (sa.CheckConstraint("kind IN ('freeze','kill')", name="ck_guardrail_switches_kind"),)

    kind: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    scope: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    engaged: Mapped[bool] = mapped_column(sa.Boolean)
    actor: Mapped[str] = mapped_column(sa.String(64))
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditHead(Base):
    """The single lock row of the audit log: seq and hash of the newest entry (migration 0002)."""

    __tablename__ = "audit_head"
    __table_args__ = (sa.CheckConstraint("id = 1", name="ck_audit_head_single_row"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(sa.Integer)
    hash: Mapped[str] = mapped_column(sa.String(64))
    touched: Mapped[int] = mapped_column(sa.Integer, default=0)
