"""What each command does: one function per verb, each a short transaction against the store."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.app import postmortems
from bot.app.declare import assign_role, open_incident
from bot.app.errors import NotAllowedError, NotFoundError, incident_named
from bot.app.grammar import HELP, Command, parse
from bot.app.requests import after_request_change, decide_request
from bot.app.switches import flip_switch
from bot.app.tenancy import check_workspace
from bot.notify import postmortem_cards
from bot.notify.cards import key_signals, target_label, timeline_text
from bot.notify.channels import IncidentChannels
from bot.notify.delivery import announce
from bot.notify.mrkdwn import bold, clip_md, escape, mention, safe, styled_md
from bot.notify.suggest import not_understood, rank
from bot.notify.times import duration
from bot.services import Services
from incidents_db import channels, incidents
from incidents_db.locks import lock_incidents
from playbooks.models import Risk
from remediation.guardrails.rbac import may, owned_services, roles_of

TITLE = 300  # an incident title as shown in a reply line (escaped, clipped)


@dataclass(frozen=True)
class Reply:
    """What the person sees: ephemeral unless ``in_channel``."""

    text: str
    in_channel: bool = False
    blocks: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Outcome:
    """A reply plus whether the outbox got new rows (so the worker is woken)."""

    reply: Reply
    queued: bool = False


def _need_role(services: Services, user: str, what: str) -> None:
    if not roles_of(services.rbac, user):
        raise NotAllowedError(
            f"{mention(user)} has no role in the RBAC config, so may not {what}; ask an admin"
        )


def _incidents(services: Services, s: Session) -> Outcome:
    rows = incidents.open_incidents(db_session=s)
    if not rows:
        return Outcome(Reply("No open incidents."))
    lines = [
        f"• {bold(i.id)} [{i.severity}] {safe(i.title, TITLE)} ({safe(', '.join(i.services or []), TITLE)})"
        for i in rows
    ]
    return Outcome(Reply("*Open incidents*\n" + "\n".join(lines)))


def _declare(services: Services, s: Session, user: str, args: tuple[str, ...]) -> Outcome:
    if not args:  # the slash command opens the form instead (bot/app/modals.py); a mention cannot
        return Outcome(Reply("`/remediate declare` opens the form; or `declare <service> <title>`."))
    service, title = args
    incident_id = open_incident(services, s, user=user, title=title, services_=[service])
    return Outcome(
        Reply(
            f"{mention(user)} declared {bold(incident_id)} on `{escape(service)}`: {safe(title, TITLE)}",
            in_channel=True,
        ),
        True,
    )


def _suggest(services: Services, s: Session, incident_id: str) -> Outcome:
    # fresh: a suggestion whose request is final gets a new generation (new buttons); old cards stay done
    ranking = rank(services, db_session=s, incident_id=incident_id, fresh=True)
    if not ranking.suggestions:
        return Outcome(Reply(f"{escape(ranking.record['id'])} is resolved; nothing to suggest."))
    lines = [
        f"{v.n}. {styled_md(target_label(v.ranked.action, v.ranked.target), '*')} - confidence {v.ranked.confidence:.0%}, "
        f"{v.ranked.risk} risk: {escape(v.ranked.reason)}"
        + ("" if v.decision.allowed else f" (not approvable now: {escape(v.decision.reason)})")
        for v in ranking.suggestions
    ]
    announce(db_session=s, incident_id=ranking.record["id"], now=services.clock())
    return Outcome(Reply(f"*Suggestions for {escape(ranking.record['id'])}*\n" + "\n".join(lines)), True)


def why(services: Services, s: Session, *, incident_id: str, n: int) -> Outcome:
    """Explain suggestion ``n`` of an incident: reason, scores, risk, guardrails, signals (flushed)."""
    ranking = rank(services, db_session=s, incident_id=incident_id, k=max(n, services.settings.top_k))
    if n > len(ranking.suggestions):
        raise NotFoundError(
            f"{escape(incident_id)} has {len(ranking.suggestions)} suggestion(s); there is no #{n}"
        )
    view = ranking.suggestions[n - 1]
    item, decision = view.ranked, view.decision
    text = (
        f"*Why #{n}: {target_label(item.action, item.target)}* on {escape(ranking.record['id'])}\n"
        f"• reason: {escape(item.reason)}\n"
        f"• policy {services.policy.name}: score {item.score:.3f}, confidence {item.confidence:.0%}, "
        f"expected time to mitigate {duration(item.expected_ttm_s)}\n"
        f"• risk {item.risk}: needs {decision.approvals_required} approval(s) from "
        f"{', '.join(decision.approver_roles) or 'nobody'}\n"
        f"• guardrails: {escape(decision.reason)}\n"
        f"• signals: {'; '.join(key_signals(ranking.record, ranking.not_understood))}"
    )
    return Outcome(Reply(text))


def _similar(services: Services, s: Session, incident_id: str) -> Outcome:
    rec = incidents.record(db_session=s, incident_id=incident_id)

    def features(r: dict[str, Any]) -> set[str]:
        names = {f"alert:{e.get('name')}" for e in r.get("events", []) if e.get("type") == "alert"}
        return names | {f"svc:{x}" for x in r.get("services") or []}

    mine = features(rec)
    scored = []
    for other in incidents.recent_records(db_session=s, exclude=rec["id"]):
        theirs = features(other)
        score = len(mine & theirs) / len(mine | theirs) if mine | theirs else 0.0
        if score > 0:
            scored.append((score, other))
    scored.sort(key=lambda p: (-p[0], p[1]["id"]))
    if not scored:
        return Outcome(Reply(f"No past incident looks like {escape(rec['id'])}."))
    lines = []
    for score, other in scored[:5]:
        fixes = [
            target_label(str(e.get("action")), e.get("target"))
            for e in other.get("events", [])
            if e.get("type") == "action" and e.get("outcome") == "succeeded"
        ]
        fixed = f" - fixed by {', '.join(fixes)}" if fixes else ""
        lines.append(f"• {bold(other['id'])} ({score:.0%} alike) {safe(other['title'], TITLE)}{fixed}")
    return Outcome(Reply(f"*Incidents like {escape(rec['id'])}*\n" + "\n".join(lines)))


def _decide_request(services: Services, s: Session, user: str, verb: str, request_id: str) -> Outcome:
    view = decide_request(services, s, user=user, verb=verb, request_id=request_id)
    return Outcome(Reply(after_request_change(services, s, view, user)), view.incident_id is not None)


def _status(services: Services, s: Session, incident_id: str) -> Outcome:
    rec = incidents.record(db_session=s, incident_id=incident_id)
    state = "resolved" if rec.get("resolved_at") else "open"
    text = (
        f"{bold(rec['id'])} [{escape(rec['severity'])}] {safe(rec['title'], TITLE)} - {state}\n"
        f"services: {escape(', '.join(rec.get('services') or []) or 'unknown')}\n"
        + "\n".join(key_signals(rec, not_understood(rec, services.vocabulary.signal_of)))
        + "\n*Latest timeline*\n"
        + timeline_text(rec["events"][-10:])
    )
    return Outcome(Reply(text))


def _resolve(services: Services, s: Session, user: str, incident_id: str) -> Outcome:
    _need_role(services, user, "resolve incidents")
    now = services.clock()
    if not incidents.resolve(db_session=s, incident_id=incident_id, actor=user, now=now):
        return Outcome(Reply(f"{escape(incident_id)} was already resolved."))
    real = incidents.get(db_session=s, incident_id=incident_id).id
    announce(db_session=s, incident_id=real, now=now)
    postmortem_cards.resolved(services, db_session=s, incident_id=real, now=now)
    return Outcome(Reply(f"{mention(user)} resolved {bold(real)}.", in_channel=True), True)


def _shown_anew(services: Services, s: Session, incident_id: str, now: datetime) -> None:
    """Queue what shows the incident's changed facts: its card, and its line in the main channel (if any)."""
    announce(db_session=s, incident_id=incident_id, now=now)
    IncidentChannels(services).resummarise(s, incident_id, now)


def _reopen(services: Services, s: Session, user: str, incident_id: str) -> Outcome:
    _need_role(services, user, "reopen incidents")
    now = services.clock()
    real = incidents.get(db_session=s, incident_id=incident_id).id
    own = channels.get(db_session=s, incident_id=real)
    if own is not None and own.state in (channels.ARCHIVING, channels.ARCHIVED):  # its card cannot change
        return Outcome(
            Reply(f"{bold(real)}'s channel is archived, so it stays resolved; declare a new incident.")
        )
    if not incidents.reopen(db_session=s, incident_id=real, actor=user, now=now):
        return Outcome(Reply(f"{bold(real)} is open."))
    _shown_anew(services, s, real, now)
    return Outcome(Reply(f"{mention(user)} reopened {bold(real)}.", in_channel=True), True)


def _amend(services: Services, s: Session, user: str, verb: str, args: tuple[str, ...]) -> Outcome:
    _need_role(services, user, f"change an incident's {verb}")
    now = services.clock()
    real = incidents.get(db_session=s, incident_id=args[0]).id
    changed = incidents.amend(db_session=s, incident_id=real, actor=user, now=now, **{verb: args[1]})
    if verb not in changed:
        return Outcome(Reply(f"{bold(real)} has that {verb} already."))
    _shown_anew(services, s, real, now)
    before, after = (safe(v, TITLE) for v in changed[verb])
    said = f"{mention(user)} changed the {verb} of {bold(real)} from {before} to {after}."
    return Outcome(Reply(said, in_channel=True), True)


def _postmortem(services: Services, s: Session, user: str, args: tuple[str, ...]) -> Outcome:
    text, queued = postmortems.chat(services, s, user, args)
    return Outcome(Reply(clip_md(text, 3000)), queued)


def _switch(services: Services, s: Session, user: str, verb: str, args: tuple[str, ...]) -> Outcome:
    text = flip_switch(
        services, s, user=user, kind="freeze" if verb == "freeze" else "kill",
        engaged=args[0] == "on", service=args[1] or None, reason=args[2],
    )  # fmt: skip
    return Outcome(Reply(text, in_channel=True), queued=True)


def _whoami(services: Services, user: str) -> Outcome:
    config = services.rbac
    roles = sorted(roles_of(config, user))
    owned = sorted(owned_services(config, user))
    approvable = [
        r.value
        for r in Risk
        if may(config, user, "approve", r, None) or any(may(config, user, "approve", r, o) for o in owned)
    ]
    text = (
        f"You are {mention(user)}.\n• roles: {', '.join(roles) or 'none (read only)'}\n"
        f"• owned services: {', '.join(owned) or 'none'}\n"
        f"• may approve risks: {', '.join(approvable) or 'none'}\n"
        f"• RBAC policy version: {config.policy_version}"
    )
    return Outcome(Reply(text))


_WORD = re.compile(r"[a-z0-9][a-z0-9_-]{2,}")


def _free(services: Services, s: Session, text: str) -> Outcome:
    known: set[str] = set(services.topology.services) if services.topology else set()
    for incident in incidents.open_incidents(db_session=s, limit=200):
        known.update(incident.services or [])
    words = _WORD.findall(text.lower())
    for word in words:
        for service in sorted(known, key=len):
            if word == service or (len(word) >= 4 and service.startswith(word)):
                found = incidents.open_for_service(db_session=s, service=service)
                if found is None:
                    return Outcome(Reply(f"No open incident on `{escape(service)}`."))
                return _status(services, s, found.id)
    return Outcome(Reply(f"I did not understand that.\n{HELP}"))


# verbs acting on a request or an incident (its id first), which only its own workspace may take
ON_REQUEST = frozenset({"approve", "reject"})
ON_INCIDENT = frozenset({"resolve", "reopen", "severity", "title", "role", "suggest"})
# freeze and the postmortem steps take the audit chain lock instead (never after this one: lock order)
WRITES = frozenset({"declare", "resolve", "reopen", "severity", "title", "role"})


def run(services: Services, *, user: str, text: str) -> Outcome:
    """Parse and run one command for a Slack user; raise the package errors for refusals."""
    command: Command = parse(text)
    verb, args = command.verb, command.args
    if verb == "help":
        return Outcome(Reply(HELP))
    if verb == "policy":
        p = services.policy
        return Outcome(
            Reply(
                f"Suggestions are ranked by {bold(p.name)} (version {p.version}), top {services.settings.top_k}."
            )
        )
    if verb == "whoami":
        return _whoami(services, user)
    if verb in ON_REQUEST or verb in ON_INCIDENT:  # another workspace's incident: refused, audited
        key = "request_id" if verb in ON_REQUEST else "incident_id"
        check_workspace(services, actor=user, verb=verb, **{key: args[0]})
    with incident_named(), services.sessions() as s:
        if verb in WRITES:
            lock_incidents(db_session=s)  # these read, then write: run alone (other threads, replicas)
        if verb == "incidents":
            out = _incidents(services, s)
        elif verb == "declare":
            out = _declare(services, s, user, args)
        elif verb == "role":
            real = assign_role(services, s, user=user, incident_id=args[0], role=args[1], holder=args[2])
            said = f"{mention(user)} made {mention(args[2])} {args[1]} of {bold(real)}."
            out = Outcome(Reply(said, in_channel=True), queued=True)
        elif verb == "suggest":
            out = _suggest(services, s, args[0])
        elif verb == "why":
            out = why(services, s, incident_id=args[0], n=int(args[1]))
        elif verb == "similar":
            out = _similar(services, s, args[0])
        elif verb in ("approve", "reject"):
            out = _decide_request(services, s, user, verb, args[0])
        elif verb == "status":
            out = _status(services, s, args[0])
        elif verb == "resolve":
            out = _resolve(services, s, user, args[0])
        elif verb == "reopen":
            out = _reopen(services, s, user, args[0])
        elif verb in ("severity", "title"):
            out = _amend(services, s, user, verb, args)
        elif verb == "postmortem":
            out = _postmortem(services, s, user, args)
        elif verb == "postmortems":
            out = Outcome(Reply(postmortems.listing(s)[0]))
        elif verb in ("freeze", "killswitch"):
            out = _switch(services, s, user, verb, args)
        else:
            out = _free(services, s, command.text)
        s.commit()
    return out
