"""Outbox rows remember an uncertain attempt and a refusal, so nothing is posted twice or dropped.

`uncertain` is set when an attempt may have reached Slack without its answer reaching us (a timeout,
a reset connection, a 5xx after sending): before posting again the worker looks the message up by the
metadata it carried. `refused` is set when Slack refused the call itself (not an outage); a dead row
that Slack refused waits for its own schedule, while the others are revived as soon as Slack answers
again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("slack_outbox") as batch:
        batch.add_column(sa.Column("uncertain", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("refused", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("slack_outbox") as batch:
        batch.drop_column("refused")
        batch.drop_column("uncertain")
