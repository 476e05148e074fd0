"""Shadow and canary rankings (policy_rankings) and the canary's share (policy_canary).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import incidents_db.rankings  # noqa: F401  (registers the models on the shared metadata)

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_rankings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "incident_id", sa.String(200), sa.ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("arm", sa.String(16), nullable=False),
        sa.Column("shown", sa.Boolean, nullable=False),
        sa.Column("policy_version", sa.String(200), nullable=False),
        sa.Column("ranked", sa.JSON, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("incident_id", "role", "policy_version", "step", name="uq_policy_rankings_state"),
        sa.CheckConstraint("role IN ('production','shadow','canary')", name="ck_policy_rankings_role"),
    )
    op.create_index("ix_policy_rankings_incident_id", "policy_rankings", ["incident_id"])
    op.create_index("ix_policy_rankings_policy_version", "policy_rankings", ["policy_version"])
    op.create_table(
        "policy_canary",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column(
            "version", sa.String(200), sa.ForeignKey("policy_versions.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("share", sa.Float, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("policy_canary")
    op.drop_index("ix_policy_rankings_policy_version", table_name="policy_rankings")
    op.drop_index("ix_policy_rankings_incident_id", table_name="policy_rankings")
    op.drop_table("policy_rankings")
