"""Deploys and config changes pushed to `POST /events/deploy`, kept for incidents that open later.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import incidents_db.changes  # noqa: F401  (registers the model on the shared metadata)

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "change_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("keep_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("topology", sa.String(200), nullable=True),
        sa.Column("source", sa.String(50), nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.UniqueConstraint("key", name="uq_change_events_key"),
    )
    op.create_index("ix_change_events_service", "change_events", ["service"])
    op.create_index("ix_change_events_keep_until", "change_events", ["keep_until"])


def downgrade() -> None:
    op.drop_index("ix_change_events_keep_until", table_name="change_events")
    op.drop_index("ix_change_events_service", table_name="change_events")
    op.drop_table("change_events")
