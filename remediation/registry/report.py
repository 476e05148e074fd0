"""`remediate policy report`: a shadow or canary version against production and against people.

Per recorded incident state (the actions on its timeline before a ranking): agreement of the
version's top-1 / top-3 with production's top-1 and with what people ran next (the next action event:
approved and executed), the guardrail denials its top-1 would have hit, and an off-policy estimate of
its time to mitigate from these logged decisions: the replay estimator (keep the states where the
version's top-1 is what people did, average their time to mitigation) with a seeded bootstrap 95 %
interval, beside the same figure for everything people did. The replay estimate is unbiased only
where people's choices did not depend on what would follow; with few matches its interval is wide
and says so. The canary's two arms (incidents shown production's ranking, incidents shown the canary's)
are compared on their outcomes.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from incidents_db import incidents
from incidents_db.rankings import PolicyRanking
from remediation.errors import RegistryError
from remediation.registry import rankings, service

Key = tuple[str, str | None]


def _key(item: Mapping[str, Any]) -> Key:
    return (str(item.get("action")), item.get("target"))


def _at(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


def _interval(values: Sequence[float], *, seed: int, resamples: int = 1000) -> dict[str, Any]:
    """Return the mean with a bootstrap 95 % interval (None when nothing was measured)."""
    if not values:
        return {"n": 0, "mean_s": None, "low_s": None, "high_s": None}
    data = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"n": int(data.size), "mean_s": round(float(data.mean()), 1), "low_s": round(float(low), 1),
            "high_s": round(float(high), 1)}  # fmt: skip


def _share(hits: int, n: int) -> float | None:
    return round(hits / n, 4) if n else None


def default_version(*, db_session: Session) -> str:
    """Return the shadow version, else the canary's; refuse when neither runs."""
    shadow = next((v.id for v in service.list_versions(db_session=db_session) if v.status == "shadow"), None)
    canary = rankings.current_canary(db_session=db_session)
    if shadow or canary:
        return str(shadow or canary[0])  # type: ignore[index]
    raise RegistryError(
        "no shadow or canary version: name one, or start one with `policy shadow` / `policy canary`"
    )


def policy_report(*, db_session: Session, version: str | None = None, seed: int = 0) -> dict[str, Any]:
    """Compare ``version`` (default: the shadow, else the canary) with production and with people."""
    version = version or default_version(db_session=db_session)
    rows = rankings.rankings_of(db_session=db_session)
    states: dict[tuple[str, int], dict[str, PolicyRanking]] = defaultdict(dict)
    for row in rows:
        role = "candidate" if row.policy_version == version else row.role
        states[(row.incident_id, row.step)].setdefault(role, row)
    records = {i: incidents.record(db_session=db_session, incident_id=i) for i in {s[0] for s in states}}
    stats: Counter[str] = Counter()
    denials: Counter[str] = Counter()
    matched, people_ttm = [], []
    for (incident_id, step), by_role in states.items():
        cand = by_role.get("candidate")
        if cand is None or not cand.ranked:
            continue
        rec = records[incident_id]
        actions = [e for e in rec.get("events", []) if e.get("type") == "action"]
        top = [_key(i) for i in cand.ranked]
        stats["states"] += 1
        if not cand.ranked[0].get("allowed", True):
            denials[str(cand.ranked[0].get("code"))] += 1
        prod = by_role.get("production") if cand.role == "shadow" else None
        if prod is not None and prod.ranked:
            stats["with_production"] += 1
            stats["prod_top1"] += _key(prod.ranked[0]) == top[0]
            stats["prod_top3"] += _key(prod.ranked[0]) in top[:3]
        if step < len(actions):
            done = _key(actions[step])
            stats["with_people"] += 1
            stats["people_top1"] += done == top[0]
            stats["people_top3"] += done in top[:3]
            resolved, at = _at(rec.get("resolved_at")), cand.at
            if resolved is not None:
                ttm = max(0.0, (resolved - at).total_seconds())
                people_ttm.append(ttm)
                if done == top[0]:
                    matched.append(ttm)
    return {
        "version": version,
        "states": stats["states"],
        "agreement_with_production": {
            "states": stats["with_production"],
            "top1": _share(stats["prod_top1"], stats["with_production"]),
            "top3": _share(stats["prod_top3"], stats["with_production"]),
        },
        "agreement_with_people": {
            "states": stats["with_people"],
            "top1": _share(stats["people_top1"], stats["with_people"]),
            "top3": _share(stats["people_top3"], stats["with_people"]),
        },
        "time_to_mitigate_ope": {
            "estimator": "replay (states where its top-1 is what people did), bootstrap 95 %",
            "candidate": _interval(matched, seed=seed),
            "people": _interval(people_ttm, seed=seed),
        },
        "guardrail_denials_top1": {"count": sum(denials.values()), "by_reason": dict(denials)},
        "canary_arms": canary_arms(rows, records),
    }


def canary_arms(rows: Sequence[PolicyRanking], records: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Compare the incidents shown production's ranking with those shown the canary's, on their outcomes."""
    arm_of: dict[str, str] = {}
    top1_followed: Counter[str] = Counter()
    for row in rows:
        if row.role in ("production", "canary") and row.shown:
            arm_of.setdefault(row.incident_id, row.arm)
            actions = [e for e in records[row.incident_id].get("events", []) if e.get("type") == "action"]
            if row.ranked and row.step < len(actions) and _key(actions[row.step]) == _key(row.ranked[0]):
                top1_followed[row.arm] += 1
    out: dict[str, Any] = {}
    for arm in ("production", "canary"):
        ids = [i for i, a in arm_of.items() if a == arm]
        ttm, fixed = [], 0
        for i in ids:
            rec = records[i]
            opened, resolved = _at(rec.get("opened_at")), _at(rec.get("resolved_at"))
            if opened is not None and resolved is not None:
                ttm.append((resolved - opened).total_seconds())
            fixed += any(
                e.get("type") == "action" and e.get("outcome") == "succeeded" for e in rec.get("events", [])
            )
        out[arm] = {"incidents": len(ids), "resolved": len(ttm), "fixed_by_an_action": fixed,
                    "shown_top1_run": top1_followed[arm], "time_to_mitigate": _interval(ttm, seed=0)}  # fmt: skip
    return out
