"""Generate incident history in ``remediate.incident/v1`` JSON Lines, as a noisy human team would leave it.

Each incident: recent deploys/config changes (the cause's and sometimes a harmless one), alerts as
they fire and resolve, metric snapshots of alerting services, the on-call engineer's acknowledgement
after a delay, their actions (restart first, sometimes on a symptomatic service, usually reaching the
real fix) with outcomes, notes, and the resolution. Timestamps are RFC 3339 UTC, events in time order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from sim.core import BatchCore, SimConfig
from sim.faults import FaultSpec, Scenario, fault_kind, sample_scenario
from sim.observation import ALERTS, EDGE_METRIC, METRICS
from sim.policies import Choice, OperatorPolicy, index_of
from sim.topology import Topology

FORMAT = "remediate.incident/v1"
OPERATORS = ("U024BE7LH", "U03KQ9ZP1", "U05MX2RTA", "U07HC4NWD")
HISTORY_START = datetime(2026, 1, 5, tzinfo=UTC)
OUTCOME_OF = {"succeeded": "succeeded", "no_effect": "no_effect", "failed": "failed", "harmful": "failed"}
PAGE_ALERTS = {"HighErrorRate", "ServiceDown", "Saturated", "CertificateExpired"}
MAX_SNAPSHOT_SERVICES = 6


def stamp(when: datetime) -> str:
    """Return an RFC 3339 UTC timestamp with a ``Z`` zone."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def severity_of(peak_impact: float) -> str:
    """Map the peak user impact per minute to sev1..sev4."""
    if peak_impact >= 0.3:
        return "sev1"
    if peak_impact >= 0.1:
        return "sev2"
    if peak_impact >= 0.02:
        return "sev3"
    return "sev4"


@dataclass
class _Recorder:
    """Collects the events of one incident with their times."""

    core: BatchCore
    opened: datetime
    events: list[tuple[float, int, dict[str, Any]]]
    firing: set[tuple[int, int]]
    seq: int = 0

    def add(self, offset_s: float, event: dict[str, Any]) -> None:
        self.seq += 1
        event = {"at": stamp(self.opened + timedelta(seconds=offset_s)), **event}
        self.events.append((offset_s, self.seq, event))

    def alerts(self, offset_s: float) -> None:
        """Record alerts that started or stopped firing since the last look."""
        core, t = self.core, self.core.topology
        now = {(int(a), int(n)) for a, n in zip(*np.nonzero(core.alerts[0]), strict=True)}
        for a, n in sorted(now - self.firing):
            name = ALERTS[a]
            value = float(core.observed[0, min(a, len(METRICS) - 1), n]) if a < len(METRICS) else 1.0
            self.add(
                offset_s,
                {
                    "type": "alert",
                    "status": "firing",
                    "name": name,
                    "service": t.services[n],
                    "labels": {
                        "severity": "page" if name in PAGE_ALERTS else "ticket",
                        "source": "simulator",
                    },
                    "value": round(value, 4),
                },
            )
        for a, n in sorted(self.firing - now):
            self.add(
                offset_s, {"type": "alert", "status": "resolved", "name": ALERTS[a], "service": t.services[n]}
            )
        self.firing = now

    def metrics(self, offset_s: float, extra: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        """Record metric snapshots of alerting services (and ``extra`` ones) whose telemetry arrives."""
        core, t = self.core, self.core.topology
        services = sorted({n for _, n in self.firing} | set(extra))[:MAX_SNAPSHOT_SERVICES]
        for n in services:
            if not core.state.present[0, n]:
                continue
            values = {m: round(float(core.observed[0, j, n]), 4) for j, m in enumerate(METRICS)}
            values["latency_p99_ms"] = round(values["latency_p99_ms"], 1)
            values["replicas"] = float(core.state.replicas[0, n])
            values["traffic_ratio"] = round(float(core.traffic_ratio[0, n]), 3)
            for e in np.flatnonzero(t.src == n).tolist():  # client-side errors per callee, where they show
                rate = float(core.edge_features[0, e, 0])
                if rate >= 0.01:
                    values[EDGE_METRIC + t.services[t.dst[e]]] = round(rate, 4)
            self.add(offset_s, {"type": "metrics", "service": t.services[n], "values": values})


def _record_changes(rec: _Recorder, scenario: Scenario, rng: np.random.Generator) -> None:
    """Record the deploys and config changes that came before the incident."""
    for change in scenario.changes:
        event: dict[str, Any] = {"type": change.type, "service": change.service}
        if change.type == "deploy":
            event["version"] = f"v{rng.integers(1, 5)}.{rng.integers(0, 30)}.{rng.integers(0, 10)}"
        else:
            event["key"] = str(
                rng.choice(["timeouts.upstream_ms", "db.endpoint", "feature.flags", "pool.max"])
            )
        rec.add(-change.age_s, event)


def _respond(core: BatchCore, rec: _Recorder, rng: np.random.Generator, actor: str) -> float:
    """Play the noisy operator from acknowledgement to recovery (or escalation); return the peak impact rate."""
    t = core.topology
    wait = index_of(core, Choice("wait", None))
    peak = float(core.impact_rate[0])

    def idle(seconds: float) -> bool:
        """Let minutes pass without acting; return True when the system recovered meanwhile."""
        nonlocal peak
        for _ in range(max(1, int(seconds // 60))):
            result = core.step([wait])
            peak = max(peak, float(core.impact_rate[0]))
            rec.alerts(float(core.elapsed_s[0]))
            if result.terminated[0]:
                return True
        return False

    ack_delay = float(rng.uniform(120, 600))
    resolved = idle(ack_delay)
    rec.add(float(core.elapsed_s[0]), {"type": "note", "actor": actor, "text": "acknowledged, looking"})
    operator = OperatorPolicy(seed=int(rng.integers(2**31)))
    core.steps[0] = 0  # the operator's own step count starts at the acknowledgement
    while not resolved:
        choice = operator(core, 0)
        started = float(core.elapsed_s[0])
        result = core.step([index_of(core, choice)])
        peak = max(peak, float(core.impact_rate[0]))
        outcome = OUTCOME_OF[core.outcome_name(int(result.outcome[0]))]
        if choice.action == "wait":
            rec.alerts(float(core.elapsed_s[0]))
        else:
            rec.add(
                started,
                {
                    "type": "action",
                    "action": choice.action,
                    "target": choice.target if choice.target is not None else t.name,
                    "params": {},
                    "actor": actor,
                    "outcome": outcome,
                },
            )
            rec.alerts(float(core.elapsed_s[0]))
            rec.metrics(float(core.elapsed_s[0]))
        if result.terminated[0]:
            break
        if core.steps[0] >= 12:  # the operator's patience ends; a senior engineer fixes it by hand
            rec.add(
                float(core.elapsed_s[0]),
                {"type": "note", "actor": actor, "text": "handed to the owning team"},
            )
            while core.active_faults(0):
                core.step([index_of(core, Choice("escalate", None))])
            idle(300)
            rec.alerts(float(core.elapsed_s[0]))
            break
        if idle(float(rng.uniform(60, 240))):
            break
    return peak


def _as_record(
    rec: _Recorder,
    scenario: Scenario,
    *,
    seed: int,
    number: int,
    opened: datetime,
    closed: float,
    peak: float,
) -> dict[str, Any]:
    """Return the v1 record of a finished incident (its events sorted by time, then order recorded)."""
    t = rec.core.topology
    root = scenario.faults[0]
    rec.events.sort(key=lambda item: (item[0], item[1]))
    affected = sorted(
        {e["service"] for _, _, e in rec.events if e["type"] == "alert"} | {f.target for f in scenario.faults}
    )
    first_alert = next((e for _, _, e in rec.events if e["type"] == "alert"), None)
    headline = (
        f"{first_alert['name']} on {first_alert['service']}"
        if first_alert
        else f"{root.kind} on {root.target}"
    )
    return {
        "format": FORMAT,
        "id": f"SIM-{seed}-{number:05d}",
        "title": headline,
        "severity": severity_of(peak),
        "topology": t.name,
        "services": affected,
        "opened_at": stamp(opened),
        "resolved_at": stamp(opened + timedelta(seconds=closed)),
        "root_cause": {"service": root.target, "fault": root.kind},
        "faults": [{"kind": f.kind, "target": f.target, "fix": _fix(f, scenario)} for f in scenario.faults],
        "events": [e for _, _, e in rec.events],
    }


def _fix(fault: FaultSpec, scenario: Scenario) -> str:
    """Return a fault's ground-truth fix at the incident's start (an undo needs its change to undo)."""
    kind = fault_kind(fault.kind)
    changed = any(c.type == kind.change_event and c.service == fault.target for c in scenario.changes)
    return kind.fix_given(undoable=changed)


def generate_incident(topology: Topology, *, seed: int, number: int, opened: datetime) -> dict[str, Any]:
    """Simulate one incident handled by a noisy operator and return its v1 record."""
    rng = np.random.default_rng([seed, number])
    core = BatchCore(topology, 1, seed=rng, config=SimConfig(max_steps=80))
    scenario = sample_scenario(topology, rng, max_faults=2)
    core.reset(scenarios=[scenario])
    t = topology
    rec = _Recorder(core=core, opened=opened, events=[], firing=set())
    _record_changes(rec, scenario, rng)
    causes = {t.index[f.target] for f in scenario.faults}
    rec.alerts(0.0)
    rec.metrics(0.0, {n for n in causes if core.alerts[0, :, n].any()})
    actor = OPERATORS[int(rng.integers(len(OPERATORS)))]
    peak = _respond(core, rec, rng, actor)
    end = float(core.elapsed_s[0])
    for a, n in sorted(rec.firing):
        rec.add(end, {"type": "alert", "status": "resolved", "name": ALERTS[a], "service": t.services[n]})
    rec.firing = set()
    root = scenario.faults[0]
    rec.add(
        end + 60,
        {
            "type": "note",
            "actor": actor,
            "text": f"error rate back to baseline; cause: {root.kind} on {root.target}",
        },
    )
    closed = end + 60 + float(rng.uniform(60, 600))
    rec.add(closed, {"type": "resolved"})
    return _as_record(rec, scenario, seed=seed, number=number, opened=opened, closed=closed, peak=peak)


def generate_history(topology: Topology, *, incidents: int, seed: int) -> Iterator[dict[str, Any]]:
    """Yield ``incidents`` records, spaced hours apart from a fixed start; deterministic by seed."""
    rng = np.random.default_rng([seed, 7919])
    opened = HISTORY_START + timedelta(days=int(seed % 97))
    for number in range(incidents):
        opened += timedelta(seconds=float(rng.exponential(14 * 3600)) + 3600.0)
        yield generate_incident(topology, seed=seed, number=number, opened=opened.replace(microsecond=0))


def write_history(records: Iterator[dict[str, Any]], out: Path) -> int:
    """Write records as JSON Lines; return how many were written."""
    count = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, separators=(",", ":")) + "\n")
            count += 1
    return count
