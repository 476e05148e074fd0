"""Postmortem review: status 'published', edited fields, sign-offs, kept versions and comments.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import incidents_db.postmortems  # noqa: F401  (registers the models on the shared metadata)

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

OLD = "status IN ('draft','in_review','approved')"
NEW = "status IN ('draft','in_review','approved','published')"


def upgrade() -> None:
    with op.batch_alter_table("postmortems", recreate="always") as batch:
        batch.drop_constraint("ck_postmortems_status", type_="check")
        batch.create_check_constraint("ck_postmortems_status", NEW)
        batch.add_column(sa.Column("version", sa.Integer, nullable=False, server_default="1"))
        batch.add_column(sa.Column("fields", sa.JSON, nullable=True))
        batch.add_column(sa.Column("signoffs", sa.JSON, nullable=True))
        batch.add_column(sa.Column("review_started_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("published_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "postmortem_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "incident_id",
            sa.String(200),
            sa.ForeignKey(
                "incidents.id", ondelete="CASCADE", name="fk_postmortem_versions_incident_id_incidents"
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.String(64), nullable=False),
        sa.Column("report", sa.JSON, nullable=False),
        sa.UniqueConstraint("incident_id", "version", name="uq_postmortem_versions_incident_id"),
    )
    op.create_table(
        "postmortem_comments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "incident_id",
            sa.String(200),
            sa.ForeignKey(
                "incidents.id", ondelete="CASCADE", name="fk_postmortem_comments_incident_id_incidents"
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_index("ix_postmortem_comments_incident_id", "postmortem_comments", ["incident_id"])


def downgrade() -> None:
    op.drop_index("ix_postmortem_comments_incident_id", table_name="postmortem_comments")
    op.drop_table("postmortem_comments")
    op.drop_table("postmortem_versions")
    op.execute("UPDATE postmortems SET status = 'approved' WHERE status = 'published'")
    with op.batch_alter_table("postmortems", recreate="always") as batch:
        for name in ("published_at", "reminded_at", "review_started_at", "signoffs", "fields", "version"):
            batch.drop_column(name)
        batch.drop_constraint("ck_postmortems_status", type_="check")
        batch.create_check_constraint("ck_postmortems_status", OLD)
