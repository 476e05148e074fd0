"""Verification of executed requests: schedule after a run, judge when due (once), record the verdict.

The verdict is written by the replica holding the verification's claim, in one transaction with its
timeline note, the verdict on the action's timeline event (the outcome mining learns from), the
execution's recorded outcome, the audit entry and, when harmful and armed, the undo request. A replica
that stops after claiming leaves the claim to expire; another then judges it (docs/verification.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from incidents_db import canaries, incidents
from incidents_db import verifications as store
from remediation.approvals._store import audit, load
from remediation.approvals.context import Guard
from remediation.verification.canary import Step, after_verdict, canary_tuning, fraction_of, replicas_of
from remediation.verification.judge import Judgement, Picture, Tuning, judge
from remediation.verification.live import callers, exposed, neighbours, picture_from_record, with_snapshots
from remediation.verification.undo import create_undo
from remediation.verification.workload import with_workload
from sim.topology import Topology

# what mining learns from each verdict (the incident format's action outcomes)
MINED_OUTCOME: Mapping[str, str] = {
    "effective": "succeeded",
    "partial": "succeeded",
    "ineffective": "no_effect",
    "harmful": "failed",
}


@dataclass(frozen=True)
class Verified:
    """A verdict just recorded, for the bot to announce."""

    request_id: str
    incident_id: str | None
    action: str
    target: str | None
    judgement: Judgement
    undo_request_id: str | None
    canary: Step | None = None  # what a canary's verdict led to (the rest, or the canary's undo)


def settle_of(guard: Guard, action: str, target: str | None, overrides: Mapping[str, float]) -> float:
    """Return the settle time: ``overrides["action:target"]``, else ``overrides["action"]``, else the catalog's."""
    for key in (f"{action}:{target}", action):
        if key in overrides:
            return float(overrides[key])
    return guard.catalog.get(action).settle


def schedule(
    *,
    db_session: Session,
    request_id: str,
    action: str,
    target: str | None,
    incident_id: str | None,
    settle_s: float,
    now: datetime,
) -> bool:
    """Schedule the verdict of a request that just succeeded ``settle_s`` from now (flushed, not committed).

    The "before" picture is the incident's timeline as it stands now (alerts and metrics up to the run).
    """
    before = Picture(frozenset(), {})
    if incident_id is not None:
        before = picture_from_record(incidents.record(db_session=db_session, incident_id=incident_id), now)
    return store.schedule(
        db_session=db_session, request_id=request_id, action=action, target=target, incident_id=incident_id,
        executed_at=now, verify_at=now + timedelta(seconds=settle_s), before=before.as_json(),
    )  # fmt: skip


def _canary_fields(step: Step | None) -> dict[str, Any]:
    """Return what a canary's verdict adds to its timeline note (nothing for a plain run)."""
    if step is None:
        return {}
    return {"canary": "passed" if step.passed else "failed", "canary_note": step.note,
            "rest_request_id": step.rest_request_id, "canary_undo_request_id": step.undo_request_id}  # fmt: skip


def _waited(seconds: float) -> str:
    return f"after {seconds / 60:.0f} min" if seconds >= 90 else f"after {seconds:.0f} s"


def _tuning_of(
    db_session: Session, row: store.Verification, topology: Topology | None, tuning: Tuning
) -> Tuning:
    """Return the thresholds for this run: a canary expects only its share of the improvement."""
    armed = canaries.get(db_session=db_session, request_id=row.request_id)
    if armed is None:
        return tuning
    data = store.execution_data(db_session=db_session, request_id=row.request_id)
    return canary_tuning(tuning, fraction_of(armed.share, replicas_of(topology, row.target), data))


def _judge(
    db_session: Session, row: store.Verification, topology: Topology | None, now: datetime, tuning: Tuning
) -> Judgement:
    before = Picture.from_json(row.before or {})
    scope = callers(topology, row.target)
    near = neighbours(topology, row.target)
    watched = scope | near | ({row.target} if row.target else set())
    since = row.executed_at or now
    record = incidents.record(db_session=db_session, incident_id=row.incident_id) if row.incident_id else {}
    after = with_snapshots(picture_from_record(record), db_session=db_session, since=since, services=watched)
    firing: set[tuple[str, str]] = set()
    for svc, name, status in store.alerts_since(db_session=db_session, since=since, services=watched):
        (firing.add if status == "firing" else firing.discard)((svc, name))
    result = judge(
        target=row.target, scope=scope, neighbours=near, before=before, after=after, new_alerts=firing,
        exposed=exposed(topology, before), waited=_waited((now - since).total_seconds()), tuning=tuning,
    )  # fmt: skip
    return with_workload(result, store.execution_data(db_session=db_session, request_id=row.request_id))


def verify_one(
    *,
    db_session: Session,
    guard: Guard,
    request_id: str,
    owner: str,
    topology: Topology | None,
    max_rechecks: int = 1,
    tuning: Tuning | None = None,
) -> Verified | None:
    """Judge one claimed verification and record it (committed); None when postponed or taken by another."""
    now = guard.clock()
    row = store.get(db_session=db_session, request_id=request_id)
    if row is None or row.state != "pending":
        return None
    result = _judge(db_session, row, topology, now, _tuning_of(db_session, row, topology, tuning or Tuning()))
    if result.lagging and row.rechecks < max_rechecks:  # an alert slower than the settle time: look again
        settle = (now - (row.executed_at or now)).total_seconds()
        store.postpone(
            db_session=db_session,
            request_id=request_id,
            owner=owner,
            verify_at=now + timedelta(seconds=max(settle, 1.0)),
        )
        return None
    if not store.decide(db_session=db_session, request_id=request_id, owner=owner, verdict=result.verdict,
                        summary=result.summary, evidence=result.evidence, now=now):  # fmt: skip
        db_session.rollback()
        return None
    step = after_verdict(db_session=db_session, guard=guard, request_id=request_id, verdict=result.verdict,
                         summary=result.summary, now=now)  # fmt: skip
    undo_id = _record(db_session, guard, row, result, now, step)
    db_session.commit()
    return Verified(row.request_id, row.incident_id, row.action, row.target, result, undo_id, step)


def _record(
    db_session: Session,
    guard: Guard,
    row: store.Verification,
    result: Judgement,
    now: datetime,
    step: Step | None = None,
) -> str | None:
    """Write the verdict everywhere it is kept (not committed); return the undo request's id, if any."""
    request = load(db_session, row.request_id)
    undo_id = None
    if step is None and result.verdict == "harmful" and row.auto_undo:  # a canary has its own undo
        undo_id = create_undo(
            db_session=db_session, guard=guard, request_id=row.request_id, why=result.summary
        )
        if undo_id is not None:
            store.set_undo(db_session=db_session, request_id=row.request_id, undo_request_id=undo_id)
    where = f" on {row.target}" if row.target else ""
    text = f"verified {row.action}{where}: {result.verdict} ({result.summary})"
    if undo_id is not None:
        text += f"; undoing it automatically with {guard.catalog.get(row.action).rollback}"
    if step is not None:
        text = f"canary: {text}; {step.note}"
    evidence = list(result.evidence)
    if row.incident_id is not None:
        incidents.append(
            db_session=db_session, incident_id=row.incident_id, type_="note", at=now, actor="remediate",
            text=text[:2000], verdict=result.verdict, request_id=row.request_id, action=row.action,
            target=row.target, evidence=evidence[:20], summary=result.summary, undo_request_id=undo_id,
            **_canary_fields(step),
        )  # fmt: skip
        store.mark_action_event(
            db_session=db_session, incident_id=row.incident_id, request_id=row.request_id,
            verdict=result.verdict, outcome=MINED_OUTCOME[result.verdict],
        )  # fmt: skip
    store.mark_execution(
        db_session=db_session,
        request_id=row.request_id,
        verdict=result.verdict,
        verdict_summary=result.summary,
    )
    reason = f"{result.verdict}: {result.summary}; " + "; ".join(evidence)
    audit(db_session, request, actor="remediate", event="verification", decision="info", reason=reason[:2000])
    return undo_id
