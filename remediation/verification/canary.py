"""Canary remediation: run a fix on a share of the replicas first, judge it, then the rest or its undo.

* **Offered** for actions the catalog marks ``canary: true`` on a target with several replicas (the
  topology's ``replicas``); the approver's "Canary first" arms it in the approval's own transaction, so
  every guardrail of an approval applies (RBAC, two-person rule, freeze, kill switch, limits): nothing
  runs without a recorded, allowed approval.
* **Run**: the executor applies the action to ``share`` of the replicas only (at least one); the
  verification judges it after its settle time like any run.
* **Passed** (``effective`` or ``partial``: a canary is expected to heal only its share): the rest of the
  rollout is a new request of the same action, approved at once by the canary's approvers, or waiting
  for a second approval when the catalog says ``canary_second_approval``.
* **Failed** (``ineffective`` or ``harmful``): nothing more runs; the canary's undo (the same action as
  an undo run: the executor takes back what it did on the canary replicas) is created approved, and
  runs once like any approved request (the run-time guardrails still decide).

* **Unknown** or **run failed** (the run ended ``unknown`` or ``failed``, or never started): no verdict
  will come; the canary is disarmed where that is recorded (`remediation.approvals._store.disarm_canary`,
  state ``unknown`` or ``run_failed``): neither follow-up, not even "undo if harmful", a person decides.

Both follow-ups are written in the verdict's transaction (`remediation.verification.service`), so a
bot restart mid-canary finds either the armed canary (verdict still to come) or its follow-up request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from incidents_db import canaries
from incidents_db import verifications as checks
from incidents_db.models import Approval
from remediation.approvals import states as st
from remediation.approvals._store import audit, load, move, refuse
from remediation.approvals.context import Guard, build_context
from remediation.approvals.requests import propose
from remediation.approvals.views import to_view
from remediation.errors import CanaryRefusedError
from remediation.guardrails.decide import decide
from remediation.verification.judge import Tuning
from sim.topology import Topology

PASSES = frozenset({"effective", "partial"})


@dataclass(frozen=True)
class Step:
    """What a canary's verdict led to, for the bot to announce and run."""

    passed: bool
    rest_request_id: str | None
    undo_request_id: str | None
    waits_for_approval: bool
    note: str


def canary_tuning(tuning: Tuning, fraction: float) -> Tuning:
    """Return the thresholds for a canary on ``fraction`` of the replicas: the improvement expected scales.

    A fix on a third of the replicas can take only about a third of the errors away, so "improved" asks
    the worst badness to fall by ``fraction`` of what a full run must take away (half, by default).
    """
    fraction = min(max(fraction, 0.0), 1.0)
    return replace(tuning, improved_share=1.0 - fraction * (1.0 - tuning.improved_share))


def fraction_of(share: float, replicas: int, data: Mapping[str, Any]) -> float:
    """Return the share of replicas a canary reached: as the executor says, else from the graph's count."""
    pods, total = data.get("canary_pods"), data.get("pods")
    if isinstance(pods, list) and isinstance(total, int) and total > 0:
        return len(pods) / total
    if replicas > 0:
        return min(replicas, max(1, int(share * replicas))) / replicas
    return share


def replicas_of(topology: Topology | None, target: str | None) -> int:
    """Return the target's replicas as the service graph says (0 when unknown)."""
    if topology is None or target is None or target not in topology.index:
        return 0
    return int(topology.replicas[topology.index[target]])


def offered(guard: Guard, action: str, target: str | None, topology: Topology | None) -> bool:
    """Return whether "canary first" is offered: a canary-able action on a target with several replicas."""
    spec = guard.catalog.actions.get(action)
    return spec is not None and spec.canary and replicas_of(topology, target) > 1


def arm(
    *,
    db_session: Session,
    guard: Guard,
    request_id: str,
    share: float,
    by: str,
    topology: Topology | None,
) -> None:
    """Arm "canary first" on a request being approved (flushed; the approval commits it); refusal audited.

    Called from inside an allowed approval (`approvals.approve(also=...)`), never before it: a refused
    approval leaves no canary behind.
    """
    row = load(db_session, request_id)
    if not offered(guard, row.action, row.target, topology):
        error = CanaryRefusedError(
            f"{row.action} on {row.target or 'everything'} cannot run as a canary "
            "(the action is not canary-able or the target has a single replica); nothing was approved"
        )
        raise refuse(db_session, row, error, actor=by, event="canary")
    canaries.arm(
        db_session=db_session, request_id=row.id, action=row.action, target=row.target,
        incident_id=row.incident_id, share=share,
        second_approval=guard.catalog.get(row.action).canary_second_approval, by=by, now=guard.clock(),
    )  # fmt: skip
    audit(db_session, row, actor=by, event="canary", decision="info",
          reason=f"canary first: on {share:.0%} of the replicas (at least one), then the rest")  # fmt: skip


def _follow_up(
    db_session: Session, guard: Guard, request_id: str, *, reason: str, approve: bool, comment: str
) -> str | None:
    """Create a request of the canary's action (flushed); approved by the canary's approvers when ``approve``."""
    row = load(db_session, request_id)
    ctx = build_context(db_session=db_session, guard=guard, stage="request")
    # Asked first because `propose` commits a refusal: mid-verdict that would commit half the verdict.
    if not decide(row.action, row.target, dict(row.params), row.requester, ctx).allowed:
        return None  # refused: said in the note; the card offers the action again
    view = propose(
        db_session=db_session, guard=guard, action=row.action, target=row.target, params=dict(row.params),
        requester=row.requester, incident_id=row.incident_id, reason=reason[:2000], commit=False,
    )  # fmt: skip
    if approve:
        made = load(db_session, view.id)
        now = guard.clock()
        for approver in to_view(db_session, row).approvers:
            db_session.add(
                Approval(request_id=made.id, approver=approver, decision="approve", at=now, comment=comment)
            )
        move(db_session, made, st.APPROVED, now)
        audit(db_session, made, actor="remediate", event="canary_follow_up", decision="allowed",
              reason=comment[:2000])  # fmt: skip
    db_session.flush()
    return view.id


def after_verdict(
    *, db_session: Session, guard: Guard, request_id: str, verdict: str, summary: str, now: datetime
) -> Step | None:
    """Move an armed canary on after its verdict (not committed); None when the request is no canary."""
    row = canaries.get(db_session=db_session, request_id=request_id)
    if row is None or row.state != "armed":
        return None
    if verdict in PASSES:
        wait = row.second_approval
        comment = f"the rest of canary {request_id}, approved with it (the canary was {verdict})"
        rest = _follow_up(db_session, guard, request_id, reason=f"rest of canary {request_id}: {summary}",
                          approve=not wait, comment=comment)  # fmt: skip
        original = checks.get(db_session=db_session, request_id=request_id)
        if rest is not None and original is not None and original.auto_undo:  # the choice covers the rest
            checks.arm(db_session=db_session, request_id=rest, action=row.action, target=row.target,
                       incident_id=row.incident_id)  # fmt: skip
        canaries.settle(db_session=db_session, request_id=request_id, state="passed", verdict=verdict,
                        now=now, rest_request_id=rest)  # fmt: skip
        if rest is None:
            note = "canary passed, but the guardrails refuse the rest now; propose it again"
        elif wait:
            note = f"canary passed; the rest ({rest}) waits for a second approval"
        else:
            note = f"canary passed; rolling out to the rest ({rest})"
        step = Step(True, rest, None, wait and rest is not None, note)
    else:
        comment = f"undo of canary {request_id}, chosen with its approval (the canary was {verdict})"
        undo = _follow_up(db_session, guard, request_id, reason=f"undo of canary {request_id}: {summary}",
                          approve=True, comment=comment)  # fmt: skip
        canaries.settle(db_session=db_session, request_id=request_id, state="failed", verdict=verdict,
                        now=now, undo_request_id=undo)  # fmt: skip
        note = "canary failed; the rest is not run" + (
            f" and the canary is undone ({undo})" if undo else "; the guardrails refuse its undo now"
        )
        step = Step(False, None, undo, False, note)
    audit(db_session, load(db_session, request_id), actor="remediate", event="canary",
          decision="info", reason=f"{verdict}: {step.note}"[:2000])  # fmt: skip
    return step
