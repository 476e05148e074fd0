"""Housekeeping the bot runs by itself: recovery at start and scheduled expiry of approval requests.

* At start and then every ``recover_every_s``, a request left ``executing`` whose lease expired (its
  runner crashed or was cut off) becomes ``unknown`` (visible on its card, never re-run): we cannot know
  how far the action got, so a person must look. A run under a live lease (this or another replica)
  is left alone; a result that still arrives is recorded as late.
* Every ``expire_every_s`` an APScheduler job moves open requests past their time to live to
  ``expired`` and refreshes their incident cards, so a stale Approve button cannot run anything.
* Every ``audit_head_every_s``, when a target is configured, the audit log's head is checked and
  published outside the database (`bot.app.audit_head`).
* Every hour, Slack event ids and request fingerprints older than a day are forgotten.
* Every ``verify_every_s``, executed actions whose settle time passed are judged (`bot.app.verify`).
* Every few minutes, reviewers of postmortems waiting in review longer than ``postmortem_reminder_s`` are
  reminded in the incident's thread (`bot.app.postmortems.remind`).
* Every ``drift_check_every_s`` (first a minute after start), the policy's live inputs are compared with
  its training set's (`bot.observe.drift`), exported as ``remediate_feature_drift_psi``.
* Every minute, incidents' own channels (``incident_channels``) whose incident was resolved
  ``incident_channel_archive_after`` ago are archived through the outbox (`bot.notify.channels`).

With several replicas on one database (``serve`` passes a `Leadership`), each job runs on the leader
only, the one that holds the job leader's lock (`incidents_db.leader`, shared with the learning loop's
jobs), except the drift check: each replica exports its own gauge. Start-up recovery runs everywhere
(it only touches requests whose lease expired).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from bot import tracing
from bot.app import postmortems
from bot.app.audit_head import HeadPublisher, PublishResult
from bot.app.verify import verify_job
from bot.metrics import Metrics
from bot.notify.channels import archive_due
from bot.notify.delivery import announce
from bot.observe.drift import drift_job
from bot.services import Services
from incidents_db import incidents, outbox
from incidents_db.leader import Leadership
from remediation.approvals import service as approvals

log = logging.getLogger("remediate.jobs")
SEEN_KEPT = timedelta(days=1)
EVERY_REPLICA = frozenset({"check-feature-drift"})  # a gauge each replica exports on its own /metrics
ARCHIVE_EVERY_S = 60.0  # how often resolved incidents' channels are looked at for archiving


def _refresh_cards(services: Services, request_ids: list[str]) -> None:
    """Queue card refreshes for the incidents of the given requests."""
    if not request_ids:
        return
    with services.sessions() as session:
        incident_ids = incidents.incidents_of_requests(db_session=session, request_ids=request_ids)
        for incident_id in sorted(incident_ids):
            announce(db_session=session, incident_id=incident_id, now=services.clock())
        session.commit()


def recover_interrupted(services: Services) -> list[str]:
    """Mark executing requests whose lease expired as ``unknown`` and refresh their cards; return their ids."""
    with services.sessions() as session:
        ids = approvals.recover_interrupted(db_session=session, guard=services.guard)
    if ids:
        log.warning("marked %d interrupted execution(s) unknown: %s", len(ids), ", ".join(ids))
    _refresh_cards(services, ids)
    return ids


def expire_requests(services: Services) -> list[str]:
    """Expire open requests past their time to live and refresh their cards; return their ids."""
    with services.sessions() as session:
        ids = approvals.expire_due(db_session=session, guard=services.guard)
    _refresh_cards(services, ids)
    return ids


def _expire_job(services: Services) -> None:
    try:
        expire_requests(services)
    except Exception:  # a failed run is retried at the next tick; never kill the scheduler
        log.exception("expiring approval requests failed")


def _recover_job(services: Services) -> None:
    try:
        recover_interrupted(services)
    except Exception:  # retried at the next tick
        log.exception("recovering interrupted executions failed")


def _archive_job(services: Services) -> None:
    try:
        archive_due(services)
    except Exception:  # retried at the next tick
        log.exception("archiving incident channels failed")


def _schedule_archiving(scheduler: BackgroundScheduler, services: Services) -> None:
    scheduler.add_job(
        _archive_job,
        "interval",
        seconds=ARCHIVE_EVERY_S,
        args=[services],
        id="archive-incident-channels",
        max_instances=1,
        coalesce=True,
    )


def forget_old_deliveries(services: Services) -> int:
    """Forget Slack event ids and request fingerprints older than a day (they can no longer be replayed)."""
    with services.sessions() as s:
        gone = outbox.forget_seen(db_session=s, before=services.clock() - SEEN_KEPT)
        s.commit()
    return gone


def _forget_job(services: Services) -> None:
    try:
        forget_old_deliveries(services)
    except Exception:  # retried at the next tick
        log.exception("forgetting old Slack deliveries failed")


def publish_audit_head(publisher: HeadPublisher, metrics: Metrics | None = None) -> PublishResult | None:
    """Run one audit head publication (the scheduled job); None when it raised (logged, retried next tick)."""
    try:
        result = publisher.publish()  # logs and reports a failed check itself
    except Exception:  # never kill the scheduler
        log.exception("publishing the audit head failed")
        return None
    if metrics is not None:  # remediate_audit_verified: 0 while the chain fails its check
        metrics.audit_verified.labels(check="head").set(0.0 if result.problem else 1.0)
    return result


def leader_only(job_id: str, func: Callable[..., Any], leadership: Leadership) -> Callable[..., Any]:
    """Wrap a job so that a tick runs it only on the replica that leads (the others skip that tick)."""

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            leading = leadership.is_leader()
        except Exception:  # the database is unreachable: skip this tick, try again at the next
            log.exception("job %s: cannot tell whether this replica leads", job_id)
            return None
        if not leading:
            log.debug("job %s: another replica leads", job_id)
            return None
        return func(*args, **kwargs)

    return run


def start_jobs(
    services: Services,
    *,
    expire_every_s: float = 30.0,
    audit_head: HeadPublisher | None = None,
    recover_every_s: float | None = None,
    leadership: Leadership | None = None,
) -> BackgroundScheduler:
    """Recover interrupted executions, then start the scheduler (with ``leadership``: its jobs on the leader)."""
    recover_interrupted(services)
    scheduler = BackgroundScheduler(timezone="UTC")
    # a replica that died mid-run is noticed within about two lease lengths (lease, then this tick)
    scheduler.add_job(
        _recover_job,
        "interval",
        seconds=recover_every_s or services.settings.execution_lease_s,
        args=[services],
        id="recover-interrupted-executions",
        max_instances=1,
        coalesce=True,
    )
    if audit_head is not None and audit_head.enabled:
        scheduler.add_job(
            publish_audit_head,
            "interval",
            seconds=audit_head.every_s,
            args=[audit_head, services.metrics],
            id="publish-audit-head",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),  # publish once at start, then every audit_head_every_s
        )
    postmortems.schedule_reminders(scheduler, services)
    scheduler.add_job(
        _forget_job,
        "interval",
        hours=1,
        args=[services],
        id="forget-old-deliveries",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        drift_job,
        "interval",
        seconds=services.settings.drift_check_every_s,
        args=[services],
        id="check-feature-drift",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC) + timedelta(minutes=1),
    )
    scheduler.add_job(  # verdicts on executed actions once their settle time passed (docs/verification.md)
        verify_job,
        "interval",
        seconds=services.settings.verify_every_s,
        args=[services],
        id="verify-executed-actions",
        max_instances=1,
        coalesce=True,
    )
    _schedule_archiving(scheduler, services)
    scheduler.add_job(
        _expire_job,
        "interval",
        seconds=expire_every_s,
        args=[services],
        id="expire-approval-requests",
        max_instances=1,
        coalesce=True,
    )
    for job in scheduler.get_jobs():  # each run of a job is a span (docs/observability.md)
        func = job.func
        if leadership is not None and job.id not in EVERY_REPLICA:
            func = leader_only(job.id, func, leadership)
        job.modify(func=tracing.traced_job(job.id, func))
    scheduler.start()
    return scheduler
