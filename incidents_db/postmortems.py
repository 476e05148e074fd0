"""Kept postmortem versions and review comments (migration 0009); the postmortem row is `models.Postmortem`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from incidents_db.models import Base


class PostmortemVersion(Base):
    """A published version of a postmortem, frozen as its JSON report (never changed afterwards)."""

    __tablename__ = "postmortem_versions"
    __table_args__ = (
        sa.UniqueConstraint("incident_id", "version", name="uq_postmortem_versions_incident_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(sa.ForeignKey("incidents.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(sa.Integer)
    published_at: Mapped[datetime] = mapped_column()
    published_by: Mapped[str] = mapped_column(sa.String(64))
    report: Mapped[dict[str, Any]] = mapped_column(sa.JSON)


class PostmortemComment(Base):
    """A reviewer's comment on a postmortem version (also posted in the incident's thread)."""

    __tablename__ = "postmortem_comments"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(sa.ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(sa.Integer)
    author: Mapped[str] = mapped_column(sa.String(64))
    at: Mapped[datetime] = mapped_column()
    text: Mapped[str] = mapped_column(sa.Text)
