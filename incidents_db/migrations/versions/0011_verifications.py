"""Verification of executed actions: when each is judged, its claim, its verdict and evidence.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import incidents_db.verifications  # noqa: F401  (registers the model on the shared metadata)

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "verifications",
        sa.Column(
            "request_id",
            sa.String(64),
            sa.ForeignKey("approval_requests.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("incident_id", sa.String(200), nullable=True),
        sa.Column("action", sa.String(200), nullable=False),
        sa.Column("target", sa.String(200), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("auto_undo", sa.Boolean, nullable=False),
        sa.Column("executed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verify_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rechecks", sa.Integer, nullable=False),
        sa.Column("before", sa.JSON, nullable=False),
        sa.Column("verdict", sa.String(16), nullable=True),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("undo_request_id", sa.String(64), nullable=True),
        sa.Column("lease_owner", sa.String(100), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_verifications_incident_id", "verifications", ["incident_id"])
    op.create_index("ix_verifications_verify_at", "verifications", ["verify_at"])


def downgrade() -> None:
    op.drop_index("ix_verifications_verify_at", table_name="verifications")
    op.drop_index("ix_verifications_incident_id", table_name="verifications")
    op.drop_table("verifications")
