"""Modals: the declare form (`/remediate declare`, the global and message shortcuts) and the switch form.

The forms are validated in the submission's ack, so Slack shows a refusal on the field at fault
(``response_action: errors``): a missing severity, title or service, no role to declare, a switch
the person may not flip (refused and audited by `set_switch`).
"""

from __future__ import annotations

import json
from typing import Any

from bot.app.declare import open_incident
from bot.app.errors import AppError
from bot.app.switches import flip_switch
from bot.notify.mrkdwn import clip
from bot.services import Services
from incidents_db import outbox
from incidents_db.incidents import SEVERITIES
from incidents_db.locks import lock_incidents
from incidents_db.roles import ROLES
from remediation.errors import RemediationError

DECLARE = "declare_incident"  # the modal's callback id, and the global shortcut's
FROM_MESSAGE = "incident_from_message"  # the message shortcut's callback id
SWITCH = "safety_switch"
MAX_OPTIONS = 100  # Slack's limit for a static select


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, 75)}


def _option(value: str) -> dict[str, Any]:
    return {"text": _plain(value), "value": value[:150]}


def _input(block: str, label: str, element: dict[str, Any], optional: bool = False) -> dict[str, Any]:
    return {"type": "input", "block_id": block, "label": _plain(label), "optional": optional,
            "element": {**element, "action_id": block}}  # fmt: skip


def declare_view(services: Services, *, user: str, description: str = "", title: str = "") -> dict[str, Any]:
    """Return the declare modal: title, severity, services (from the graph), commander, scribe, description."""
    graph = sorted(services.topology.services) if services.topology is not None else []
    text_in: dict[str, Any] = {"type": "plain_text_input", "max_length": 150}
    blocks = [
        _input("title", "Title", {**text_in, **({"initial_value": title[:150]} if title else {})}),
        _input(
            "severity", "Severity", {"type": "static_select", "options": [_option(s) for s in SEVERITIES]}
        ),
        _input(
            "services",
            "Services",
            {"type": "multi_static_select", "options": [_option(s) for s in graph[:MAX_OPTIONS]]},
        )
        if graph
        else _input("services", "Services (comma separated)", {"type": "plain_text_input"}),
        _input("commander", "Incident commander", {"type": "users_select", "initial_user": user}),
        _input("scribe", "Scribe", {"type": "users_select"}, optional=True),
        _input(
            "description",
            "Description",
            {
                "type": "plain_text_input",
                "multiline": True,
                "max_length": 2900,
                **({"initial_value": description[:2900]} if description else {}),
            },
            optional=True,
        ),
    ]
    return {"type": "modal", "callback_id": DECLARE, "title": _plain("Declare incident"),
            "submit": _plain("Declare"), "close": _plain("Cancel"), "blocks": blocks}  # fmt: skip


def _values(view: dict[str, Any]) -> dict[str, Any]:
    """Return block id -> the submitted value (text, option value(s) or user id), None when empty."""
    out: dict[str, Any] = {}
    for block, actions in ((view.get("state") or {}).get("values") or {}).items():
        for element in (actions or {}).values():
            if not isinstance(element, dict):
                continue
            if "selected_options" in element:
                out[block] = [o.get("value") for o in element["selected_options"] or []] or None
            elif "selected_option" in element:
                out[block] = (element["selected_option"] or {}).get("value")
            elif "selected_user" in element:
                out[block] = element["selected_user"]
            else:
                out[block] = (element.get("value") or "").strip() or None
    return out


def _declare_fields(services: Services, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Check the submitted declare form; return the fields and the errors by block id."""
    errors: dict[str, str] = {}
    title, severity, chosen = values.get("title"), values.get("severity"), values.get("services")
    if not title:
        errors["title"] = "Give the incident a title."
    if severity not in SEVERITIES:
        errors["severity"] = f"Choose a severity ({', '.join(SEVERITIES)})."
    if isinstance(chosen, str):
        chosen = [s.strip() for s in chosen.split(",") if s.strip()]
    if not chosen:
        errors["services"] = "Choose at least one service."
    graph = set(services.topology.services) if services.topology is not None else set()
    if graph and chosen and not set(chosen) <= graph:
        errors["services"] = "Choose services from the list."
    fields = {"title": title, "severity": severity, "services_": chosen or [],
              "description": values.get("description") or ""}  # fmt: skip
    fields.update({role: values.get(role) for role in ROLES})
    return fields, errors


def submit_declare(services: Services, *, user: str, view: dict[str, Any]) -> dict[str, Any] | None:
    """Declare the incident a submitted form describes; return the ack's ``errors`` answer, or None."""
    fields, errors = _declare_fields(services, _values(view))
    if errors:
        return {"response_action": "errors", "errors": errors}
    try:
        with services.sessions() as s:
            lock_incidents(db_session=s)
            open_incident(services, s, user=user, **fields)
            s.commit()
    except (AppError, RemediationError) as exc:
        return {"response_action": "errors", "errors": {"title": str(exc)[:150]}}
    return None


def switch_view(services: Services, *, kind: str, state: str) -> dict[str, Any]:
    """Return the form that turns the freeze or kill switch on or off: scope and reason."""
    graph = sorted(services.topology.services) if services.topology is not None else []
    label = "freeze" if kind == "freeze" else "kill switch"
    scope = _input("service", "Service (empty: every service)", {"type": "static_select", "options": [_option(s) for s in graph[:MAX_OPTIONS]]}, optional=True)  # fmt: skip
    reason = _input("reason", "Reason (for the audit log)", {"type": "plain_text_input", "max_length": 500}, optional=state == "off")  # fmt: skip
    return {"type": "modal", "callback_id": SWITCH, "private_metadata": json.dumps({"kind": kind, "state": state}),
            "title": _plain(f"Turn the {label} {state}"), "submit": _plain(f"{state.title()}"),
            "close": _plain("Cancel"), "blocks": ([scope] if graph else []) + [reason]}  # fmt: skip


def submit_switch(services: Services, *, user: str, view: dict[str, Any]) -> dict[str, Any] | None:
    """Flip the switch a submitted form names (refusals audited); return the ack's ``errors``, or None."""
    meta = json.loads(view.get("private_metadata") or "{}")
    kind, state = meta.get("kind"), meta.get("state")
    if kind not in ("freeze", "kill") or state not in ("on", "off"):
        return {"response_action": "errors", "errors": {"reason": "This form is not one remediate opened."}}
    values = _values(view)
    try:
        with services.sessions() as s:
            said = flip_switch(
                services, s, user=user, kind=kind, engaged=state == "on",
                service=values.get("service"), reason=values.get("reason") or "",
            )  # fmt: skip
            # the channel hears of it, as of the command (through the outbox, committed with the flip)
            payload = {"channel": services.settings.incident_channel, "text": said, "thread_ts": None}
            outbox.enqueue(db_session=s, kind="message", payload=payload, now=services.clock())
            s.commit()
    except (AppError, RemediationError) as exc:
        return {"response_action": "errors", "errors": {"reason": str(exc)[:150]}}
    return None
