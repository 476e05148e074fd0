"""Indexed lookups of a new incident: its number (next id) and open incidents by last update.

`incidents.number` is n of an id ``INC-<n>``, computed by the database from the id, so every row has it
from the moment it is written (and every existing row at once: a virtual column on SQLite, a stored one
on PostgreSQL, filled by the ALTER TABLE); `ix_incidents_number` makes the next id one index step.
`ix_incidents_status_updated_at` lets intake find the open incident of a service updated within the
grouping window by walking only the open incidents of that window, latest first.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

# as `incidents_db.models.INCIDENT_NUMBER_SQL` was at this revision: n of ``INC-<n>`` (1-18 digits)
NUMBER_SQL = (
    "CASE WHEN substr(id, 1, 4) = 'INC-' AND length(id) BETWEEN 5 AND 22"
    " AND ltrim(substr(id, 5), '0123456789') = '' THEN CAST(substr(id, 5) AS BIGINT) END"
)


def upgrade() -> None:
    # SQLite cannot add a stored generated column to a table; a virtual one can be added and indexed.
    stored = op.get_bind().dialect.name != "sqlite"
    op.add_column(
        "incidents",
        sa.Column("number", sa.BigInteger, sa.Computed(NUMBER_SQL, persisted=stored), nullable=True),
    )
    op.create_index("ix_incidents_number", "incidents", ["number"])
    op.create_index("ix_incidents_status_updated_at", "incidents", ["status", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_incidents_status_updated_at", table_name="incidents")
    op.drop_index("ix_incidents_number", table_name="incidents")
    op.execute("ALTER TABLE incidents DROP COLUMN number")  # SQLite >= 3.35 and PostgreSQL alike
