"""What a person does outside a channel: open App Home, use a shortcut, click a button in a view.

Each builds the payload Slack sends (``app_home_opened`` event, ``shortcut``, ``message_action``,
``block_actions`` with a ``view`` container) and delivers it through the driver, as `AppDriver.click`
does for a message. A button that is not in the view is refused, as Slack's client would never send it.
"""

from __future__ import annotations

from typing import Any

from bot.sandbox.driver import AppDriver, Delivery
from bot.sandbox.errors import DeliveryError
from bot.sandbox.payloads import button_action, interaction_user


def _common(driver: AppDriver, user: str) -> dict[str, Any]:
    ws = driver.ws
    return {
        "team": {"id": ws.team_id, "domain": ws.config.team_domain},
        "user": interaction_user(ws, user),
        "api_app_id": ws.config.app_id,
        "token": ws.config.verification_token,
        "enterprise": None,
        "is_enterprise_install": False,
        "trigger_id": ws.issue_trigger(user),
    }


def open_home(driver: AppDriver, *, user: str) -> Delivery:
    """Open the app's Home tab as ``user`` (the ``app_home_opened`` event, with the view last published)."""
    ws = driver.ws
    home = ws.homes.get(user)
    channel = ws.open_im(user)["id"]
    event: dict[str, Any] = {"type": "app_home_opened", "user": user, "channel": channel, "tab": "home",
                             "event_ts": ws.new_ts()}  # fmt: skip
    if home is not None:
        event["view"] = {k: v for k, v in home.items() if k != "user"}
    return driver.event(event)


def global_shortcut(driver: AppDriver, *, user: str, callback_id: str) -> Delivery:
    """Use a global shortcut (the lightning menu) as ``user``."""
    payload = {
        "type": "shortcut",
        "callback_id": callback_id,
        "action_ts": driver.ws.new_ts(),
        **_common(driver, user),
    }
    return driver.deliver_interaction(payload, label=callback_id)


def message_shortcut(
    driver: AppDriver, *, user: str, channel: str, message_ts: str, callback_id: str
) -> Delivery:
    """Use a message shortcut (a message's "More actions" menu) on a stored message as ``user``."""
    ws = driver.ws
    chan = ws.channel(channel, by_name=True)
    message = ws.find_message(chan["id"], message_ts).to_slack(ws.team_id)
    payload = {
        "type": "message_action",
        "callback_id": callback_id,
        "action_ts": ws.new_ts(),
        "message_ts": message_ts,
        "channel": {"id": chan["id"], "name": chan["name"]},
        "message": message,
        "response_url": ws.issue_response_url(driver.sandbox_url, channel=chan["id"], user=user),
        **_common(driver, user),
    }
    return driver.deliver_interaction(payload, label=callback_id)


def click_view(driver: AppDriver, *, user: str, action_id: str, view_id: str | None = None) -> Delivery:
    """Click a button in ``user``'s App Home (no ``view_id``) or in one of their open modals."""
    ws = driver.ws
    view = ws.homes.get(user) if view_id is None else ws.views.get(view_id)
    if view is None or view.get("user") != user:
        raise DeliveryError(f"no {'App Home' if view_id is None else 'view ' + view_id} published for {user}")
    public = {k: v for k, v in view.items() if k != "user"}
    action = button_action(ws, {"blocks": view.get("blocks", []), "ts": view["id"]}, action_id, None)
    payload = {
        "type": "block_actions",
        "container": {"type": "view", "view_id": view["id"]},
        "view": public,
        "state": {"values": {}},
        "actions": [action],
        **_common(driver, user),
    }
    return driver.deliver_interaction(payload, label=action_id)


def act(driver: AppDriver, action: str, body: dict[str, Any]) -> dict[str, Any]:
    """Do what a person on the page did outside a channel (``home``, ``shortcut``, ``message_shortcut``, ``view_click``)."""
    user = str(body.get("user", ""))
    if action == "home":
        done = open_home(driver, user=user)
    elif action == "shortcut":
        done = global_shortcut(driver, user=user, callback_id=str(body.get("callback_id", "")))
    elif action == "message_shortcut":
        done = message_shortcut(
            driver, user=user, channel=str(body.get("channel", "")), message_ts=str(body.get("ts", "")),
            callback_id=str(body.get("callback_id", "")),
        )  # fmt: skip
    elif action == "view_click":
        done = click_view(
            driver, user=user, action_id=str(body.get("action_id", "")), view_id=body.get("view_id")
        )
    else:
        raise LookupError(f"unknown page action {action}")
    return {"ok": True, "delivery": done.summary()}


ACTIONS = frozenset({"home", "shortcut", "message_shortcut", "view_click"})
