"""Guardrail switches (freeze / kill switch flipped at run time) and the audit log's head row.

`audit_head` holds one row: the seq and hash of the newest audit entry. Every append locks it first
(an UPDATE, which takes the row lock on PostgreSQL and the write lock on SQLite), so two writers never
fork the chain, and `verify` compares it with the last entry to catch a deleted tail.

Revision ID: 0002
Revises: 0001
Create Date: 2026-03-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table(
        "guardrail_switches",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("scope", sa.String(200), primary_key=True),
        sa.Column("engaged", sa.Boolean, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('freeze','kill')", name="ck_guardrail_switches_kind"),
    )
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("touched", sa.Integer, nullable=False),
        sa.CheckConstraint("id = 1", name="ck_audit_head_single_row"),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS, "touched": 0}])


def downgrade() -> None:
    op.drop_table("audit_head")
    op.drop_table("guardrail_switches")
