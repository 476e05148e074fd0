"""Shadow and canary rankings beside production's, and the canary's share (migration 0013).

``policy_rankings`` keeps, per incident state (``step``: actions on its timeline before the ranking),
each policy's ranking: production's (shown unless the incident is in the canary's arm), the canary's
(shown on its share) and the shadow's (never shown). What people then approved and what worked is on
the incident's timeline (the action events after that step); `remediate policy report` joins them.
``policy_canary`` is one row: the version a share of incidents sees, and that share.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from incidents_db.models import Base

ROLES = ("production", "shadow", "canary")


class PolicyRanking(Base):
    """One policy's ranking of one incident state."""

    __tablename__ = "policy_rankings"
    __table_args__ = (
        sa.UniqueConstraint("incident_id", "role", "policy_version", "step", name="uq_policy_rankings_state"),
        sa.CheckConstraint("role IN ('production','shadow','canary')", name="ck_policy_rankings_role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(sa.ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(sa.Integer)
    role: Mapped[str] = mapped_column(sa.String(16))
    arm: Mapped[str] = mapped_column(
        sa.String(16)
    )  # the arm whose ranking the card showed: production | canary
    shown: Mapped[bool] = mapped_column(sa.Boolean)
    policy_version: Mapped[str] = mapped_column(sa.String(200), index=True)
    ranked: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    at: Mapped[datetime] = mapped_column()


class PolicyCanary(Base):
    """The canary: which version a deterministic share of incidents sees (at most one row, id 1)."""

    __tablename__ = "policy_canary"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    version: Mapped[str] = mapped_column(sa.ForeignKey("policy_versions.id", ondelete="CASCADE"))
    share: Mapped[float] = mapped_column(sa.Float)
    started_at: Mapped[datetime] = mapped_column()
