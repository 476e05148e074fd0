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
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from bot import tracing
from bot.app import postmortems
from bot.app.audit_head import HeadPublisher, PublishResult
from bot.app.verify import verify_job
from bot.metrics import Metrics
from bot.notify.delivery import announce
from bot.observe.drift import drift_job
from bot.services import Services
from incidents_db import incidents, outbox
from remediation.approvals import service as approvals

log = logging.getLogger("remediate.jobs")
SEEN_KEPT = timedelta(days=1)


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


def start_jobs(
    services: Services,
    *,
    expire_every_s: float = 30.0,
    audit_head: HeadPublisher | None = None,
    recover_every_s: float | None = None,
) -> BackgroundScheduler:
    """Recover interrupted executions, then start the scheduler (request expiry; audit head publication)."""
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
        job.modify(func=tracing.traced_job(job.id, job.func))
    scheduler.start()
    return scheduler
