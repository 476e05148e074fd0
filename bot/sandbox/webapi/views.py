"""The `views.*` family: open a modal for a fresh `trigger_id`, update it by id or external id, publish a home."""

from __future__ import annotations

from typing import Any

from bot.sandbox.blockkit import check_view
from bot.sandbox.errors import ApiError
from bot.sandbox.webapi.args import Args
from bot.sandbox.workspace import Workspace


def _view_json(ws: Workspace, view_id: str, view: dict[str, Any], user: str) -> dict[str, Any]:
    """Return a stored view as Slack describes it (with the owning `user`, which the API hides)."""
    out = {
        "id": view_id,
        "team_id": ws.team_id,
        "type": view.get("type", "modal"),
        "title": view.get("title"),
        "submit": view.get("submit"),
        "close": view.get("close"),
        "blocks": view.get("blocks", []),
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""),
        "external_id": view.get("external_id", ""),
        "state": {"values": {}},
        "hash": ws.new_id("H", 16).lower(),
        "clear_on_close": bool(view.get("clear_on_close", False)),
        "notify_on_close": bool(view.get("notify_on_close", False)),
        "root_view_id": view_id,
        "previous_view_id": None,
        "app_id": ws.config.app_id,
        "app_installed_team_id": ws.team_id,
        "bot_id": ws.config.bot_id,
        "user": user,
    }
    return out


def _checked_view(args: Args) -> dict[str, Any]:
    """Return the `view` argument checked as Slack checks it, or `invalid_arguments`."""
    view = args.parsed("view", error="invalid_arguments")
    errors = check_view(view)
    if errors:
        raise ApiError("invalid_arguments", extra={"response_metadata": {"messages": errors}})
    assert isinstance(view, dict)
    return view


def views_open(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Open a modal for the user behind a fresh `trigger_id`."""
    trigger = ws.use_trigger(args.text("trigger_id", error="invalid_trigger_id"))
    view = _checked_view(args)
    with ws.lock:
        view_id = ws.new_id("V")
        ws.views[view_id] = _view_json(ws, view_id, view, trigger.user)
        ws.touch()
        return {"ok": True, "view": _public_view(ws.views[view_id])}


def _public_view(view: dict[str, Any]) -> dict[str, Any]:
    """Return a stored view without the sandbox's own `user` key."""
    return {k: v for k, v in view.items() if k != "user"}


def views_update(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Replace an open modal (by `view_id` or `external_id`), refusing a stale `hash`."""
    view = _checked_view(args)
    with ws.lock:
        view_id = args.text("view_id")
        if not view_id and args.text("external_id"):
            view_id = next(
                (v["id"] for v in ws.views.values() if v["external_id"] == args.text("external_id")), ""
            )
        current = ws.views.get(view_id)
        if current is None:
            raise ApiError("not_found")
        if args.text("hash") and args.text("hash") != current["hash"]:
            raise ApiError("hash_conflict")
        updated = _view_json(ws, view_id, view, current["user"])
        updated["previous_view_id"] = current.get("previous_view_id")
        ws.views[view_id] = updated
        ws.touch()
        return {"ok": True, "view": _public_view(updated)}


def views_publish(ws: Workspace, args: Args, base_url: str) -> dict[str, Any]:
    """Publish a user's App Home: a ``home`` view (100 blocks at most), replacing theirs; a stale `hash` is refused."""
    user = args.text("user_id", error="invalid_arguments")
    if user not in ws.users:
        raise ApiError("user_not_found")
    view = _checked_view(args)
    if view.get("type") != "home":
        raise ApiError(
            "invalid_arguments",
            extra={"response_metadata": {"messages": ["must be home [json-pointer:/view/type]"]}},
        )
    with ws.lock:
        current = ws.homes.get(user)
        if current is not None and args.text("hash") and args.text("hash") != current["hash"]:
            raise ApiError("hash_conflict")
        view_id = current["id"] if current is not None else ws.new_id("V")
        ws.homes[user] = _view_json(ws, view_id, view, user)
        ws.touch()
        return {"ok": True, "view": _public_view(ws.homes[user])}
