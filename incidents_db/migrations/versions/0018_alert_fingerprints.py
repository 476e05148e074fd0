"""The alerts of open incidents by fingerprint (alert_fingerprints), filled from the open incidents.

Revision ID: 0018
Revises: 0016
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from incidents_db.fingerprints import backfill

revision = "0018"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_fingerprints",
        sa.Column("fingerprint", sa.String(200), primary_key=True),
        sa.Column(
            "incident_id", sa.String(200), sa.ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('firing','resolved')", name="ck_alert_fingerprints_status"),
    )
    op.create_index("ix_alert_fingerprints_incident_id", "alert_fingerprints", ["incident_id"])
    # Incidents open while the bot upgrades keep their alerts: what intake scanned for before, now by key.
    backfill(connection=op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_alert_fingerprints_incident_id", table_name="alert_fingerprints")
    op.drop_table("alert_fingerprints")
