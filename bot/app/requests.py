"""Approving or rejecting a request, and what that means for its incident (timeline, card)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from bot.app.execution import run_approved
from bot.notify.cards import target_label
from bot.notify.delivery import announce
from bot.notify.mrkdwn import escape
from bot.services import Services
from incidents_db import incidents
from remediation.approvals import service as approvals
from remediation.approvals import states as st
from remediation.executors.routing import ADVISORY, advisory, runs
from remediation.guardrails.rbac import membership_note
from remediation.verification import service as verification


def decide_request(
    services: Services,
    s: Session,
    *,
    user: str,
    verb: str,
    request_id: str,
    also: Callable[[Session], None] | None = None,
) -> approvals.RequestView:
    """Approve (running it at quorum) or reject a request as ``user``; refusals raise and are audited.

    At quorum the approval is recorded and the run handed to the action runner, so this returns at once
    (``approved``); the runner records the outcome on the timeline and the card when it is done.
    Without a runner (no app around the services) the request runs here, as before.
    """
    if verb == "approve":
        view = approvals.approve(
            db_session=s, guard=services.guard, request_id=request_id, approver=user, executor=None, also=also
        )
        services.metrics.approvals.labels(decision="approve").inc()  # recorded: refusals raised above
        if view.state != st.APPROVED or not runs(services.executor, view.action):
            return view
        if services.runner is not None:
            services.runner.submit(view.id, user)
            return view
        return run_inline(services, s, request_id=view.id, actor=user)
    view = approvals.reject(db_session=s, guard=services.guard, request_id=request_id, approver=user)
    services.metrics.approvals.labels(decision="reject").inc()
    return view


def run_inline(services: Services, s: Session, *, request_id: str, actor: str) -> approvals.RequestView:
    """Run an approved request in this thread (no runner), as the runner would; return its view."""
    view = run_approved(services, request_id, actor, on_late=lambda late, by: record_run(services, late, by))
    if view is not None:
        return view
    s.expire_all()  # it did not run: read what it is now (the runner's sessions changed it)
    return approvals.get(db_session=s, request_id=request_id)


def record_run(services: Services, view: approvals.RequestView, actor: str) -> None:
    """Put a finished run (or a late result) on its incident's timeline and refresh the card; commit."""
    with services.sessions() as s:
        after_request_change(services, s, view, actor)
        s.commit()


def after_request_change(services: Services, s: Session, view: approvals.RequestView, user: str) -> str:
    """Record what a request's change means for its incident (timeline, card) and describe it."""
    label = target_label(view.action, view.target)
    now = services.clock()
    if view.incident_id is not None:
        if view.state in (st.SUCCEEDED, st.FAILED, st.UNKNOWN):
            services.metrics.executions.labels(action=view.action, outcome=view.state).inc()
            outcome = incidents.execution_outcome(db_session=s, request_id=view.id)
            detail = str(outcome.get("detail", "")) if outcome is not None else view.note
            if view.late:
                detail = f"arrived late (after the request was marked unknown): {detail}"
            incidents.append(
                db_session=s,
                incident_id=view.incident_id,
                type_="action",
                at=now,
                action=view.action,
                target=view.target,
                params=dict(view.params),
                actor=",".join(view.approvers) or user,
                outcome=view.state,
                request_id=view.id,
                detail=detail[:500] or None,
                late=True if view.late else None,
            )
            if (
                view.state == st.SUCCEEDED and not view.late
            ):  # judged after its settle time (bot/app/verify.py)
                settle = verification.settle_of(
                    services.guard, view.action, view.target, services.settings.verify_settle_s
                )
                verification.schedule(
                    db_session=s, request_id=view.id, action=view.action, target=view.target,
                    incident_id=view.incident_id, settle_s=settle, now=now,
                )  # fmt: skip
        elif view.state in (st.REJECTED, st.PENDING):
            raw = f"{view.action} on {view.target}" if view.target else view.action  # escaped when shown
            text = (
                f"rejected {raw}"
                if view.state == st.REJECTED
                else f"approved {raw} ({len(view.approvers)} of {view.required_approvals})"
            )
            incidents.append(
                db_session=s, incident_id=view.incident_id, type_="note", at=now, actor=user, text=text
            )
        announce(db_session=s, incident_id=view.incident_id, now=now)
    stale = escape(membership_note(services.rbac, user))  # a role from a failing source's last answer
    if view.state == st.PENDING:
        return f"Approved {label}: {len(view.approvers)} of {view.required_approvals} approvals.{stale}"
    if view.state == st.APPROVED and runs(services.executor, view.action):
        return f"Approved {label}; running.{stale}"
    if view.state == st.APPROVED:
        note = advisory(services.executor) or f"Advisory mode: {ADVISORY}."
        return f"Approved {label}. {escape(note)}"
    if view.note:
        return f"{label}: {view.state}; {escape(view.note)}."
    if view.state == st.REJECTED:
        return f"Rejected {label}."
    return f"{label}: {view.state}."
