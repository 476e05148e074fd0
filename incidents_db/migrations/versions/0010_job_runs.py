"""The learning loop: job_runs (one row per job run) and learning_state (the learning freeze).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import incidents_db.jobruns  # noqa: F401  (registers the models on the shared metadata)

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("replica", sa.String(100), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.CheckConstraint(
            "outcome IN ('running','succeeded','failed','skipped')", name="ck_job_runs_outcome"
        ),
    )
    op.create_index("ix_job_runs_job", "job_runs", ["job"])
    op.create_table(
        "learning_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("frozen", sa.Boolean, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_learning_state_single_row"),
    )


def downgrade() -> None:
    op.drop_table("learning_state")
    op.drop_index("ix_job_runs_job", table_name="job_runs")
    op.drop_table("job_runs")
