"""The runbook baseline policy: the playbooks' runbook matcher behind the `Policy` protocol."""

from __future__ import annotations

from playbooks.catalog import Catalog, builtin_catalog
from playbooks.runbooks import RunbookSet, Signals, builtin_runbooks, match_runbooks
from remediation.policies.base import RankedAction
from sim.actions import undo_mask
from sim.observation import ALERTS, FEATURES, METRICS, Observation

KINDS: tuple[str, ...] = ("frontend", "service", "database", "cache", "queue")
# How long after an action the baseline expects the incident to be mitigated, beyond the action's own
# duration: time for metrics to settle and alerts to clear.
SETTLE_S = 120.0
MATCHED_CONFIDENCE = 0.8
FALLBACK_CONFIDENCE = 0.25


def signals_from_observation(observation: Observation) -> Signals:
    """Recover what the runbook matcher reads (alerts, metrics, recent changes, kinds) from an observation.

    The observation stores normalised features; metrics are mapped back to their raw units (latency in
    ms, saturation as load / capacity) so runbook thresholds read as written in the YAML.
    """
    col = {name: i for i, name in enumerate(FEATURES)}
    alerts: dict[str, list[str]] = {}
    metrics: dict[str, dict[str, float]] = {}
    changes: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    for i, service in enumerate(observation.services):
        row = observation.nodes[i]
        firing = [name for name in ALERTS if row[col[f"alert_{name}"]] > 0.5]
        if firing:
            alerts[service] = firing
        if row[col["telemetry_missing"]] < 0.5:
            values = {
                "error_rate": float(row[col["error_rate"]]),
                "latency_p99_ms": float(10 ** (5.0 * float(row[col["latency_p99"]])) - 1.0),
                "cpu": float(row[col["cpu"]]),
                "memory": float(row[col["memory"]]),
                "saturation": float(row[col["saturation"]]) * 2.0,
                "availability": float(row[col["availability"]]),
            }
            metrics[service] = {k: v for k, v in values.items() if k in METRICS}
            # request rate over normal, back from traffic_excess = clip((ratio - 1) / 3, 0, 1)
            metrics[service]["traffic_ratio"] = 1.0 + 3.0 * float(row[col["traffic_excess"]])
        recent = [
            kind
            for kind, feature in (("deploy", "recent_deploy"), ("config_change", "recent_config_change"))
            # exp(-age / 30 min) above 0.1 means the change is less than about 70 minutes old.
            if row[col[feature]] > 0.1
        ]
        if recent:
            changes[service] = recent
        for kind in KINDS:
            if row[col[f"kind_{kind}"]] > 0.5:
                kinds[service] = kind
    return Signals(alerts=alerts, changes=changes, metrics=metrics, kinds=kinds)


class RunbookPolicy:
    """Rank the runbook matcher's candidates; confidence and time to mitigate come from simple rules.

    Confidence is the matcher's rank score scaled by 0.8 for a runbook match and 0.25 for the fallback
    steps; the expected time to mitigate is the action's catalog duration plus a settling time.
    """

    name = "runbook-baseline"
    version = "runbook-baseline"

    def __init__(self, catalog: Catalog | None = None, runbooks: RunbookSet | None = None) -> None:
        self.catalog = catalog or builtin_catalog()
        self.runbooks = runbooks or builtin_runbooks()

    def rank(self, observation: Observation, k: int) -> list[RankedAction]:
        """Return the top ``k`` runbook candidates for the observation, best first."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        candidates = match_runbooks(self.runbooks, self.catalog, signals_from_observation(observation))
        # a rollback or config revert needs a recent change on its target, as for every policy
        undo = undo_mask(observation.nodes, self.catalog.service_actions)
        index = {s: i for i, s in enumerate(observation.services)}
        actions = {a: i for i, a in enumerate(self.catalog.service_actions)}
        candidates = [
            c
            for c in candidates
            if c.target not in index or c.action not in actions or undo[index[c.target], actions[c.action]]
        ]
        ranked = []
        for cand in candidates[:k]:
            spec = self.catalog.get(cand.action)
            matched = cand.runbook is not None
            confidence = cand.score * (MATCHED_CONFIDENCE if matched else FALLBACK_CONFIDENCE)
            ranked.append(
                RankedAction(
                    action=cand.action,
                    target=cand.target,
                    params=dict(cand.params),
                    score=cand.score,
                    confidence=round(confidence, 3),
                    expected_ttm_s=spec.duration_s + (SETTLE_S if matched else 0.0),
                    risk=spec.risk.value,
                    reason=cand.reason,
                )
            )
        return ranked
