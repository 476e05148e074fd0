"""Audit entries name the OpenTelemetry trace their decision was made in (docs/observability.md, Traces).

`trace_id` (32 hex digits) is null for entries written untraced and before this revision; when present
it is part of the entry's hash, so entries written before keep their hashes and the chain verifies.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("trace_id", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("trace_id")
