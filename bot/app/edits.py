"""Edit before approving: a modal changes a suggestion's parameters; the guardrails decide again.

The card's **Edit** button opens a modal with one field per parameter of the action (the suggestion's
values filled in). On submit the values are checked against the catalog (a value over a parameter's
``max`` is refused in the modal), then the guardrails decide on the edited request as on any other
(plan stage: limits, blast radius, freeze, kill switch; then the request stage when it is proposed); a
refusal is shown in the modal. An accepted edit becomes a new pending request with the edited
parameters (audited as requested by the editor's edit), a note on the timeline and a thread message
naming the change; it runs only after an approval like any other (docs/verification.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.app.clicks import parse_value
from bot.notify.delivery import OutboxWorker, announce, post_in_thread
from bot.notify.mrkdwn import escape, safe
from bot.services import Services
from incidents_db import incidents
from playbooks.models import Action
from remediation.approvals import service as approvals
from remediation.approvals import suggestions
from remediation.guardrails.decide import decide

VIEW = "fix_edit"  # callback id of the edit modal
BUTTON = re.compile(r"\Aedit:\d+\Z")


class Host(Protocol):
    """What the edit flow needs from the app's listeners."""

    services: Services
    worker: OutboxWorker

    def after_ack(self, job: Callable[[], None]) -> None:
        """Run a job on the work pool after the ack."""


def edit_view(shown: suggestions.Shown, spec: Action) -> dict[str, Any]:
    """Return the modal: one input per parameter, filled with the suggestion's values."""
    blocks = []
    for name, param in spec.params.items():
        value = shown.params.get(name, param.default)
        limits = " ".join(p for p in (f"min {param.min:g}" if param.min is not None else "",
                                      f"max {param.max:g}" if param.max is not None else "") if p)  # fmt: skip
        element: dict[str, Any] = {"type": "plain_text_input", "action_id": name}
        if value is not None:
            element["initial_value"] = str(value).lower() if isinstance(value, bool) else str(value)
        label = f"{name} ({param.type}{', ' + limits if limits else ''})"
        blocks.append({"type": "input", "block_id": name, "optional": not param.required, "element": element,
                       "label": {"type": "plain_text", "text": label[:2000]}})  # fmt: skip
    where = f" on {shown.target}" if shown.target else ""
    return {
        "type": "modal",
        "callback_id": VIEW,
        "private_metadata": shown.token,
        "title": {"type": "plain_text", "text": "Edit before approving"},
        "submit": {"type": "plain_text", "text": "Propose"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": safe(f"{shown.action}{where}", 300)}},
                   *blocks],
    }  # fmt: skip


def _typed(spec: Action, name: str, text: str) -> Any:
    kind = spec.params[name].type
    if kind == "bool":
        return {"true": True, "false": False}.get(text.strip().lower(), text)
    if kind in ("int", "float"):
        try:
            return float(text) if kind == "float" else int(text.strip(), 10)
        except ValueError:
            return text  # the catalog's check says what was expected
    return text


def edited_params(spec: Action, values: Mapping[str, Any]) -> dict[str, Any]:
    """Return the parameters typed in the modal (blank ones left out: the default applies)."""
    out = {}
    for name in spec.params:
        entry = (values.get(name) or {}).get(name) or {}
        text = entry.get("value") if isinstance(entry, Mapping) else None
        if isinstance(text, str) and text.strip():
            out[name] = _typed(spec, name, text)
    return out


def _errors(block: str, text: str) -> dict[str, Any]:
    return {"response_action": "errors", "errors": {block: text[:150]}}


def submit(services: Services, *, user: str, view: Mapping[str, Any]) -> dict[str, Any] | None:
    """Check an edited suggestion and propose it; a refusal is returned as the modal's errors."""
    values = (view.get("state") or {}).get("values") or {}
    with services.sessions() as s:
        shown = suggestions.find(db_session=s, token=str(view.get("private_metadata", "")))
        if shown is None:
            return _errors("_", "this suggestion is no longer on a card")
        spec = services.catalog.get(shown.action)
        first = next(iter(spec.params), "_")
        try:
            params = spec.validate_params(edited_params(spec, values))
        except ValueError as exc:
            name = next((n for n in spec.params if f"parameter {n}:" in str(exc)), first)
            return _errors(name, str(exc))
        rec = incidents.record(db_session=s, incident_id=shown.incident_id)
        requester = incidents.requester_of(rec) or services.settings.requester
        context = replace(
            approvals.build_context(db_session=s, guard=services.guard, stage="plan"), requester=requester
        )
        decision = decide(shown.action, shown.target, params, None, context)
        if not decision.allowed:
            return _errors(first, decision.reason)
        changed = ", ".join(
            f"{k} {shown.params.get(k)} → {v}" for k, v in params.items() if shown.params.get(k) != v
        )
        view_ = approvals.propose(
            db_session=s, guard=services.guard, action=shown.action, target=shown.target, params=params,
            requester=requester, incident_id=shown.incident_id,
            reason=f"edited by {user} before approving: {changed or 'no change'}", commit=False,
        )  # fmt: skip
        where = f" on {shown.target}" if shown.target else ""
        text = f"edited {shown.action}{where} before approving: {changed or 'no change'}; request {view_.id} waits for approval"
        now = services.clock()
        incidents.append(db_session=s, incident_id=shown.incident_id, type_="note", at=now, actor=user, text=text,
                         request_id=view_.id, edited=dict(params))  # fmt: skip
        post_in_thread(db_session=s, incident_id=shown.incident_id, now=now,
                       text=f"✏️ {escape(text)}. Approve it with `/remediate approve {view_.id}`.")  # fmt: skip
        announce(db_session=s, incident_id=shown.incident_id, now=now)
        s.commit()
    return None


def mount(bolt: App, host: Host, error_text: Callable[[Exception], str]) -> None:
    """Register the card's Edit button and the modal's submission (before any catch-all)."""

    @bolt.action(BUTTON)
    def on_button(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        host.after_ack(lambda: _open(host, body, client))

    @bolt.view(VIEW)
    def on_submit(ack: Ack, body: dict[str, Any]) -> None:
        # answered in the ack: Slack shows a refusal on the modal, next to the field
        try:
            answer = submit(host.services, user=body["user"]["id"], view=body.get("view") or {})
        except Exception as exc:
            answer = _errors("_", error_text(exc))
        if answer is None:
            ack()
        else:
            ack(**answer)
        host.worker.wake()


def _open(host: Host, body: dict[str, Any], client: WebClient) -> None:
    token = parse_value(str(body["actions"][0].get("value", ""))) or ""
    with host.services.sessions() as s:
        shown = suggestions.find(db_session=s, token=token)
    if shown is None:
        return
    client.views_open(
        trigger_id=body["trigger_id"], view=edit_view(shown, host.services.catalog.get(shown.action))
    )
