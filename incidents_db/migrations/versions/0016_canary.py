"""Canary remediation: a request run on a share of replicas first, and what its verdict led to.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import incidents_db.canaries  # noqa: F401  (registers the model on the shared metadata)

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "canaries",
        sa.Column(
            "request_id",
            sa.String(64),
            sa.ForeignKey("approval_requests.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("incident_id", sa.String(200), nullable=True),
        sa.Column("action", sa.String(200), nullable=False),
        sa.Column("target", sa.String(200), nullable=True),
        sa.Column("share", sa.Float, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("second_approval", sa.Boolean, nullable=False),
        sa.Column("armed_by", sa.String(64), nullable=False),
        sa.Column("armed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rest_request_id", sa.String(64), nullable=True),
        sa.Column("undo_request_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_canaries_incident_id", "canaries", ["incident_id"])
    op.create_index("ix_canaries_rest_request_id", "canaries", ["rest_request_id"])
    op.create_index("ix_canaries_undo_request_id", "canaries", ["undo_request_id"])


def downgrade() -> None:
    for column in ("undo_request_id", "rest_request_id", "incident_id"):
        op.drop_index(f"ix_canaries_{column}", table_name="canaries")
    op.drop_table("canaries")
