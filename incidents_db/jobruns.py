"""Runs of the learning loop's jobs and the learning freeze (migration 0010).

``job_runs`` keeps one row per run of a scheduled or hand-started job (mine, retrain, evaluate, promote,
report, watch): when, where, how it ended and what it found. ``learning_state`` is one row: whether
learning is frozen (promote and automatic retraining stop), by whom, when and why.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from incidents_db.models import Base

OUTCOMES = ("running", "succeeded", "failed", "skipped")


class JobRun(Base):
    """One run of a loop job."""

    __tablename__ = "job_runs"
    __table_args__ = (
        sa.CheckConstraint(
            "outcome IN ('running','succeeded','failed','skipped')", name="ck_job_runs_outcome"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(sa.String(32), index=True)
    started_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    outcome: Mapped[str] = mapped_column(sa.String(16), default="running")
    trigger: Mapped[str] = mapped_column(sa.String(16), default="schedule")
    replica: Mapped[str] = mapped_column(sa.String(100), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)


class LearningState(Base):
    """The single row saying whether learning is frozen (``id`` is always 1)."""

    __tablename__ = "learning_state"
    __table_args__ = (sa.CheckConstraint("id = 1", name="ck_learning_state_single_row"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    frozen: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    actor: Mapped[str] = mapped_column(sa.String(200), default="")
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    at: Mapped[datetime] = mapped_column()


def start_run(*, db_session: Session, job: str, trigger: str, replica: str, now: datetime) -> int:
    """Record that ``job`` started (flushed, not committed) and return the run's id."""
    row = JobRun(job=job, started_at=now, outcome="running", trigger=trigger, replica=replica, detail={})
    db_session.add(row)
    db_session.flush()
    return int(row.id)


def finish_run(
    *, db_session: Session, run_id: int, outcome: str, detail: dict[str, Any], now: datetime
) -> None:
    """Record how a run ended (not committed)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
    row = db_session.get(JobRun, run_id)
    if row is None:
        raise ValueError(f"no job run {run_id}")
    row.outcome, row.detail, row.finished_at = outcome, detail, now


def last_runs(*, db_session: Session) -> dict[str, JobRun]:
    """Return the newest run of every job that ever ran, by job name."""
    newest = sa.select(JobRun.job, sa.func.max(JobRun.id).label("id")).group_by(JobRun.job).subquery()
    rows = db_session.scalars(sa.select(JobRun).join(newest, JobRun.id == newest.c.id))
    return {row.job: row for row in rows}


def runs(
    *, db_session: Session, job: str | None = None, outcome: str | None = None, limit: int = 50
) -> list[JobRun]:
    """Return runs newest first, of one job and one outcome when given."""
    query = sa.select(JobRun).order_by(JobRun.id.desc()).limit(limit)
    if job is not None:
        query = query.where(JobRun.job == job)
    if outcome is not None:
        query = query.where(JobRun.outcome == outcome)
    return list(db_session.scalars(query))


def learning_state(*, db_session: Session) -> LearningState | None:
    """Return the learning freeze row (None: never frozen)."""
    return db_session.get(LearningState, 1)


def set_frozen(*, db_session: Session, frozen: bool, actor: str, reason: str, now: datetime) -> LearningState:
    """Freeze or unfreeze learning (flushed, not committed)."""
    row = db_session.get(LearningState, 1)
    if row is None:
        row = LearningState(id=1, frozen=frozen, actor=actor, reason=reason, at=now)
        db_session.add(row)
    else:
        row.frozen, row.actor, row.reason, row.at = frozen, actor, reason, now
    db_session.flush()
    return row
