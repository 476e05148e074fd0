"""The bot's own Prometheus series that count events where they happen (docs/observability.md).

One `Metrics` per app, on its own `CollectorRegistry` (never the process-global one: tests build many
apps in one process). Numbers the store already knows (open incidents, outbox, acceptance, success,
snapshot ages, drift of the last check) are not counted here but read from the store at scrape time
(`bot.observe.collect`), so replicas agree and a restart loses nothing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
SEEN_DENIALS = 10_000  # suggestions whose denial was counted, remembered so a card refresh counts none


class Metrics:
    """Counters and histograms of one app, on its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.alerts_received = Counter(
            "remediate_alerts_received", "Alerts accepted from a webhook, by source.", ["source"], registry=r
        )
        self.suggestions = Counter(
            "remediate_suggestions",
            "Suggestions shown on incident cards, by ranking policy version.",
            ["policy"],
            registry=r,
        )
        self.approvals = Counter(
            "remediate_approvals", "Approve and reject decisions recorded.", ["decision"], registry=r
        )
        self.executions = Counter(
            "remediate_executions",
            "Executions finished, by action and outcome.",
            ["action", "outcome"],
            registry=r,
        )
        self.verdicts = Counter(
            "remediate_verdicts",
            "Verdicts on executed actions (effective, partial, ineffective, harmful), by action.",
            ["action", "verdict"],
            registry=r,
        )
        self.guardrail_denials = Counter(
            "remediate_guardrail_denials",
            "Suggestions the guardrails refused at plan time (once per suggestion and rule), by rule and rank.",
            ["rule", "rank"],
            registry=r,
        )
        self.outbox_deliveries = Counter(
            "remediate_outbox_deliveries",
            "Outbox delivery attempts, by message kind and result (sent, retry, dead).",
            ["kind", "result"],
            registry=r,
        )
        self.slack_errors = Counter(
            "remediate_slack_errors", "Slack Web API calls that failed, by error.", ["error"], registry=r
        )
        self.slack_ack = Histogram(
            "remediate_slack_ack_seconds",
            "Time from a Slack request's arrival to its HTTP answer (the ack).",
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.audit_verified = Gauge(  # no sample until a check ran (no audit head target: none)
            "remediate_audit_verified",
            "1 when the last audit head check found the hash chain intact, 0 when it failed.",
            ["check"],
            registry=r,
        )
        self.drift = Gauge(
            "remediate_feature_drift_psi",
            "Population stability index of the policy's input features, live vs training, by feature group.",
            ["group"],
            registry=r,
        )
        self.drift_observations = Gauge(
            "remediate_drift_observations",
            "Observations the last drift check compared (reference: training steps, live: incidents).",
            ["set"],
            registry=r,
        )
        self.drift_checked = Gauge(
            "remediate_drift_checked_timestamp_seconds", "When the last drift check finished.", registry=r
        )
        self.store_collector: object | None = None  # bot.observe.collect.install sets it, once
        self.install_lock = threading.Lock()
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._lock = threading.Lock()

    def delivery_failed(self, kind: str, slack_error: str, *, again: bool) -> None:
        """Count an outbox attempt that failed: retried later or given up, and Slack's error (or transport)."""
        self.outbox_deliveries.labels(kind=kind, result="retry" if again else "dead").inc()
        self.slack_errors.labels(error=slack_error or "transport").inc()

    def denied(self, token: str, rule: str, rank: int) -> None:
        """Count a plan-time guardrail denial of a shown suggestion, once per (suggestion, rule)."""
        key = (token, rule)
        with self._lock:
            if key in self._seen:
                return
            self._seen[key] = None
            if len(self._seen) > SEEN_DENIALS:
                self._seen.popitem(last=False)
        self.guardrail_denials.labels(rule=rule, rank="1" if rank == 1 else "2+").inc()
