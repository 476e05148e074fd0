"""Drift (F2): the live distribution of the policy's input features against its training set's.

The policy artifact stores no statistics of its training features, so the reference is rebuilt at
check time from what the training set is made of: the trajectories mined from the store's resolved
incidents (`incidents_db.mining.iter_trajectories`), each step encoded exactly as training encodes it
(`remediation.learning.encoding.observation_of_step`), keeping incidents resolved before the serving
version was trained when it is a registered one. The live side is the observation the policy ranked
first for each recent incident (its timeline up to the first suggestion the card showed), built by the
same `observation_from_record` the card uses. Every feature lies in [0, 1]; each is cut into ten equal
bins and compared with the population stability index; a group reports its worst feature.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.orm import Session

from incidents_db import incidents
from incidents_db.mining import iter_trajectories
from incidents_db.models import Suggestion
from remediation.policies.observe import SignalOf, observation_from_record, topology_with
from sim.observation import ALERTS, FEATURES, METRICS, STATIC_FEATURES
from sim.topology import Topology

_A0 = FEATURES.index(f"alert_{ALERTS[0]}")
_S0 = FEATURES.index(STATIC_FEATURES[0])
# feature groups, as index ranges into FEATURES (sim/observation.py)
GROUPS: dict[str, tuple[int, ...]] = {
    "metrics": tuple(range(len(METRICS))),
    "telemetry": (FEATURES.index("telemetry_missing"),),
    "alerts": tuple(range(_A0, _A0 + len(ALERTS))),
    "changes": tuple(FEATURES.index(f) for f in ("recent_deploy", "recent_config_change", "recent_action")),
    "workload": tuple(FEATURES.index(f) for f in ("replica_deficit", "traffic_excess")),
    "graph": tuple(range(_S0, len(FEATURES))),
}
EDGES = np.linspace(0.0, 1.0, 11)
EPS = 1e-4  # share given to an empty bin, so the index stays finite
MIN_REFERENCE, MIN_LIVE = 20, 5  # observations below which a comparison says nothing
Rows = npt.NDArray[np.float64]  # (M, F): one row per service of each observation, FEATURES order


@dataclass(frozen=True)
class DriftReport:
    """One drift check: PSI per feature group (empty when a side had too few observations).

    ``reference`` counts trajectory steps, ``live`` incidents (one observation each).
    """

    groups: dict[str, float]
    reference: int
    live: int
    policy: str


def shares(rows: Rows) -> Rows:
    """Return (F, 10) bin shares per feature (values clipped into [0, 1])."""
    out = np.empty((rows.shape[1], len(EDGES) - 1))
    clipped = np.clip(rows, 0.0, 1.0)
    for f in range(rows.shape[1]):
        counts, _ = np.histogram(clipped[:, f], bins=EDGES)
        out[f] = counts / max(1, counts.sum())
    return out


def psi(expected: Rows, actual: Rows) -> npt.NDArray[np.float64]:
    """Return the population stability index per feature of two (F, B) share tables."""
    e, a = np.maximum(expected, EPS), np.maximum(actual, EPS)
    return np.asarray(((a - e) * np.log(a / e)).sum(axis=1), dtype=np.float64)


def group_psi(reference: Rows, live: Rows) -> dict[str, float]:
    """Return each group's largest per-feature PSI between two row sets."""
    per_feature = psi(shares(reference), shares(live))
    return {name: float(per_feature[list(idx)].max()) for name, idx in GROUPS.items()}


def reference_rows(
    *, engine: sa.Engine, topology: Topology | None, before: datetime | None, limit: int = 2000
) -> tuple[Rows, int]:
    """Return feature rows of mined trajectory steps (incidents resolved before ``before``) and how many steps."""
    from remediation.learning.encoding import observation_of_step  # torch: only when a check runs

    rows: list[Rows] = []
    cutoff = before.timestamp() if before is not None else None
    for trajectory, _ in iter_trajectories(engine=engine):
        if cutoff is not None and trajectory.resolved_at > cutoff:
            continue
        names = {s for step in trajectory.steps for s in step.metrics} | {
            s for step in trajectory.steps for s, _ in step.alerts
        }
        graph = topology_with(topology, names | {s.target for s in trajectory.steps if s.target})
        seen: list[tuple[str, float]] = []
        for step in trajectory.steps:
            values = [(s, k, float(v)) for s, vals in step.metrics.items() for k, v in vals.items()]
            obs = observation_of_step(topology=graph, alerts=step.alerts, metrics=values, actions=list(seen),
                                      now_s=step.at, opened_s=trajectory.opened_at)  # fmt: skip
            rows.append(np.asarray(obs.nodes, dtype=np.float64))
            if step.target:
                seen.append((step.target, step.at))
        if len(rows) >= limit:
            break
    return (np.concatenate(rows) if rows else np.zeros((0, len(FEATURES)))), len(rows)


# reference rows of a registered version (fixed training cut-off) per (database, graph, cut-off): the
# hourly check then reads only the live side; an unregistered version's reference grows, so it is re-read
_REFERENCES: dict[tuple[str, str, int, datetime], tuple[Rows, int]] = {}
_MAX_REFERENCES = 4


def _reference(*, engine: sa.Engine, topology: Topology | None, before: datetime | None) -> tuple[Rows, int]:
    if before is None:
        return reference_rows(engine=engine, topology=topology, before=None)
    key = (
        engine.url.render_as_string(),
        topology.name if topology else "",
        topology.n_services if topology else 0,
        before,
    )
    found = _REFERENCES.get(key)
    if found is None or found[1] < MIN_REFERENCE:  # too few so far: history may still be imported
        found = reference_rows(engine=engine, topology=topology, before=before)
        if len(_REFERENCES) >= _MAX_REFERENCES:
            _REFERENCES.pop(next(iter(_REFERENCES)))
        _REFERENCES[key] = found
    return found


def first_ranked(*, db_session: Session, since: datetime, limit: int = 200) -> list[tuple[str, datetime]]:
    """Return (incident id, when a card first showed its suggestions) for incidents first ranked since ``since``."""
    first = sa.func.min(Suggestion.created_at)
    query = (
        sa.select(Suggestion.incident_id, first)
        .group_by(Suggestion.incident_id)
        .having(first >= since)
        .order_by(first.desc())
        .limit(limit)
    )
    return [(str(i), at) for i, at in db_session.execute(query)]


def _until(events: Iterable[dict[str, object]], at: datetime) -> list[dict[str, object]]:
    """Return the events up to ``at`` (timeline times are ISO-8601 strings)."""
    return [e for e in events if _instant(e.get("at")) <= at.timestamp()]


def _instant(value: object) -> float:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return float("inf")


def live_rows(
    *, db_session: Session, topology: Topology | None, since: datetime, signal_of: SignalOf | None
) -> tuple[Rows, int]:
    """Return feature rows of what the policy ranked first per incident since ``since``, and how many incidents."""
    rows: list[Rows] = []
    for incident_id, at in first_ranked(db_session=db_session, since=since):
        record = incidents.record(db_session=db_session, incident_id=incident_id)
        record = {**record, "events": _until(record.get("events", []), at)}
        obs, _ = observation_from_record(record, topology=topology, now=at, signal_of=signal_of)
        rows.append(np.asarray(obs.nodes, dtype=np.float64))
    return (np.concatenate(rows) if rows else np.zeros((0, len(FEATURES)))), len(rows)


def check(
    *,
    db_session: Session,
    topology: Topology | None,
    policy: str,
    trained_at: datetime | None,
    now: datetime,
    window: timedelta,
    signal_of: SignalOf | None = None,
) -> DriftReport:
    """Compare the policy's live inputs over ``window`` with its training set's; PSI per feature group."""
    bind = db_session.get_bind()
    engine = bind if isinstance(bind, sa.Engine) else bind.engine
    reference, n_reference = _reference(engine=engine, topology=topology, before=trained_at)
    live, n_live = live_rows(
        db_session=db_session, topology=topology, since=now - window, signal_of=signal_of
    )
    if n_reference < MIN_REFERENCE or n_live < MIN_LIVE:
        return DriftReport({}, n_reference, n_live, policy)
    return DriftReport(group_psi(reference, live), n_reference, n_live, policy)
