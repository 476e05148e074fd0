"""The durable Slack outbox, where incident cards live, and Events API event ids already handled.

Revision ID: 0003
Revises: 0002
Create Date: 2026-03-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# The models live in their own module; importing it registers them on the shared metadata, so schema
# comparisons (tests, autogenerate) see these tables wherever the migrations are loaded.
import incidents_db.outbox  # noqa: F401

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slack_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("incident_id", sa.String(200), nullable=True),
        sa.Column("coalesce_key", sa.String(200), nullable=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('pending','sent','dead')", name="ck_slack_outbox_state"),
    )
    op.create_index("ix_slack_outbox_due", "slack_outbox", ["state", "next_attempt_at"])
    op.create_index("ix_slack_outbox_incident_id", "slack_outbox", ["incident_id"])
    op.create_table(
        "slack_cards",
        sa.Column("incident_id", sa.String(200), primary_key=True),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("ts", sa.String(32), nullable=False),
        sa.Column("thread_seq", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "slack_events_seen",
        sa.Column("event_id", sa.String(100), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("slack_events_seen")
    op.drop_table("slack_cards")
    op.drop_index("ix_slack_outbox_incident_id", table_name="slack_outbox")
    op.drop_index("ix_slack_outbox_due", table_name="slack_outbox")
    op.drop_table("slack_outbox")
