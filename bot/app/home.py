"""App Home: what waits for the person looking, published with ``views.publish``.

For the viewer: the approvals they may give now (with Approve and Reject), the open incidents they are
involved in (a role, or anything they did on the timeline), the postmortems waiting for their review,
the active ranking policy, the freezes and the kill switch. Republished when it opens, after its own
buttons, and, best effort, for everyone who opened it in this process after a command or card button
changed something (`HomeTabs.refresh`); a failed publish is logged, never retried.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from sqlalchemy.orm import Session

from bot.app.declare import need_role
from bot.app.requests import after_request_change, decide_request
from bot.app.tenancy import check_workspace
from bot.notify.cards import target_label
from bot.notify.mrkdwn import bold, clip, clip_md, escape, mention, safe
from bot.notify.workspaces import bot_token
from bot.services import Services
from incidents_db import incidents
from incidents_db.roles import roles_of_record
from remediation.approvals.inbox import approvable_by
from remediation.guardrails.models import ALL
from remediation.guardrails.switches import engaged_switches
from remediation.guardrails.windows import active_freezes
from remediation.guardrails.workspaces import split
from remediation.postmortem import service as postmortems

log = logging.getLogger("remediate.home")
MAX_BLOCKS = 100  # Slack refuses a home view with more
MAX_ITEMS = 10  # approvals shown (two blocks each), incidents and postmortems (lines)
HOME_BUTTONS = ("home_approve", "home_reject")
SWITCH_BUTTONS = ("home_kill_on", "home_kill_off", "home_freeze_on", "home_freeze_off")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip_md(text, 3000)}}


def _button(action_id: str, label: str, value: str, style: str | None = None) -> dict[str, Any]:
    button = {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": clip(label, 75)}, "value": value}  # fmt: skip
    return {**button, "style": style} if style else button


def _approvals(services: Services, s: Session, user: str) -> list[dict[str, Any]]:
    waiting = approvable_by(db_session=s, guard=services.guard, user=user)
    blocks = [_section(f"*Approvals you may give now* ({len(waiting)})")]
    if not waiting:
        blocks.append(_section("_Nothing waits for your approval._"))
    for view in waiting[:MAX_ITEMS]:
        line = (
            f"{bold(view.id)} {escape(target_label(view.action, view.target))} · {escape(view.risk)} risk"
            f" · {escape(view.incident_id or 'no incident')} · {len(view.approvers)} of {view.required_approvals}"
        )
        blocks.append(_section(line))
        blocks.append({"type": "actions", "block_id": f"home-{view.id}", "elements": [
            _button("home_approve", "Approve", view.id, "primary"),
            _button("home_reject", "Reject", view.id, "danger"),
        ]})  # fmt: skip
    return blocks


def _involved(s: Session, user: str) -> list[str]:
    lines = []
    for incident in incidents.open_incidents(db_session=s, limit=50):
        rec = incidents.record(db_session=s, incident_id=incident.id)
        held = [role for role, who in roles_of_record(rec).items() if who == user]
        acted = any(e.get("actor") == user for e in rec.get("events") or ())
        if held or acted:
            how = ", ".join(held) or "on the timeline"
            lines.append(
                f"• {bold(incident.id)} [{escape(incident.severity)}] {safe(incident.title, 200)} ({how})"
            )
    return lines[:MAX_ITEMS]


def _reviews(s: Session, user: str) -> list[str]:
    rows = postmortems.list_postmortems(db_session=s, status="in_review", limit=50)
    waiting = [r for r in rows if user in r.reviewers and user not in r.signed_off]
    return [f"• {bold(r.incident_id)} {safe(r.title, 200)} (v{r.version})" for r in waiting[:MAX_ITEMS]]


def _safety(services: Services, s: Session) -> list[dict[str, Any]]:
    config, now = services.rbac, services.clock()
    switches = engaged_switches(db_session=s)
    kills = [w for w in switches if w.kind == "kill"]
    killed = "on from the config" if config.kill_switch.engaged else ""
    killed = killed or ", ".join(f"on for {'every service' if w.scope == ALL else escape(w.scope)} by {mention(w.actor)}" for w in kills)  # fmt: skip
    freezes = [
        f"{'every service' if w.scope == ALL else escape(w.scope)} by {mention(w.actor)}"
        + (f": {escape(w.reason)}" if w.reason else "")
        for w in switches
        if w.kind == "freeze"
    ] + [escape(f) for f in active_freezes(config, (), None, now)]
    policy = services.policy
    text = (
        f"*Safety*\n• kill switch: {killed or 'off'}\n• freezes: {'; '.join(freezes) or 'none'}\n"
        f"• ranking policy: {bold(policy.name)} (version {escape(str(policy.version))}); "
        f"RBAC policy {escape(config.policy_version)}"
    )
    buttons = [
        _button("home_kill_on", "Kill switch on", "kill:on", "danger"),
        _button("home_kill_off", "Kill switch off", "kill:off"),
        _button("home_freeze_on", "Freeze…", "freeze:on"),
        _button("home_freeze_off", "Lift freeze…", "freeze:off"),
    ]
    return [_section(text), {"type": "actions", "block_id": "home-switches", "elements": buttons}]


def home_view(services: Services, *, user: str, notice: str = "") -> dict[str, Any]:
    """Return the App Home view of ``user`` (Slack's ``home`` type, at most 100 blocks)."""
    with services.sessions() as s:
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": "Remediate"}}
        ]
        if notice:
            blocks.append(
                {"type": "context", "elements": [{"type": "mrkdwn", "text": clip_md(notice, 2000)}]}
            )
        blocks += _approvals(services, s, user)
        blocks.append({"type": "divider"})
        involved = _involved(s, user)
        blocks.append(_section("*Your open incidents*\n" + ("\n".join(involved) or "_none_")))
        reviews = _reviews(s, user)
        blocks.append(_section("*Postmortems waiting for your review*\n" + ("\n".join(reviews) or "_none_")))
        blocks.append({"type": "divider"})
        blocks += _safety(services, s)
    return {"type": "home", "callback_id": "remediate_home", "blocks": blocks[:MAX_BLOCKS]}


def decide_from_home(services: Services, *, user: str, action_id: str, request_id: str) -> str:
    """Approve or reject a request from App Home (the workflow's checks, refusals audited); return the line."""
    need_role(services, user, "approve or reject requests")
    verb = "approve" if action_id == "home_approve" else "reject"
    check_workspace(services, actor=user, verb=verb, request_id=request_id)  # refused and audited
    with services.sessions() as s:
        view = decide_request(services, s, user=user, verb=verb, request_id=request_id)
        text = after_request_change(services, s, view, user)
        s.commit()
    return text


class HomeTabs:
    """Publishes App Home views; remembers who opened theirs here, to republish after a change."""

    def __init__(
        self, services: Services, client: WebClient, submit: Callable[[Callable[[], None]], None]
    ) -> None:
        self.services, self.client, self.submit = services, client, submit
        self.viewers: set[str] = set()
        self.notices: dict[str, str] = {}  # the outcome of a viewer's last App Home button, kept on refresh
        self._lock = threading.Lock()
        self._publishing = threading.Lock()  # one at a time: an older view never lands after a newer one
        self._pending = False

    def publish(self, user: str, notice: str | None = None) -> None:
        """Publish ``user``'s App Home now (this thread), with ``notice`` or their last one; remember them.

        ``user`` is an actor id: ``T.../U...`` (OAuth, another workspace) publishes with that
        workspace's installed bot token, to the Slack user id.
        """
        with self._lock:
            self.viewers.add(user)
            if notice is not None:
                self.notices[user] = notice
            shown = self.notices.get(user, "")
        workspace, slack_user = split(user)
        with self._publishing:
            self._client(workspace).views_publish(
                user_id=slack_user, view=home_view(self.services, user=user, notice=shown)
            )

    def _client(self, workspace: str | None) -> WebClient:
        """Return the client for a workspace's App Home: the app's own at home, else its installed bot's."""
        token = bot_token(self.services, workspace) if workspace is not None else None
        if token is None:
            return self.client
        return WebClient(token=token, base_url=self.client.base_url, timeout=self.client.timeout)

    def refresh(self) -> None:
        """Republish every remembered viewer's App Home on the work pool; changes meanwhile join one run."""
        with self._lock:
            if self._pending or not self.viewers:
                return
            self._pending = True
        self.submit(self._refresh_all)

    def _refresh_all(self) -> None:
        with self._lock:
            self._pending = False
            viewers = sorted(self.viewers)
        for user in viewers:
            try:
                self.publish(user)
            except Exception:  # best effort: the next change or opening republishes it
                log.warning("republishing the App Home of %s failed", user, exc_info=True)
