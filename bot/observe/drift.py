"""The scheduled drift check (F2): compare the policy's live inputs with its training set's, export PSI."""

from __future__ import annotations

import logging
from datetime import timedelta

from bot.services import Services
from remediation.monitoring import live
from remediation.monitoring.drift import GROUPS, DriftReport, check

log = logging.getLogger("remediate.drift")
THRESHOLD = 0.25  # a PSI above this is a significant shift (the alert rule uses the same number)


def check_drift(services: Services) -> DriftReport:
    """Run one drift check and set the drift series on the services' metrics."""
    now = services.clock()
    version = services.policy.version
    with services.sessions() as s:
        trained = live.policy_created(db_session=s, version=version)
        report = check(
            db_session=s,
            topology=services.topology,
            policy=version,
            trained_at=trained,
            now=now,
            window=timedelta(seconds=services.settings.drift_window_s),
            signal_of=services.vocabulary.signal_of,
        )
    metrics = services.metrics
    metrics.drift_observations.labels(set="reference").set(report.reference)
    metrics.drift_observations.labels(set="live").set(report.live)
    metrics.drift.clear()  # too few observations: no value rather than an old one
    for group in GROUPS:
        if group in report.groups:
            metrics.drift.labels(group=group).set(report.groups[group])
    metrics.drift_checked.set(now.timestamp())
    high = {g: round(v, 3) for g, v in report.groups.items() if v > THRESHOLD}
    if high:
        log.warning("policy %s inputs drifted from its training set (PSI > %s): %s", version, THRESHOLD, high)
    return report


def drift_job(services: Services) -> None:
    """The scheduled job: one check; a failure is logged and retried at the next tick."""
    try:
        check_drift(services)
    except Exception:  # never kill the scheduler
        log.exception("the drift check failed")
