"""What the loop's jobs read: a frozen copy of the settings they need, built by the bot at start."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

JOB_NAMES = ("mine", "retrain", "evaluate", "promote", "report", "watch")
"""Every job, in the order `remediate jobs list` shows them."""
SCHEDULE = {"mine": "*/30 * * * *", "retrain": "0 3 * * *", "evaluate": "0 5 * * *", "promote": "0 6 * * *",
            "report": "0 8 * * 1", "watch": "*/5 * * * *"}  # fmt: skip
"""Default crontab lines (UTC) of the jobs (the ``jobs_schedule`` setting)."""


def check_schedule(value: dict[str, str]) -> dict[str, str]:
    """Return the full schedule with ``value``'s lines over the defaults; raise ValueError naming a bad one."""
    from apscheduler.triggers.cron import CronTrigger

    for job, line in value.items():
        if job not in SCHEDULE:
            raise ValueError(f"unknown job {job!r}; expected some of {', '.join(SCHEDULE)}")
        try:
            _ = CronTrigger.from_crontab(line) if line.strip() else None
        except ValueError as exc:
            raise ValueError(f"{job}: {line!r} is not a crontab line ({exc}); empty turns it off") from None
    return {**SCHEDULE, **{k: v.strip() for k, v in value.items()}}


@dataclass(frozen=True)
class RollbackRule:
    """When the live figures of the promoted version count as a regression against the previous one."""

    window_s: float = 86400.0
    """How far back the rule reads shown top-1 suggestions, their requests and denials."""
    min_samples: int = 10
    """Finished top-1 requests (or shown top-1 suggestions, for denials) each version needs before comparing."""
    success_drop: float = 0.15
    """Breach: the promoted version's success rate is this much (absolute) below the previous one's."""
    denial_rise: float = 0.10
    """Breach: the promoted version's top-1 denial rate is this much (absolute) above the previous one's."""


@dataclass(frozen=True)
class LoopConfig:
    """The knobs of the loop's jobs (from the settings)."""

    data_dir: Path
    """Where datasets (``trajectories/``), artifacts (``policies/``), runs and reports go."""
    database_url: str
    """The store (retraining mines it)."""
    topology: str | None = None
    """The team's service graph (built-in name or node-link file); None: ``online-boutique``."""
    rbac_config: Path | None = None
    """The guardrails every policy ranks under in evaluation."""
    retrain_minutes: float = 15.0
    """Wall-clock budget of one retraining run."""
    retrain_iterations: int = 400
    """Most training iterations of one retraining run (the minutes usually bind first)."""
    evaluate_episodes: int = 40
    """Simulated incidents per graph in evaluation and in the promotion gate."""
    variations: int = 2
    """Generated variations of the team's graph evaluation also runs on."""
    promote: bool = False
    """Whether the promote job may promote (off: it only says what it would do)."""
    automated_margin: float = 0.05
    """The promotion gate's automated-success margin."""
    channel: str = "incidents"
    """The incident channel a rollback or a freeze is announced in (through the outbox)."""
    rule: RollbackRule = field(default_factory=RollbackRule)
    """The automatic rollback rule."""
    quick: bool = False
    """Smoke-test retraining (``train --quick``'s sizes): for tests and demos, never for use."""
    seed: int = 0
    """Seed of retraining and evaluation (the same store and seed give the same result)."""


@dataclass(frozen=True)
class JobContext:
    """What one run of a job gets: the store, the knobs and the time it started."""

    engine: sa.Engine
    config: LoopConfig
    now: datetime
    run_id: int = 0


@dataclass(frozen=True)
class JobResult:
    """How a job ended when it did not raise: ``succeeded`` or ``skipped``, with what it found."""

    outcome: str
    detail: dict[str, object]
