"""Registers the Slack-native surfaces: App Home, the declare and switch modals, shortcuts, controls.

Listeners ack first; what is slow (opening a modal, publishing a home view) runs on the work pool. A
form's submission is checked in its ack, so refusals show on the form (`bot.app.modals`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, Protocol

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.app import controls, modals
from bot.app.home import HOME_BUTTONS, SWITCH_BUTTONS, HomeTabs, decide_from_home
from bot.app.tenancy import actor
from bot.notify.delivery import OutboxWorker
from bot.services import Services

log = logging.getLogger("remediate.bot")
COMMAND = "/remediate"


class Host(Protocol):
    """What the surfaces need from the app's listeners."""

    services: Services
    worker: OutboxWorker
    changed: list[Callable[[], None]]
    acked_elsewhere: bool  # the work process: the front checked the request and sent the ack

    def after_ack(self, job: Callable[[], None]) -> None:
        """Run a job on the work pool after the ack."""

    def button(self, body: dict[str, Any], handler: Any = None) -> None:
        """Answer a card button through the outbox (ephemeral to the clicker)."""


def bare_declare(body: dict[str, Any]) -> bool:
    """Whether a command is `declare` alone (it opens the form)."""
    return str(body.get("text", "")).strip().lower() == "declare"


def _message_text(body: dict[str, Any]) -> str:
    message = body.get("message") or {}
    return str(message.get("text") or "")


def _open_view(host: Host, error_text: Callable[[Exception], str], client: WebClient, body: dict[str, Any], view: dict[str, Any]) -> None:  # fmt: skip
    """Open a modal for the trigger in ``body``; a failure is answered to the person (ephemeral)."""
    try:
        client.views_open(trigger_id=body["trigger_id"], view=view)
    except Exception as exc:
        user = (body.get("user") or {}).get("id") or body.get("user_id", "")
        channel = body.get("channel_id") or (body.get("channel") or {}).get("id", "")
        host.worker.respond(
            response_url=body.get("response_url"), channel=channel, user=user, text=error_text(exc)
        )
        host.worker.wake()


def mount(bolt: App, host: Host, error_text: Callable[[Exception], str]) -> HomeTabs:
    """Register the surfaces' listeners (before the command listener and any catch-all); return App Home."""
    homes = HomeTabs(host.services, host.worker.client, host.after_ack)
    host.changed.append(homes.refresh)
    controls.mount(bolt, host)
    _mount_forms(bolt, host, homes, error_text)
    _mount_home(bolt, host, homes, error_text)
    return homes


def _mount_forms(bolt: App, host: Host, homes: HomeTabs, error_text: Callable[[Exception], str]) -> None:
    """The declare form's three ways in (bare command, global and message shortcuts) and both submissions."""
    services = host.services

    def open_view(client: WebClient, body: dict[str, Any], view: dict[str, Any]) -> None:
        _open_view(host, error_text, client, body, view)

    @bolt.command(COMMAND, matchers=[bare_declare])
    def on_declare(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack(text="Opening the declare form…")  # an ephemeral line: every command gets an answer
        host.after_ack(lambda: open_view(client, body, modals.declare_view(services, user=body["user_id"])))

    @bolt.shortcut(modals.DECLARE)
    def on_global(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        user = body["user"]["id"]
        host.after_ack(lambda: open_view(client, body, modals.declare_view(services, user=user)))

    @bolt.shortcut(modals.FROM_MESSAGE)
    def on_message(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        user, text = body["user"]["id"], _message_text(body)
        title = text.strip().splitlines()[0] if text.strip() else ""
        view = modals.declare_view(services, user=user, title=title, description=text)
        host.after_ack(lambda: open_view(client, body, view))

    def submitted(submit: Callable[..., dict[str, Any] | None], block: str) -> Callable[..., None]:
        def on_submit(ack: Ack, body: dict[str, Any]) -> None:
            if host.acked_elsewhere:  # the front saved the form in its ack; the work process only republishes
                ack()
                homes.refresh()
                return
            # answered in the ack (Slack shows refusals on the form): one short transaction before it
            try:
                answer = submit(
                    services, user=actor(services, body, body["user"]["id"]), view=body.get("view") or {}
                )
            except Exception as exc:
                answer = {"response_action": "errors", "errors": {block: error_text(exc)[:150]}}
            if answer:
                ack(**answer)
            else:
                ack()
            host.worker.wake()
            if answer is None:  # App Homes show the change (split in two processes: the work process's)
                host.after_ack(homes.refresh)

        return on_submit

    bolt.view(modals.DECLARE)(submitted(modals.submit_declare, "title"))
    bolt.view(modals.SWITCH)(submitted(modals.submit_switch, "reason"))


def _mount_home(bolt: App, host: Host, homes: HomeTabs, error_text: Callable[[Exception], str]) -> None:
    """App Home: publish when opened; its Approve and Reject buttons; its switch buttons open the form."""
    services = host.services

    @bolt.event("app_home_opened")
    def on_home(ack: Ack, body: dict[str, Any], event: dict[str, Any]) -> None:
        ack()
        if event.get("tab", "home") == "home":
            host.after_ack(lambda: homes.publish(actor(services, body, str(event["user"]))))

    @bolt.action(re.compile(rf"\A({'|'.join(HOME_BUTTONS)})\Z"))
    def on_home_button(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        action, user = body["actions"][0], body["user"]["id"]

        def work() -> None:
            try:
                notice = decide_from_home(services, user=actor(services, body, user), action_id=action["action_id"], request_id=str(action.get("value", "")))  # fmt: skip
            except Exception as exc:
                notice = error_text(exc)
            host.worker.wake()
            homes.publish(actor(services, body, user), notice)
            homes.refresh()

        host.after_ack(work)

    @bolt.action(re.compile(rf"\A({'|'.join(SWITCH_BUTTONS)})\Z"))
    def on_switch_button(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        kind, _, state = str(body["actions"][0].get("value", "")).partition(":")
        view = modals.switch_view(services, kind=kind, state=state)
        host.after_ack(lambda: _open_view(host, error_text, client, body, view))
