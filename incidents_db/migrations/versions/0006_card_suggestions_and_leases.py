"""Rendered suggestions that card buttons point at, and execution leases.

A card button carries only the token of a suggestion the bot rendered (`suggestions.token`); the row
says what the button does (incident, action, target, params) and which one request it acts on
(`request_id`, set once by the first click). An execution holds a lease (`lease_owner`,
`lease_expires_at`) renewed by a heartbeat while the executor runs, so another replica recovers only
executions whose lease ran out.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("suggestions") as batch:
        batch.add_column(sa.Column("token", sa.String(32), nullable=True))
        batch.add_column(sa.Column("fix_key", sa.String(64), nullable=True))
        batch.add_column(sa.Column("generation", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("request_id", sa.String(64), nullable=True))
    op.create_index("ux_suggestions_token", "suggestions", ["token"], unique=True)
    op.create_index("ux_suggestions_fix", "suggestions", ["fix_key", "generation"], unique=True)
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(100), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_owner")
    op.drop_index("ux_suggestions_fix", table_name="suggestions")
    op.drop_index("ux_suggestions_token", table_name="suggestions")
    with op.batch_alter_table("suggestions") as batch:
        batch.drop_column("request_id")
        batch.drop_column("generation")
        batch.drop_column("fix_key")
        batch.drop_column("token")
