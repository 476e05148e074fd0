"""Verified remediation in the bot: schedule a verdict after each run, judge due ones, announce them.

* After a request ``succeeded``, its verification is scheduled in the same transaction as the run's
  timeline entry (`bot.app.requests`): due after the action's settle time (`settings.verify_settle_s`,
  else the catalog).
* Every ``verify_every_s`` a job claims due verifications (a lease per row, so one replica judges each),
  judges them (`remediation.verification.service`), and announces each verdict: the card is refreshed
  (re-ranked with the failed action demoted, see `bot.notify.suggest`) and the thread gets the verdict
  with its evidence. A harmful verdict with "undo automatically" queues its inverse on the runner; an
  undo left approved by a replica that stopped is queued again (it still runs once: a request is
  claimed once).
* A canary's verdict (docs/verification.md, "Canary first") queues its undo, or the rest of the
  rollout when no second approval is needed; either left approved by a stopped replica is queued again.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from bot.app.requests import record_run, run_inline
from bot.notify.cards import target_label
from bot.notify.delivery import announce, post_in_thread
from bot.notify.mrkdwn import escape
from bot.services import Services
from incidents_db import canaries
from incidents_db import verifications as store
from remediation.approvals import states as st
from remediation.verification import service as verification
from remediation.verification.service import Verified

log = logging.getLogger("remediate.verify")
ICON = {"effective": "✅", "partial": "🟡", "ineffective": "❌", "harmful": "⚠️"}


def verdict_text(done: Verified) -> str:
    """Return the thread message of a verdict: what, the verdict, why, and the evidence."""
    j = done.judgement
    lines = [
        f"{ICON.get(j.verdict, '')} Verified {target_label(done.action, done.target)}: *{j.verdict}* ({escape(j.summary)})"
    ]
    lines += [f"• {escape(e)}" for e in j.evidence[:8]]
    step = done.canary
    if step is not None:  # docs/verification.md, "Canary first"
        lines[0] = f"🐤 Canary: {lines[0]}"
        lines.append(f"{'✅' if step.passed else '🛑'} {escape(step.note)}.")
        if step.waits_for_approval and step.rest_request_id:
            lines.append(f"To roll out to the rest: `/remediate approve {step.rest_request_id}`.")
    elif done.undo_request_id:
        lines.append("↩️ Undoing it automatically (chosen at approval).")
    elif j.verdict in ("ineffective", "partial"):
        lines.append("The card is re-ranked: the next fix is first; nothing runs without a new approval.")
    elif j.verdict == "harmful":
        lines.append("The card offers its undo first.")
    return "\n".join(lines)


def _announce(services: Services, done: Verified) -> None:
    if done.incident_id is None:
        return
    with services.sessions() as s:
        now = services.clock()
        post_in_thread(db_session=s, incident_id=done.incident_id, text=verdict_text(done), now=now)
        announce(db_session=s, incident_id=done.incident_id, now=now)
        s.commit()
    services.metrics.verdicts.labels(action=done.action, verdict=done.judgement.verdict).inc()


def _run_undo(services: Services, request_id: str) -> None:
    if services.runner is not None:
        services.runner.submit(request_id, "remediate")
        return
    with services.sessions() as s:
        view = run_inline(services, s, request_id=request_id, actor="remediate")
    record_run(services, view, "remediate")


def verify_due(services: Services) -> list[Verified]:
    """Judge every due verification this replica can claim, announce each verdict; return them."""
    owner = services.replica
    with services.sessions() as s:
        claimed = store.claim_due(
            db_session=s, now=services.clock(), owner=owner, lease_s=services.settings.execution_lease_s
        )
    done: list[Verified] = []
    for request_id in claimed:
        with services.sessions() as s:
            result = verification.verify_one(
                db_session=s,
                guard=services.guard,
                request_id=request_id,
                owner=owner,
                topology=services.topology,
            )
        if result is None:
            continue
        done.append(result)
        _announce(services, result)
        if result.undo_request_id:
            _run_undo(services, result.undo_request_id)
        step = result.canary
        for follow in (
            (step.undo_request_id, None if step.waits_for_approval else step.rest_request_id) if step else ()
        ):
            if follow:  # the canary's undo, or the rest approved with it
                _run_undo(services, follow)
    # an undo a stopped replica approved but never ran (older than a lease: not in a live runner's queue)
    stale = services.clock() - timedelta(seconds=services.settings.execution_lease_s)
    with services.sessions() as s:
        left = store.undo_requests(db_session=s, state=st.APPROVED, before=stale)
        left += canaries.followups(db_session=s, state=st.APPROVED, before=stale)  # rests and undos
    for request_id in left:
        _run_undo(services, request_id)
    return done


def verify_job(services: Services) -> None:
    """The scheduled job: never raises (a failed run is retried at the next tick)."""
    try:
        verify_due(services)
    except Exception:
        log.exception("verifying executed actions failed")
