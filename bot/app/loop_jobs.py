"""The learning loop on a schedule: mine, retrain, evaluate, promote, report and watch, in `serve`.

Each job's schedule is a crontab line in ``jobs_schedule`` (empty: off). With several replicas on one
database, only the leader runs them (`incidents_db.leader`: a PostgreSQL advisory lock held on a
connection of its own; on SQLite a file lock): every replica schedules every job, and at each tick a
replica that does not lead skips it. Within a process the loop's jobs run one at a time. The work
itself is `remediation.loop` (the same functions `remediate jobs run NAME` calls).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.services import Services
from bot.settings import Settings
from incidents_db.leader import Leadership
from remediation.loop.config import JOB_NAMES, LoopConfig, RollbackRule
from remediation.loop.runner import RunRecord, run_job

log = logging.getLogger("remediate.loop")
ONE_AT_A_TIME = threading.Lock()


def loop_config(settings: Settings) -> LoopConfig:
    """Return the loop's knobs from the settings."""
    return LoopConfig(
        data_dir=settings.data_dir,
        database_url=settings.effective_database_url,
        topology=settings.topology,
        rbac_config=settings.rbac_config,
        retrain_minutes=settings.jobs_retrain_minutes,
        promote=settings.jobs_promote,
        automated_margin=settings.gate_automated_margin,
        channel=settings.incident_channel,
        rule=RollbackRule(
            window_s=settings.rollback_window_s,
            min_samples=settings.rollback_min_samples,
            success_drop=settings.rollback_success_drop,
            denial_rise=settings.rollback_denial_rise,
        ),
    )


def engine_of(services: Services) -> Any:
    """Return the engine behind the services' session factory (the store's ``sqlalchemy.Engine``)."""
    return services.sessions.kw["bind"]


def scheduled_run(services: Services, name: str, leadership: Leadership) -> RunRecord | None:
    """Run one tick of job ``name``: only on the leader, one loop job at a time; None when not leading."""
    try:
        if not leadership.is_leader():
            log.debug("job %s: another replica leads", name)
            return None
        with ONE_AT_A_TIME:
            return run_job(engine=engine_of(services), name=name, config=loop_config(services.settings),
                           replica=services.replica, trigger="schedule", clock=services.clock)  # fmt: skip
    except Exception:  # never kill the scheduler; the next tick tries again
        log.exception("scheduled job %s could not run", name)
        return None


def schedule_loop(
    scheduler: BaseScheduler, services: Services, leadership: Leadership | None = None
) -> Leadership:
    """Add every scheduled loop job to ``scheduler``; return the leadership they share."""
    leadership = leadership or Leadership(engine_of(services))
    for name in JOB_NAMES:
        line = services.settings.jobs_schedule.get(name, "")
        if not line:
            continue
        scheduler.add_job(
            scheduled_run,
            CronTrigger.from_crontab(line, timezone="UTC"),
            args=[services, name, leadership],
            id=f"loop-{name}",
            max_instances=1,
            coalesce=True,
        )
    return leadership
