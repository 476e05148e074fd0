"""The sandbox's own JSON API under `/_sandbox/`: what tests and the page read, and what they control.

GET  state | messages?channel=&thread_ts= | ephemerals?channel=&user= | views?user= | calls?method=
     | deliveries | faults | socket_mode | ui?channel=&user=
POST faults {method, kind, count, retry_after, status, hang_s, then, error} | rate_limits {method, per_minute,
     burst} or {enabled} | clock {advance} | reset | act/command | act/message | act/click
     | act/view_submit | act/view_close | act/home | act/shortcut | act/message_shortcut | act/view_click
     | act/usergroup {usergroup, users}: new members, and Slack's `subteam_members_changed` to the app
DELETE faults
"""

from __future__ import annotations

from typing import Any

import bot.sandbox.surfaces as surfaces
from bot.sandbox.core import SandboxCore
from bot.sandbox.driver import AppDriver
from bot.sandbox.errors import ApiError, SandboxError
from bot.sandbox.limits import parse_fault
from bot.sandbox.webapi.users import set_usergroup_members


def _channel_id(sandbox: SandboxCore, ref: str) -> str:
    if not ref:
        raise SandboxError("channel is required (an id like C0INCIDENT or a name like incidents)")
    try:
        return str(sandbox.workspace.channel(ref, by_name=True)["id"])
    except ApiError:
        raise LookupError(f"channel_not_found: {ref}") from None


def messages(sandbox: SandboxCore, channel: str, thread_ts: str | None = None) -> list[dict[str, Any]]:
    """Return every message of a channel (thread replies included), oldest first."""
    ws = sandbox.workspace
    cid = _channel_id(sandbox, channel)
    with ws.lock:
        found = [m.to_slack(ws.team_id) | {"channel": cid} for m in ws.messages.get(cid, [])]
    if thread_ts:
        found = [m for m in found if thread_ts in (m["ts"], m.get("thread_ts"))]
    return found


def _ui(sandbox: SandboxCore, query: dict[str, str]) -> dict[str, Any]:
    """Return everything the page shows for one channel and one viewing user."""
    ws = sandbox.workspace
    user = query.get("user") or ws.config.users[0].id
    with ws.lock:
        state = _state(sandbox)
        cid = _channel_id(sandbox, query.get("channel") or next(iter(ws.channels)))
        all_messages = messages(sandbox, cid)
        tops = [m for m in all_messages if m.get("thread_ts") in (None, m["ts"])]
        for top in tops:
            top["replies"] = [
                m for m in all_messages if m.get("thread_ts") == top["ts"] and m["ts"] != top["ts"]
            ]
        return {
            **state,
            "channel": cid,
            "user": user,
            "messages": tops,
            "ephemerals": [e.to_slack() for e in ws.ephemerals if e.channel == cid and e.user == user],
            "views": [v for v in ws.views.values() if v["user"] == user],
            "home": ws.homes.get(user),
            "deliveries": list(ws.deliveries)[-15:],
            "app_connected": sandbox.driver is not None
            and (sandbox.driver.socket is None or sandbox.socket_mode.connections > 0),
            "transport": sandbox.driver.transport if sandbox.driver is not None else None,
        }


def _state(sandbox: SandboxCore) -> dict[str, Any]:
    ws = sandbox.workspace
    cfg = ws.config
    with ws.lock:
        return {
            "version": ws.version,
            "guide": list(sandbox.options.guide),
            "team": {"id": cfg.team_id, "domain": cfg.team_domain, "name": cfg.team_name},
            "bot": {
                "user_id": cfg.bot_user_id,
                "bot_id": cfg.bot_id,
                "app_id": cfg.app_id,
                "name": cfg.bot_name,
            },
            "users": [ws.user_json(u) for u in ws.users.values()],
            "channels": [
                ws.channel_json(c) | {"members": sorted(c["members"])} for c in ws.channels.values()
            ],
            "usergroups": [g.__dict__ | {"users": list(g.users)} for g in ws.usergroups.values()],
        }


def inspect(sandbox: SandboxCore, name: str, query: dict[str, str]) -> Any:
    """Answer a GET under `/_sandbox/`."""
    ws = sandbox.workspace
    if name == "state":
        return _state(sandbox)
    if name == "messages":
        return {"ok": True, "messages": messages(sandbox, query.get("channel", ""), query.get("thread_ts"))}
    if name == "ephemerals":
        cid = _channel_id(sandbox, query["channel"]) if query.get("channel") else None
        with ws.lock:
            found = [
                e.to_slack()
                for e in ws.ephemerals
                if (cid is None or e.channel == cid) and (not query.get("user") or e.user == query["user"])
            ]
        return {"ok": True, "ephemerals": found}
    if name == "views":
        with ws.lock:
            return {
                "ok": True,
                "views": [v for v in ws.views.values() if v["user"] == query.get("user", v["user"])],
            }
    if name == "calls":
        with ws.lock:
            calls = [c.to_json() for c in ws.calls if c.method == query.get("method", c.method)]
        return {"ok": True, "calls": calls}
    if name == "deliveries":
        with ws.lock:
            return {"ok": True, "deliveries": list(ws.deliveries)}
    if name == "faults":
        return {"ok": True, "faults": sandbox.limiter.faults()}
    if name == "ui":
        return _ui(sandbox, query)
    if name == "health":
        return {"ok": True}
    if name == "socket_mode":
        hub = sandbox.socket_mode
        return {
            "ok": True,
            "connections": hub.connections,
            "transport": sandbox.driver.transport if sandbox.driver is not None else None,
        }
    raise LookupError(f"unknown inspection endpoint /_sandbox/{name}")


def _driver(sandbox: SandboxCore) -> AppDriver:
    if sandbox.driver is None:
        raise SandboxError(
            "no app connected; start the sandbox with --app-url and --signing-secret, "
            "or connect the app in Socket Mode"
        )
    return sandbox.driver


def control(sandbox: SandboxCore, verb: str, name: str, body: dict[str, Any]) -> Any:
    """Answer a POST or DELETE under `/_sandbox/`."""
    if name == "faults" and verb == "DELETE":
        sandbox.limiter.clear()
        return {"ok": True}
    if name == "faults":
        fault = parse_fault(body)
        sandbox.limiter.add_fault(fault)
        return {"ok": True, "fault": fault.to_json()}
    if name == "rate_limits":
        if "enabled" in body:
            sandbox.limiter.enabled = bool(body["enabled"])
            return {"ok": True, "enabled": sandbox.limiter.enabled}
        try:
            limit = sandbox.limiter.set_limit(
                str(body["method"]),
                per_minute=float(body["per_minute"]),
                burst=float(body["burst"]) if body.get("burst") is not None else None,
            )
        except (KeyError, TypeError, ValueError):
            raise SandboxError("rate_limits: expected {method, per_minute[, burst]} or {enabled}") from None
        return {"ok": True, "limit": limit.__dict__}
    if name == "clock":
        sandbox.workspace.clock.advance(float(body.get("advance", 0)))
        return {"ok": True, "now": sandbox.workspace.clock.now()}
    if name == "reset":
        sandbox.workspace.reset()
        sandbox.limiter.clear()
        return {"ok": True}
    if name.startswith("act/"):
        return _act(sandbox, name[4:], body)
    raise LookupError(f"unknown control endpoint /_sandbox/{name}")


def _act(sandbox: SandboxCore, action: str, body: dict[str, Any]) -> Any:
    """Do what a person on the page did, through the driver."""
    driver = _driver(sandbox)
    if action in surfaces.ACTIONS:  # App Home, shortcuts, buttons in views
        return surfaces.act(driver, action, body)
    if action == "usergroup":  # an admin edits a user group; Slack tells the app
        users = [str(u) for u in body.get("users") or []]
        try:
            event = set_usergroup_members(sandbox.workspace, str(body.get("usergroup", "")), users)
        except ApiError as exc:
            raise SandboxError(f"usergroup: {exc.error}") from None
        return {"ok": True, "delivery": driver.event(event).summary()}
    user, channel = str(body.get("user", "")), str(body.get("channel", ""))
    if action == "command":
        text = str(body.get("text", "")).strip()
        command, _, rest = text.partition(" ")
        if not command.startswith("/"):
            raise SandboxError("a slash command starts with /, e.g. /remediate help")
        return {
            "ok": True,
            "delivery": driver.slash_command(
                user=user, channel=channel, text=rest, command=command
            ).summary(),
        }
    if action == "message":
        text = str(body.get("text", ""))
        thread_ts = body.get("thread_ts") or None
        driver.in_background(driver.user_message, user=user, channel=channel, text=text, thread_ts=thread_ts)
        return {"ok": True}
    if action == "click":
        delivery = driver.click(
            user=user,
            channel=channel,
            message_ts=str(body.get("ts", "")),
            action_id=str(body.get("action_id", "")),
            block_id=body.get("block_id"),
        )
        return {"ok": True, "delivery": delivery.summary()}
    if action == "view_submit":
        delivery = driver.submit_view(
            user=user, view_id=str(body.get("view_id")), values=body.get("values") or {}
        )
        return {"ok": True, "delivery": delivery.summary()}
    if action == "view_close":
        closed = driver.close_view(user=user, view_id=str(body.get("view_id")))
        return {"ok": True, "delivery": closed.summary() if closed else None}
    raise LookupError(f"unknown page action {action}")
