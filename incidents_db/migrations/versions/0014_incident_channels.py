"""Incident channels: each incident's own Slack channel and its state (incident_channels).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import incidents_db.channels  # noqa: F401  (registers the model on the shared metadata)

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incident_channels",
        sa.Column(
            "incident_id",
            sa.String(200),
            sa.ForeignKey("incidents.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("invited", sa.JSON, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('creating','open','failed','archiving','archived')", name="ck_incident_channels_state"
        ),
    )
    op.create_index("ix_incident_channels_channel_id", "incident_channels", ["channel_id"])


def downgrade() -> None:
    op.drop_index("ix_incident_channels_channel_id", table_name="incident_channels")
    op.drop_table("incident_channels")
