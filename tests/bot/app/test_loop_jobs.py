"""The learning loop's scheduling: one leader per database runs each job, however many replicas schedule it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler

from bot.app.loop_jobs import schedule_loop, scheduled_run
from bot.services import Services, build_services
from bot.settings import load_settings
from incidents_db import jobruns
from incidents_db.db import make_sessionmaker, open_store, session_scope
from incidents_db.leader import Leadership

DEADLINE_S = 120.0


def wait_for(check: Callable[[], bool], seconds: float = DEADLINE_S) -> None:
    end = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.05)


def replica(url: str, tmp_path: Path, name: str) -> tuple[Services, sa.Engine]:
    """One replica: its own engine and services on the shared store."""
    engine = open_store(url)
    settings = load_settings(database_url=url, data_dir=tmp_path, topology="online-boutique")
    services = build_services(settings, engine=engine)
    services.replica = name
    return services, engine


def runs_by_replica(engine: sa.Engine) -> dict[str, int]:
    with session_scope(make_sessionmaker(engine)) as session:
        found: dict[str, int] = {}
        for run in jobruns.runs(db_session=session, job="report", limit=1000):
            found[run.replica] = found.get(run.replica, 0) + 1
        return found


@pytest.mark.postgres
def test_two_schedulers_on_one_postgresql_database_elect_one_leader(
    postgres_url: str, tmp_path: Path
) -> None:
    (a, engine_a), (b, engine_b) = replica(postgres_url, tmp_path, "a"), replica(postgres_url, tmp_path, "b")
    leads = {"a": Leadership(engine_a), "b": Leadership(engine_b)}
    schedulers = []
    for services in (a, b):
        scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.add_job(scheduled_run, "interval", seconds=0.1, args=[services, "report", leads[services.replica]],
                          max_instances=1, coalesce=True)  # fmt: skip
        scheduler.start()
        schedulers.append(scheduler)
    try:
        wait_for(lambda: sum(runs_by_replica(engine_a).values()) >= 8)
    finally:
        for scheduler in schedulers:
            scheduler.shutdown(wait=True)
    ran = runs_by_replica(engine_a)
    assert len(ran) == 1, ran  # exactly one replica ran the job, every time
    leader, follower = (a, b) if "a" in ran else (b, a)
    assert scheduled_run(follower, "report", leads[follower.replica]) is None
    # the leader goes away: the other takes over at its next tick
    leads[leader.replica].release()
    taken = scheduled_run(follower, "report", leads[follower.replica])
    assert taken is not None and taken.outcome == "succeeded"
    assert scheduled_run(leader, "report", leads[leader.replica]) is None
    leads[follower.replica].release()
    engine_a.dispose()
    engine_b.dispose()


def test_on_sqlite_one_process_leads_through_a_file_lock(sqlite_url: str) -> None:
    first, second = open_store(sqlite_url), open_store(sqlite_url)
    one, two = Leadership(first), Leadership(second)
    assert one.is_leader() and one.is_leader()
    assert not two.is_leader()
    one.release()
    assert two.is_leader()
    two.release()
    first.dispose()
    second.dispose()


def test_schedules_come_from_the_settings(sqlite_url: str, tmp_path: Path) -> None:
    engine = open_store(sqlite_url)
    settings = load_settings(
        database_url=sqlite_url, data_dir=tmp_path, jobs_schedule={"retrain": "", "mine": "15 * * * *"}
    )
    services = build_services(settings, engine=engine)
    scheduler = BackgroundScheduler(timezone="UTC")
    lead = schedule_loop(scheduler, services)
    jobs = {job.id: str(job.trigger) for job in scheduler.get_jobs()}
    assert "loop-retrain" not in jobs  # empty: off
    assert set(jobs) == {"loop-mine", "loop-evaluate", "loop-promote", "loop-report", "loop-watch"}
    assert "minute='15'" in jobs["loop-mine"]
    lead.release()
    engine.dispose()


def test_a_scheduled_run_never_raises(sqlite_url: str, tmp_path: Path) -> None:
    engine = open_store(sqlite_url)
    services = build_services(load_settings(database_url=sqlite_url, data_dir=tmp_path), engine=engine)
    lead = Leadership(engine)
    assert scheduled_run(services, "no-such-job", lead) is None  # logged, the scheduler goes on
    record = scheduled_run(services, "mine", lead)
    assert record is not None and record.outcome == "succeeded"
    lead.release()
    engine.dispose()
