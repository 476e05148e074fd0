"""Incident channels (``incident_channels`` on): each incident's own Slack channel, from its first card on.

The outbox worker asks `IncidentChannels.first_card_channel` where an incident's first card goes. With
the setting on, the incident gets a channel ``inc-<n>-<slug>`` (`channel_name`: Slack's rules, a name
in use gets a ``-2``, ``-3`` ... suffix), its commander (if set) and the people who may approve actions
on its services are invited, and the card is posted there; `summarise` queues a one-line summary with
a link to the channel in the main channel. Later card updates, the timeline and thread replies follow
the card (`SlackCard.channel`), so they go to the incident's channel; each card update invites whoever
became commander or approver since (`invite_newcomers`).

If the channel cannot be created (a missing scope, a rate limit, an outage), the card goes to the main
channel at once and stays there; the failure is logged and audited. Nothing waits for a channel.

`archive_due` (a scheduled job) chooses the open channels of incidents resolved ``archive_after`` ago
(the store's conditional update decides, so several replicas archive each once) and queues
``conversations.archive`` in the outbox; `archive` delivers it.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot import tracing
from bot.notify.errors import Retry
from bot.notify.mrkdwn import clip, escape
from bot.notify.slack_calls import SlackCalls
from bot.notify.times import duration, parse_time
from bot.services import Services
from incidents_db import channels, incidents, outbox, summaries
from playbooks.models import Risk
from remediation.audit.service import append, lock_chain
from remediation.guardrails.rbac import eligible_approvers

log = logging.getLogger("remediate.slack")
NAME_MAX = 80  # Slack's limit on a channel name
_OUTSIDE = re.compile(r"[^a-z0-9_-]+")
MAX_SUFFIX = 20  # name_taken this often: give up (the card goes to the main channel)
RISKS = tuple(Risk)
GONE = frozenset({"already_archived", "channel_not_found"})  # archive: nothing left to do
# the outbox worker's look-up of what an uncertain attempt of a row posted (channel, thread_ts by name)
Find = Callable[..., dict[str, Any] | None]


def _clean(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"-{2,}", "-", _OUTSIDE.sub("-", ascii_text)).strip("-_")


def channel_name(incident_id: str, title: str, suffix: int = 1) -> str:
    """Return ``inc-<n>-<slug>``: lowercase, only a-z 0-9 - _, at most 80 characters; ``suffix`` > 1 is appended."""
    number = _clean(incident_id)
    base = number if number.startswith("inc-") else f"inc-{number}" if number else "inc"
    tail = f"-{suffix}" if suffix > 1 else ""
    base = base[: NAME_MAX - len(tail)]
    room = NAME_MAX - len(base) - len(tail) - 1
    slug = _clean(title)[:room].strip("-_") if room > 0 else ""
    return f"{base}-{slug}{tail}" if slug else f"{base}{tail}"


def approvers_of(services: Services, targets: Sequence[str]) -> set[str]:
    """Return who may approve some action on one of these services (on any, without services)."""
    found: set[str] = set()
    wanted: list[str | None] = list(targets) or [None]
    for service in wanted:
        for risk in RISKS:
            found.update(eligible_approvers(services.rbac, risk, service, None))
    return found


class IncidentChannels:
    """The incident-channel steps of the outbox worker; each takes the `SlackCalls` of the row being sent."""

    def __init__(self, services: Services) -> None:
        self.services = services

    @property
    def main(self) -> str:
        """Return the main channel (name or id) where cards go without incident channels."""
        return self.services.settings.incident_channel

    def existing(self, session: Session, incident_id: str) -> str | None:
        """Return the incident's own channel id when it has one (open or being archived)."""
        row = channels.get(db_session=session, incident_id=incident_id)
        return row.channel_id if row is not None and row.state != channels.FAILED else None

    def first_card_channel(self, session: Session, slack: SlackCalls, attempts: int, incident_id: str) -> str:
        """Return where the incident's first card goes: its own channel (created once) or the main one."""
        settings = self.services.settings
        row = channels.get(db_session=session, incident_id=incident_id)
        if row is None and not settings.incident_channels:
            return self.main
        if row is not None and row.state == channels.FAILED:
            return self.main
        if row is not None and row.channel_id:
            return row.channel_id
        title = incidents.get(db_session=session, incident_id=incident_id).title
        try:
            channel_id = self._create(session, slack, attempts, incident_id, title, resumed=row is not None)
        except Retry as exc:
            self._failed(session, incident_id, exc.error)
            return self.main
        self.invite_newcomers(session, slack, attempts, incident_id, channel_id)
        return channel_id

    def _create(
        self,
        session: Session,
        slack: SlackCalls,
        attempts: int,
        incident_id: str,
        title: str,
        *,
        resumed: bool,
    ) -> str:
        if not resumed:  # the chosen name is kept first: a crash after Slack created it can adopt it
            channels.begin(db_session=session, incident_id=incident_id,
                           name=channel_name(incident_id, title), now=self.services.clock())  # fmt: skip
            session.commit()
        private = self.services.settings.incident_channel_private
        for suffix in range(1, MAX_SUFFIX + 1):
            name = channel_name(incident_id, title, suffix)
            try:
                made = slack.call(attempts, "conversations.create", name=name, is_private=private)
            except Retry as exc:
                if exc.slack_error != "name_taken":
                    raise
                adopted = self._ours(session, slack, attempts, name) if resumed else None
                if adopted is None:
                    continue
                made = {"channel": adopted}
            chan = made["channel"]
            channels.opened(db_session=session, incident_id=incident_id, channel_id=str(chan["id"]),
                            name=str(chan.get("name") or name))  # fmt: skip
            session.commit()
            log.info("incident %s has its own channel #%s (%s)", incident_id, chan.get("name"), chan["id"])
            return str(chan["id"])
        raise Retry(0, f"conversations.create: every name up to -{MAX_SUFFIX} is taken", fatal=True)

    def _ours(self, session: Session, slack: SlackCalls, attempts: int, name: str) -> dict[str, Any] | None:
        """Return the channel named ``name`` if this bot created it and no other incident has it."""
        cursor = None
        for _ in range(20):
            page = slack.call(attempts, "conversations.list", read=True, limit=200, cursor=cursor,
                              types="public_channel,private_channel")  # fmt: skip
            for chan in page.get("channels", []):
                if chan.get("name") == name:
                    mine = chan.get("creator") == slack.identity(attempts)[0]
                    free = channels.incident_of(db_session=session, channel_id=str(chan["id"])) is None
                    return dict(chan) if mine and free else None
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

    def _failed(self, session: Session, incident_id: str, error: str) -> None:
        """Record and audit a channel that could not be made; the card goes to the main channel."""
        log.error("incident %s: its channel could not be created (%s); the card goes to %s",
                  incident_id, error, self.main)  # fmt: skip
        session.rollback()
        lock_chain(db_session=session)
        channels.failed(db_session=session, incident_id=incident_id, error=error)
        append(db_session=session, actor="remediate", event="incident_channel", decision="failed",
               reason=f"channel not created ({error}); the card is in {self.main}"[:2000],
               incident_id=incident_id, policy_version=self.services.rbac.policy_version,
               at=self.services.clock())  # fmt: skip
        session.commit()

    def wanted(self, session: Session, incident_id: str) -> set[str]:
        """Return who belongs in the incident's channel: its commander and its approvers."""
        incident = incidents.get(db_session=session, incident_id=incident_id)
        people = approvers_of(self.services, list(incident.services or ()))
        commander = channels.current_roles(db_session=session, incident_id=incident_id).get("commander")
        if commander:
            people.add(commander)
        return people

    def invite_newcomers(
        self, session: Session, slack: SlackCalls, attempts: int, incident_id: str, channel_id: str
    ) -> None:
        """Invite whoever belongs in the channel and was not invited yet; a failure never stops the card."""
        row = channels.get(db_session=session, incident_id=incident_id)
        if row is None or row.channel_id != channel_id or row.state != channels.OPEN:
            return
        me = slack.identity(attempts)[0]
        missing = sorted(self.wanted(session, incident_id) - set(row.invited or ()) - {me})
        if not missing:
            return
        try:
            answer = slack.call(attempts, "conversations.invite", channel=channel_id, users=",".join(missing),
                                force=True)  # fmt: skip
        except Retry as exc:
            log.warning("incident %s: inviting %s failed (%s)", incident_id, ", ".join(missing), exc.error)
            if not exc.fatal:
                return  # a rate limit or an outage: the next card update tries again
            answer = {"errors": [{"user": u, "error": exc.slack_error} for u in missing]}
        refused = [e for e in answer.get("errors") or [] if e.get("error") != "already_in_channel"]
        if refused:
            log.warning("incident %s: not invited: %s", incident_id,
                        ", ".join(f"{e.get('user')} ({e.get('error')})" for e in refused))  # fmt: skip
        channels.add_invited(db_session=session, incident_id=incident_id, users=missing)

    def summarise(self, session: Session, incident_id: str, now: datetime) -> None:
        """Queue the main channel's summary line of an incident in its own channel (not committed).

        Rendered when sent: the first row posts the line, a later one (the incident resolved) updates it.
        """
        payload = tracing.tagged({"channel": self.main})
        outbox.enqueue(db_session=session, kind=summaries.KIND, incident_id=incident_id, payload=payload,
                       coalesce_key=summaries.coalesce_key(incident_id), now=now)  # fmt: skip

    def resummarise(self, session: Session, incident_id: str, now: datetime) -> bool:
        """Queue the update of an incident's summary line (not committed); False when it has no own channel.

        Called wherever the line's facts change (resolved, reopened, a new title or severity); rows share
        the coalesce key, so a burst of changes before the worker sends one sends a single update.
        """
        if not self.existing(session, incident_id):
            return False
        self.summarise(session, incident_id, now)
        return True

    def summary_text(self, session: Session, incident_id: str) -> str:
        """Return the summary line as it stands: open (🔴) or resolved (✅, and after how long)."""
        incident = incidents.get(db_session=session, incident_id=incident_id)
        head = f"{escape(incident_id)} [{escape(incident.severity)}] {escape(incident.title)}"
        opened, resolved = parse_time(incident.opened_at), parse_time(incident.resolved_at)
        if incident.status == "resolved" and opened is not None and resolved is not None:
            head = f"✅ {head} · resolved after {duration((resolved - opened).total_seconds())}"
        else:
            head = f"🔴 {head}"
        own = self.existing(session, incident_id)
        return clip(head, 2500) + (f" · the card and its thread: <#{own}>" if own else "")

    def summary(
        self,
        session: Session,
        slack: SlackCalls,
        message: outbox.Message,
        find: Find,
        metadata: dict[str, Any],
    ) -> dict[str, Any]:
        """Deliver a ``summary`` row: post the line in the main channel, or update the one posted before.

        ``find`` returns the line an uncertain attempt of this row did post (looked up by ``metadata``).
        """
        incident_id = message.incident_id or ""
        text = self.summary_text(session, incident_id)
        posted = summaries.posted(db_session=session, incident_id=incident_id)
        if posted is not None:
            slack.call(message.attempts, "chat.update", channel=posted[0], ts=posted[1], text=text)
            return {"channel": posted[0], "ts": posted[1], "updated": True}
        main = str(message.payload.get("channel") or self.main)
        found = find(message, channel=main, thread_ts=None)
        if found is not None:
            return {"channel": main, "ts": found["ts"], "adopted": True}
        sent = slack.call(message.attempts, "chat.postMessage", channel=main, text=text, metadata=metadata)
        return {"channel": sent["channel"], "ts": sent["ts"]}

    def archive(self, session: Session, slack: SlackCalls, message: outbox.Message) -> dict[str, Any]:
        """Deliver an ``archive`` row: archive the incident's channel (archived or gone already counts)."""
        channel = str(message.payload["channel"])
        try:
            slack.call(message.attempts, "conversations.archive", channel=channel)
        except Retry as exc:
            if exc.slack_error not in GONE:
                raise
        if message.incident_id:
            channels.archived(db_session=session, incident_id=message.incident_id, now=self.services.clock())
        return {"channel": channel, "archived": True}


def archive_due(services: Services, now: datetime | None = None) -> list[str]:
    """Queue the archiving of channels whose incident was resolved ``archive_after`` before ``now``; return their incidents.

    ``now`` (the service clock by default) only decides which are due; the archive calls go out at once.
    """
    now = now or services.clock()
    with services.sessions() as session:
        chosen = channels.start_archiving(
            db_session=session, now=now, after_s=services.settings.incident_channel_archive_after
        )
        for incident_id, channel_id in chosen:
            outbox.enqueue(
                db_session=session,
                kind="archive",
                incident_id=incident_id,
                coalesce_key=f"archive:{incident_id}",
                payload=tracing.tagged({"channel": channel_id}),
                now=services.clock(),
            )  # fmt: skip  (due now, whatever ``now`` chose by)
        session.commit()
    if chosen:
        log.info("archiving the channels of %s", ", ".join(i for i, _ in chosen))
    return [i for i, _ in chosen]
