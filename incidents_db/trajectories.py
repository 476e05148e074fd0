"""Trajectories: one resolved incident as the steps people took, each with its reward.

A step is the moment someone acted. It records the alerts firing just before, the latest metrics per
service, the action (catalog id, or "unmapped" for one outside the catalog), the time until the next
step (or resolution), and a reward (see `RewardConfig` and docs/store.md for why each term exists).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from pydantic_core import from_json

from incidents_db.schema import SEVERITIES
from playbooks.catalog import Catalog

UNMAPPED = "unmapped"

EventRow = tuple[str, float, str, str | None, str]
"""One mined event as read: (incident id, epoch seconds (0.0 for metrics rows: unused), type, service, payload JSON)."""

Alerts = tuple[tuple[str, str], ...]
RawStep = tuple[float, Alerts, dict[str, dict[str, float]], dict[str, Any]]
"""An action before scoring: (epoch seconds, alerts firing, latest metrics per service, action payload)."""


@dataclass(frozen=True)
class RewardConfig:
    """The reward's constants (docs/store.md explains each term)."""

    impact_per_minute: tuple[float, float, float, float] = (4.0, 2.0, 1.0, 0.5)
    """Cost of one minute of user-facing impact for sev1..sev4."""
    wasted_action_penalty: float = 5.0
    """Extra cost of an action that failed or had no effect (risk and attention spent for nothing)."""
    resolution_bonus: float = 10.0
    """Credit to the step whose interval ends with the incident resolved."""


class Step(NamedTuple):
    """One decision point of a trajectory (a NamedTuple: built once per action, cheaper than a dataclass)."""

    at: float
    alerts: Alerts
    metrics: dict[str, dict[str, float]]
    action: str
    action_name: str
    target: str | None
    outcome: str
    dt: float
    impact_minutes: float
    reward: float
    done: bool


class Trajectory(NamedTuple):
    """A resolved incident as a sequence of steps."""

    incident_id: str
    severity: str
    opened_at: float
    resolved_at: float
    root_service: str | None
    root_fault: str | None
    steps: tuple[Step, ...]


def _overlap(segments: list[tuple[float, float]], start: float, end: float) -> float:
    total = 0.0
    for seg_start, seg_end in segments:
        lo, hi = max(seg_start, start), min(seg_end, end)
        if hi > lo:
            total += hi - lo
    return total


def _replay(
    events: Sequence[EventRow], opened: float, resolved: float
) -> tuple[list[RawStep], list[tuple[float, float]]]:
    """Replay a timeline: the actions with what was known when each was taken, and the impact segments."""
    active: dict[tuple[str, str], float] = {}
    latest: dict[str, str] = {}
    parsed: dict[str, dict[str, float]] = {}
    segments: list[tuple[float, float]] = []
    firing_since: float | None = None
    saw_alert = False
    firing: Alerts | None = ()  # sorted `active`; None when it changed since
    raw_steps: list[RawStep] = []
    for _, at, kind, service, payload in events:
        if kind == "metrics":
            latest[service or ""] = payload
        elif kind == "alert":
            saw_alert = True
            alert = from_json(payload)
            key = (service or "", str(alert.get("name", "")))
            if alert.get("status") == "firing":
                if not active:
                    firing_since = at
                active[key] = at
                firing = None
            elif active.pop(key, None) is not None:
                firing = None
                if not active and firing_since is not None:
                    segments.append((firing_since, at))
                    firing_since = None
        elif kind == "action":
            metrics = {}
            for svc, raw in latest.items():
                values = parsed.get(raw)
                if values is None:
                    values = parsed[raw] = from_json(raw).get("values", {})
                metrics[svc] = values
            if firing is None:
                firing = tuple(sorted(active))
            raw_steps.append((at, firing, metrics, from_json(payload)))
    if firing_since is not None:
        segments.append((firing_since, max(resolved, firing_since)))
    if not saw_alert:
        # No alerts recorded: the whole open period counts as impact.
        segments = [(opened, resolved)]
    return raw_steps, segments


def _score(
    raw_steps: list[RawStep],
    segments: list[tuple[float, float]],
    resolved: float,
    weight: float,
    catalog: Catalog,
    reward: RewardConfig,
) -> list[Step]:
    """Turn replayed actions into steps: the interval each covers, its impact and its reward."""
    steps = []
    final = len(raw_steps) - 1
    make = tuple.__new__  # Step(...) without the NamedTuple's Python-level __new__
    known = catalog.actions  # `in catalog` without Catalog.__contains__'s call
    for index, (at, alerts, metrics, action) in enumerate(raw_steps):
        last = index == final
        next_at = resolved if last else raw_steps[index + 1][0]
        next_at = max(next_at, at)
        impact = _overlap(segments, at, next_at) / 60.0
        outcome = str(action.get("outcome", "unknown"))
        value = -weight * impact
        if outcome in ("failed", "no_effect"):
            value -= reward.wasted_action_penalty
        if last:
            value += reward.resolution_bonus
        name = str(action.get("action", ""))
        steps.append(
            make(
                Step,
                (
                    at,
                    alerts,
                    metrics,
                    name if name in known else UNMAPPED,
                    name,
                    action.get("target"),
                    outcome,
                    next_at - at,
                    impact,
                    value,
                    last,
                ),
            )
        )
    return steps


def build_trajectory(
    header: Any, events: Sequence[EventRow], catalog: Catalog, reward: RewardConfig
) -> Trajectory:
    """Turn one incident header and its event rows (in timeline order) into a trajectory."""
    opened, resolved = float(header.opened_s), float(header.resolved_s)
    raw_steps, segments = _replay(events, opened, resolved)
    weight = reward.impact_per_minute[SEVERITIES.index(header.severity)]
    steps = _score(raw_steps, segments, resolved, weight, catalog, reward)
    return Trajectory(
        header.id,
        header.severity,
        opened,
        resolved,
        header.root_cause_service,
        header.root_cause_fault,
        tuple(steps),
    )
