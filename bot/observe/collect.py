"""Series read from the store at scrape time (docs/observability.md), so every replica reports the same.

`StoreCollector` is registered once on the app's own registry (`install`); each scrape runs a handful
of grouped queries (`remediation.monitoring.live`). When the store cannot be read the scrape still
answers, with ``remediate_store_up 0`` and the event counters.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.services import Services
from incidents_db import outbox
from remediation.monitoring import live

log = logging.getLogger("remediate.metrics")
TTM_BUCKETS = (60.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0)


def _gauge(name: str, doc: str, value: float | None, **labels: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    if value is not None:
        family.add_metric(list(labels.values()), value)
    return family


def _histogram(name: str, doc: str, values: list[float]) -> HistogramMetricFamily:
    buckets, below = [], 0
    ordered = sorted(values)
    for bound in TTM_BUCKETS:
        while below < len(ordered) and ordered[below] <= bound:
            below += 1
        buckets.append((str(bound), float(below)))
    buckets.append(("+Inf", float(len(ordered))))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=float(sum(ordered)))


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


class StoreCollector(Collector):
    """Yields the store-derived series of one app's services at each scrape."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        """Read the store and yield every family; ``remediate_store_up 0`` when it cannot be read."""
        try:
            families = self._read()
        except Exception as exc:  # a scrape must answer even when the store is down
            log.warning("metrics: store unreadable: %s: %s", type(exc).__name__, exc)
            families = []
        yield _gauge("remediate_store_up", "1 when the store answered this scrape.", 1.0 if families else 0.0)
        yield from families
        yield from self._policy()

    def _policy(self) -> Iterator[Metric]:
        policy = self.services.policy
        info = GaugeMetricFamily(
            "remediate_policy_info", "The ranking policy serving (always 1).", labels=["version", "name"]
        )
        info.add_metric([policy.version, policy.name], 1.0)
        yield info

    def _read(self) -> list[Metric]:
        services = self.services
        now = services.clock()
        with services.sessions() as s:
            counts = outbox.counts(db_session=s)
            oldest = outbox.oldest_pending(db_session=s)
            out: list[Metric] = [
                _gauge("remediate_incidents_open", "Incidents open.", live.open_incidents(db_session=s)),
                _gauge("remediate_outbox_pending", "Outbox messages waiting to be sent.", counts["pending"]),
                _gauge("remediate_outbox_dead", "Outbox messages given up (retried later).", counts["dead"]),
                _gauge(
                    "remediate_outbox_oldest_pending_age_seconds",
                    "Age of the oldest message not yet sent (pending or dead).",
                    max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0,
                ),
                _histogram(
                    "remediate_time_to_mitigate_seconds",
                    "Seconds from open to resolved, per resolved incident the bot handled (M10).",
                    live.mitigation_times(db_session=s),
                ),
            ]
            out += self._decisions(s)
            out += self._telemetry(s, now)
            trained = live.policy_created(db_session=s, version=services.policy.version)
        age = max(0.0, (now - trained).total_seconds()) if trained is not None else None
        doc = "Seconds since the serving policy version was trained (none for the runbook baseline)."
        return [*out, _gauge("remediate_policy_age_seconds", doc, age)]

    def _decisions(self, s: Any) -> list[Metric]:
        seen = live.acceptance(db_session=s)
        accepted = GaugeMetricFamily(
            "remediate_suggestion_acceptance_ratio",
            "Share of incidents with suggestions where people approved one of the top n (M1).",
            labels=["top"],
        )
        for n, count in seen.accepted.items():
            if seen.shown:
                accepted.add_metric([str(n)], count / seen.shown)
        success = GaugeMetricFamily(
            "remediate_policy_success_ratio",
            "Share of finished runs of approved suggestions that succeeded, by ranking policy (M1).",
            labels=["policy"],
        )
        runs = GaugeMetricFamily(
            "remediate_policy_runs_finished",
            "Finished runs of approved suggestions, by ranking policy.",
            labels=["policy"],
        )
        for row in live.outcomes(db_session=s, default_policy=self.services.policy.version):
            runs.add_metric([row.policy], row.finished)
            if row.finished:
                success.add_metric([row.policy], row.succeeded / row.finished)
        denied = CounterMetricFamily(
            "remediate_audit_denials",
            "Steps the guardrails refused, from the audit log, by event (M5).",
            labels=["event"],
        )
        for event, n in sorted(live.denials(db_session=s).items()):
            denied.add_metric([event], n)
        return [
            _gauge("remediate_incidents_suggested", "Incidents whose card showed suggestions.", seen.shown),
            accepted,
            _gauge(
                "remediate_override_ratio",
                "Share of incidents with suggestions where people approved an action no card suggested.",
                _ratio(seen.overridden, seen.shown),
            ),
            success,
            runs,
            denied,
        ]

    def _telemetry(self, s: Any, now: Any) -> list[Metric]:
        seen = live.telemetry(db_session=s, now=now, max_age_s=self.services.settings.snapshot_max_age_s)
        lost = GaugeMetricFamily(
            "remediate_telemetry_lost",
            "1 per service whose telemetry is lost (reason: stale snapshots) (F7).",
            labels=["service", "reason"],
        )
        for service, reason in sorted(seen.lost.items()):
            lost.add_metric([service, reason], 1.0)
        return [
            _gauge(
                "remediate_snapshot_age_seconds",
                "Seconds since the newest metric snapshot was received (the feed's freshness).",
                seen.newest_age_s,
            ),
            _gauge(
                "remediate_telemetry_lost_services", "Services whose telemetry is lost (F7).", len(seen.lost)
            ),
            lost,
            _gauge(
                "remediate_telemetry_completeness_ratio",
                "Share of the policy's metrics present in fresh snapshots of every known service (M9).",
                seen.completeness,
            ),
        ]


def install(services: Services) -> None:
    """Register the store collector on the services' registry, once."""
    metrics = services.metrics
    with metrics.install_lock:
        if metrics.store_collector is None:
            collector = StoreCollector(services)
            metrics.registry.register(collector)
            metrics.store_collector = collector


def exposition(services: Services) -> bytes:
    """Return the app's series in the Prometheus text format."""
    install(services)
    return generate_latest(services.metrics.registry)
