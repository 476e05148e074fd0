"""Index the outbox by coalesce key, so pacing can find a key's last delivery without a table scan.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_slack_outbox_coalesce", "slack_outbox", ["coalesce_key", "id"])


def downgrade() -> None:
    op.drop_index("ix_slack_outbox_coalesce", table_name="slack_outbox")
