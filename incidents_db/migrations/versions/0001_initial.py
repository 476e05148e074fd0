"""Initial schema: services, incidents and timeline, suggestions, approvals, executions, audit log,
policy versions, postmortems, mining state.

Revision ID: 0001
Revises:
Create Date: 2026-03-01

Never edit this file once released: later needs are added as new migrations.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _ts(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "services",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("tier", sa.Integer, nullable=True),
        sa.Column("owner_team", sa.String(200), nullable=True),
        sa.Column("topology", sa.String(200), nullable=True),
        _ts("created_at"),
        sa.UniqueConstraint("name", name="uq_services_name"),
    )
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("topology", sa.String(200), nullable=True),
        sa.Column("services", sa.JSON, nullable=False),
        sa.Column("root_cause_service", sa.String(200), nullable=True),
        sa.Column("root_cause_fault", sa.String(200), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        _ts("opened_at"),
        _ts("resolved_at", nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.CheckConstraint("severity IN ('sev1','sev2','sev3','sev4')", name="ck_incidents_severity"),
        sa.CheckConstraint("status IN ('open','resolved')", name="ck_incidents_status"),
    )
    op.create_index("ix_incidents_resolved_at", "incidents", ["resolved_at"])
    op.create_table(
        "incident_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "incident_id",
            sa.String(200),
            sa.ForeignKey(
                "incidents.id", ondelete="CASCADE", name="fk_incident_events_incident_id_incidents"
            ),
            nullable=False,
        ),
        sa.Column("seq", sa.Integer, nullable=False),
        _ts("at"),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("service", sa.String(200), nullable=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.UniqueConstraint("incident_id", "seq", name="uq_incident_events_incident_seq"),
    )
    op.create_table(
        "suggestions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "incident_id",
            sa.String(200),
            sa.ForeignKey("incidents.id", ondelete="CASCADE", name="fk_suggestions_incident_id_incidents"),
            nullable=False,
        ),
        _ts("created_at"),
        sa.Column("policy_version", sa.String(200), nullable=True),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("action", sa.String(200), nullable=False),
        sa.Column("target", sa.String(200), nullable=True),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("risk", sa.String(16), nullable=False),
        sa.Column("expected_ttm_s", sa.Float, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_index("ix_suggestions_incident_id", "suggestions", ["incident_id"])
    op.create_table(
        "approval_requests",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "incident_id",
            sa.String(200),
            sa.ForeignKey(
                "incidents.id", ondelete="SET NULL", name="fk_approval_requests_incident_id_incidents"
            ),
            nullable=True,
        ),
        sa.Column("action", sa.String(200), nullable=False),
        sa.Column("target", sa.String(200), nullable=True),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("risk", sa.String(16), nullable=False),
        sa.Column("requester", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("required_approvals", sa.Integer, nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("expires_at", nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("policy_version", sa.String(200), nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.CheckConstraint(
            "state IN ('proposed','pending','approved','executing','succeeded','failed','unknown',"
            "'rejected','expired','cancelled')",
            name="ck_approval_requests_state",
        ),
    )
    op.create_index("ix_approval_requests_incident_id", "approval_requests", ["incident_id"])
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "request_id",
            sa.String(64),
            sa.ForeignKey(
                "approval_requests.id", ondelete="CASCADE", name="fk_approvals_request_id_approval_requests"
            ),
            nullable=False,
        ),
        sa.Column("approver", sa.String(64), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        _ts("at"),
        sa.Column("comment", sa.Text, nullable=False),
        sa.UniqueConstraint("request_id", "approver", name="uq_approvals_request_approver"),
        sa.CheckConstraint("decision IN ('approve','reject')", name="ck_approvals_decision"),
    )
    op.create_table(
        "executions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "request_id",
            sa.String(64),
            sa.ForeignKey(
                "approval_requests.id", ondelete="CASCADE", name="fk_executions_request_id_approval_requests"
            ),
            nullable=False,
        ),
        sa.Column("executor", sa.String(32), nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        _ts("started_at"),
        _ts("finished_at", nullable=True),
        sa.Column("outcome", sa.JSON, nullable=False),
        sa.Column("output", sa.Text, nullable=False),
        sa.UniqueConstraint("request_id", name="uq_executions_request_id"),
        sa.CheckConstraint("state IN ('running','succeeded','failed','unknown')", name="ck_executions_state"),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        _ts("at"),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("action", sa.String(200), nullable=True),
        sa.Column("target", sa.String(200), nullable=True),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("incident_id", sa.String(200), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("policy_version", sa.String(200), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_log_incident_id", "audit_log", ["incident_id"])
    op.create_index("ix_audit_log_request_id", "audit_log", ["request_id"])
    op.create_table(
        "policy_versions",
        sa.Column("id", sa.String(200), primary_key=True),
        _ts("created_at"),
        sa.Column("parent", sa.String(200), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        _ts("promoted_at", nullable=True),
        sa.CheckConstraint(
            "status IN ('candidate','shadow','promoted','retired')", name="ck_policy_versions_status"
        ),
    )
    op.create_table(
        "postmortems",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "incident_id",
            sa.String(200),
            sa.ForeignKey("incidents.id", ondelete="CASCADE", name="fk_postmortems_incident_id_incidents"),
            nullable=False,
        ),
        _ts("created_at"),
        _ts("updated_at"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("reviewers", sa.JSON, nullable=False),
        sa.UniqueConstraint("incident_id", name="uq_postmortems_incident_id"),
        sa.CheckConstraint("status IN ('draft','in_review','approved')", name="ck_postmortems_status"),
    )
    op.create_table(
        "mining_state",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "mining_state",
        "postmortems",
        "policy_versions",
        "audit_log",
        "executions",
        "approvals",
        "approval_requests",
        "suggestions",
        "incident_events",
        "incidents",
        "services",
    ):
        op.drop_table(table)
