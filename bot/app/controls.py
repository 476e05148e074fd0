"""Safety controls on the card: a suggestion's dry run, cancelling a pending request (switches: `bot.app.switches`).

Each is the same guarded, audited service call the command line and the workflow use: a dry run asks
the configured executor for its plan (``dry_run=True``: nothing runs) and writes a ``dry_run`` audit
entry, a cancel goes through `approvals.cancel` (its requester or an eligible approver; refusals
audited). Buttons carry only the suggestion's token, resolved like the card's other buttons.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from slack_bolt import Ack, App

from bot.app.clicks import CardRef, shown_suggestion
from bot.app.commands import Outcome, Reply
from bot.app.declare import need_role
from bot.app.errors import NotAllowedError, UsageError, incident_named
from bot.app.requests import after_request_change
from bot.app.tenancy import check_workspace
from bot.notify.cards import target_label
from bot.notify.delivery import OutboxWorker
from bot.notify.mrkdwn import escape, mention
from bot.services import Services
from remediation.approvals import service as approvals
from remediation.approvals import states as st
from remediation.audit.service import append, lock_chain
from remediation.errors import RemediationError
from remediation.executors.base import Canary, ExecRequest, supports_canary
from remediation.executors.base import Outcome as ExecOutcome
from remediation.executors.routing import advisory, runs
from remediation.verification import canary

CONTROL_BUTTONS = re.compile(r"\A(dryrun|cancel):\d+\Z")


def _with_canary(services: Services, request: ExecRequest, outcome: ExecOutcome) -> ExecOutcome:
    """Add what "Canary first" would do to a dry run, where the card offers it (docs/verification.md)."""
    executor = services.executor
    offered = canary.offered(services.guard, request.action.id, request.target, services.topology)
    if executor is None or not offered or not supports_canary(executor, request.action.id):
        return outcome
    first = executor.execute(replace(request, canary=Canary(services.settings.canary_share)), dry_run=True)
    detail = f"{outcome.detail}; with Canary first: {first.detail}"
    return replace(outcome, detail=detail, commands=outcome.commands + first.commands)


def dry_run(services: Services, *, user: str, value: str, card: CardRef) -> Outcome:
    """Show what the executor would do for a suggestion: its dry run, audited; nothing runs."""
    with incident_named(), services.sessions() as s:
        shown = shown_suggestion(services, s, value, card)
        try:
            need_role(services, user, "dry-run actions")
        except NotAllowedError as exc:  # refused like any guarded step: audited
            lock_chain(db_session=s)
            append(db_session=s, actor=user, event="dry_run", decision="denied", reason=str(exc)[:2000],
                   action=shown.action, target=shown.target, incident_id=shown.incident_id,
                   policy_version=services.rbac.policy_version)  # fmt: skip
            s.commit()
            raise
        label = target_label(shown.action, shown.target)
        if services.executor is None or not runs(services.executor, shown.action):
            note = advisory(services.executor) or "this action is routed to no executor"
            return Outcome(Reply(f"Dry run of {label}: nothing would run. {escape(note)}"))
        request = ExecRequest(
            request_id=shown.request_id or f"dry-run-{shown.token}",
            action=services.catalog.get(shown.action),
            target=shown.target,
            params=dict(shown.params),
            incident_id=shown.incident_id,
        )
        outcome = _with_canary(services, request, services.executor.execute(request, dry_run=True))
        lock_chain(db_session=s)
        append(
            db_session=s, actor=user, event="dry_run", decision="info",
            reason=f"{services.executor.kind}: {outcome.detail}"[:2000], action=shown.action,
            target=shown.target, params=dict(shown.params), incident_id=shown.incident_id,
            request_id=shown.request_id, policy_version=services.rbac.policy_version,
        )  # fmt: skip
        s.commit()
    plan = "\n".join(f"• `{escape(str(step))}`" for step in outcome.commands) if outcome.commands else ""
    text = f"Dry run of {label} ({escape(services.executor.kind)}): {escape(outcome.detail)}. Nothing ran."
    return Outcome(Reply(text + ("\n" + plan if plan else "")))


def cancel(services: Services, *, user: str, value: str, card: CardRef) -> Outcome:
    """Cancel a suggestion's open request: its requester or someone who may approve it (refusals audited)."""
    with incident_named(), services.sessions() as s:
        shown = shown_suggestion(services, s, value, card)
        check_workspace(services, actor=user, verb="cancel", incident_id=shown.incident_id)  # audited
        if shown.request_id is None:
            raise UsageError("nothing to cancel: this suggestion has no request yet")
        current = approvals.get(db_session=s, request_id=shown.request_id)
        if current.state not in st.OPEN:
            raise UsageError(f"request {current.id} is already {current.state}; nothing to cancel")
        try:
            view = approvals.cancel(
                db_session=s, guard=services.guard, request_id=current.id, actor=user,
                reason=f"cancelled from Slack by {user}",
            )  # fmt: skip
        except RemediationError:
            s.rollback()
            raise
        text = after_request_change(services, s, view, user)
        s.commit()
    return Outcome(Reply(f"{mention(user)}: {text}"), queued=True)


class Host(Protocol):
    """What these listeners need from the app's listeners: services, outbox, work pool, error path."""

    services: Services
    worker: OutboxWorker

    def after_ack(self, job: Callable[[], None]) -> None:
        """Run a job on the work pool after the ack."""

    def button(self, body: dict[str, Any], handler: Any = None) -> None:
        """Answer a card button through the outbox (ephemeral to the clicker)."""


ACTIONS: dict[str, Callable[..., Outcome]] = {"dryrun": dry_run, "cancel": cancel}


def control_click(services: Services, *, user: str, action_id: str, value: str, card: CardRef) -> Outcome:
    """Dispatch a card's Dry run or Cancel button."""
    verb = action_id.partition(":")[0]
    if verb not in ACTIONS:
        raise UsageError(f"unknown button {action_id!r}")
    return ACTIONS[verb](services, user=user, value=value, card=card)


def mount(bolt: App, host: Host) -> None:
    """Register the card's Dry run and Cancel buttons (before any catch-all)."""

    @bolt.action(CONTROL_BUTTONS)
    def on_control(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        host.after_ack(lambda: host.button(body, control_click))
