"""What reaches Slack from the outbox: cards posted then updated in place, the timeline in their thread.

Changes are announced by writing outbox rows in the same transaction as the change; the worker thread
delivers them and retries with backoff on 5xx and timeouts. A card is rendered when it is sent, so a
storm of changes coalesces into one update. Replies to people (``respond`` through the response_url,
``ephemeral``, ``message`` in a channel) go through the outbox too, so they get the same handling.

- A 429 never counts as an attempt: the row is put back for the Retry-After Slack asked for.
- A post whose outcome is uncertain (timeout, reset connection, 5xx: Slack may have stored it) is
  looked up before it is posted again: every post carries message metadata naming the incident and
  the outbox row, and the lookup reads it back (``include_all_metadata``); a card or thread message
  found there is adopted instead of posted twice.
- A card Slack refuses for its blocks (``invalid_blocks``, ``msg_too_long`` ...) is replaced by a
  minimal card (header, status, a pointer to ``/remediate status``), so no incident is left without one.
- Nothing is dropped: a row past ``max_attempts`` is ``dead`` but stays in the store, is tried again
  every ``retry_max_s``, and is revived as soon as any delivery succeeds (Slack is back).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from slack_sdk import WebClient
from sqlalchemy.orm import Session

from bot import tracing
from bot.notify.cards import timeline_text
from bot.notify.channels import IncidentChannels
from bot.notify.errors import Retry
from bot.notify.minimal import minimal_card
from bot.notify.slack_calls import CHANNEL_ID
from bot.notify.workspaces import WorkspaceCalls, tagged
from bot.services import Services
from incidents_db import incidents, outbox, summaries
from incidents_db.service import event_to_dict

log = logging.getLogger("remediate.slack")
_T = TypeVar("_T")
Render = Callable[[Session, str], tuple[str, list[dict[str, Any]]]]
# Slack refused the message's content: a card falls back to the minimal card instead of dying
BLOCK_ERRORS = frozenset(
    {"invalid_blocks", "invalid_blocks_format", "invalid_attachments", "too_many_attachments", "msg_too_long"}
)
CARD_EVENT = "remediate_card"  # metadata event_type of a card post
MESSAGE_EVENT = "remediate_message"  # metadata event_type of a thread message or a reply in a channel
WAIT_FOR_CARD_S = 0.5
# Slack allows about one message a second per channel; a card or its timeline is refreshed at most this
# often, and everything that changes in between goes out together in the next refresh.
REFRESH_INTERVAL_S = 1.0
# metric snapshots are context for the ranking and the card's signals, not news: the thread skips them
QUIET_EVENTS = frozenset({"metrics"})


def refresh_card(*, db_session: Session, incident_id: str, now: datetime) -> None:
    """Queue a refresh of the incident's card only (coalesced; not committed)."""
    outbox.enqueue(
        db_session=db_session,
        kind="card",
        incident_id=incident_id,
        coalesce_key=f"card:{incident_id}",
        payload=tracing.tagged({}),
        now=now,
        min_interval_s=REFRESH_INTERVAL_S,
    )


def refresh_cards(*, db_session: Session, incident_ids: Iterable[str], now: datetime) -> None:
    """Queue a refresh of each incident's card (not committed), e.g. the ones a freeze just covered."""
    for incident_id in incident_ids:
        refresh_card(db_session=db_session, incident_id=incident_id, now=now)


def announce(*, db_session: Session, incident_id: str, now: datetime) -> None:
    """Queue a card refresh and a timeline update for the incident (coalesced; not committed)."""
    refresh_card(db_session=db_session, incident_id=incident_id, now=now)
    outbox.enqueue(
        db_session=db_session,
        kind="timeline",
        incident_id=incident_id,
        coalesce_key=f"timeline:{incident_id}",
        payload=tracing.tagged({}),
        now=now,
        min_interval_s=REFRESH_INTERVAL_S,
    )


def post_in_thread(*, db_session: Session, incident_id: str, text: str, now: datetime) -> None:
    """Queue one message for the incident card's thread (not committed)."""
    payload = tracing.tagged({"text": text})
    outbox.enqueue(db_session=db_session, kind="thread", incident_id=incident_id, payload=payload, now=now)


def _metadata(event_type: str, message: outbox.Message, **extra: Any) -> dict[str, Any]:
    return {
        "event_type": event_type,
        "event_payload": {"incident_id": message.incident_id or "", "outbox_id": message.id, **extra},
    }


class OutboxWorker:
    """Delivers outbox rows to Slack on a background thread; `wake` after committing new rows."""

    def __init__(self, services: Services, client: WebClient, render: Render) -> None:
        self.services = services
        self.client = client
        self.render = render
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.channels = IncidentChannels(services)  # each incident's own channel, when on
        self.workspaces = WorkspaceCalls(services, client)  # the token per row (docs/slack.md, OAuth)
        self.slack = self.workspaces.home
        # split in two processes (bot/app/handoff.py): the front's wake goes to the work process's worker
        self.elsewhere: Callable[[], None] | None = None

    def start(self) -> None:
        """Start the delivery thread (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="remediate-outbox", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the delivery thread; undelivered rows stay in the store for the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Tell the thread new rows are waiting (the work process's, when this process is the front)."""
        if self.elsewhere is not None:
            self.elsewhere()
            return
        self._wake.set()

    # -- replies to people: queued, committed, and the worker woken at once -----------------------------
    def _queue(self, kind: str, payload: dict[str, Any]) -> int:
        with self.services.sessions() as session:
            message_id = outbox.enqueue(
                db_session=session, kind=kind, payload=tagged(payload), now=self.services.clock()
            )
            session.commit()
        self.wake()
        return message_id

    def respond(
        self,
        *,
        response_url: str | None,
        channel: str,
        user: str,
        text: str,
        in_channel: bool = False,
        replace_original: bool | None = None,
    ) -> int:
        """Queue a reply through the response_url Slack gave (ephemeral to ``user`` without one)."""
        if not response_url:
            return self.ephemeral(channel=channel, user=user, text=text)
        body: dict[str, Any] = {"text": text, "response_type": "in_channel" if in_channel else "ephemeral"}
        if replace_original is not None:
            body["replace_original"] = replace_original
        return self._queue("respond", {"url": response_url, "body": body, "channel": channel, "user": user})

    def ephemeral(self, *, channel: str, user: str, text: str, thread_ts: str | None = None) -> int:
        """Queue a message only ``user`` sees in ``channel`` (chat.postEphemeral)."""
        return self._queue(
            "ephemeral", {"channel": channel, "user": user, "text": text, "thread_ts": thread_ts}
        )

    def say(self, *, channel: str, text: str, thread_ts: str | None = None) -> int:
        """Queue a message everyone in ``channel`` sees (a thread reply with ``thread_ts``)."""
        return self._queue("message", {"channel": channel, "text": text, "thread_ts": thread_ts})

    # -- the loop ------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                done = self.drain_once()
            except Exception:  # the loop must survive a bad row or a store hiccup
                log.exception("outbox delivery failed")
                done = 0
            if done == 0:
                self._wake.wait(0.25)
                self._wake.clear()

    def backoff(self, attempts: int) -> float:
        """Return the delay before attempt ``attempts + 1``: base x 2^attempts, capped."""
        return self.slack.backoff(attempts)

    def drain_once(self) -> int:
        """Deliver every due row once; return how many were handled (sent, rescheduled or given up)."""
        sessions, clock = self.services.sessions, self.services.clock
        with sessions() as session:
            claimed = outbox.claim_due(db_session=session, now=clock())
        for message in claimed:
            with sessions() as session, tracing.delivering(message):  # continues the trace that queued it
                try:
                    self.slack = self.workspaces.for_message(session, message)
                    self.slack.answered = False
                    result = self._deliver(session, message)
                    outbox.mark_sent(db_session=session, message_id=message.id, now=clock(), result=result)
                    self.services.metrics.outbox_deliveries.labels(kind=message.kind, result="sent").inc()
                    if self.slack.answered and outbox.revive_dead(db_session=session, now=clock()):
                        log.info("Slack answers again: dead outbox rows revived")
                except Retry as retry:
                    session.rollback()
                    self._failed(session, message, retry)
                session.commit()
        return len(claimed)

    def _failed(self, session: Session, message: outbox.Message, retry: Retry) -> None:
        clock = self.services.clock
        if not retry.counted:
            outbox.release(
                db_session=session,
                message_id=message.id,
                now=clock(),
                delay_s=retry.delay_s,
                error=retry.error if retry.error != "waiting for the card" else None,
            )
            return
        again = outbox.mark_retry(
            db_session=session,
            message_id=message.id,
            now=clock(),
            delay_s=retry.delay_s,
            error=retry.error,
            max_attempts=0 if retry.fatal else self.services.settings.max_attempts,
            dead_retry_s=self.services.settings.retry_max_s,
            uncertain=retry.uncertain,
            refused=retry.fatal,
        )
        self.services.metrics.delivery_failed(message.kind, retry.slack_error, again=again)
        level = logging.INFO if again else logging.ERROR
        log.log(level, "outbox %s #%s: %s (retry: %s)", message.kind, message.id, retry.error, again)

    def _lookup(self, find: Callable[[], _T]) -> _T | None:
        """Run a lookup; if Slack refuses it (a missing history scope), post anyway rather than hold the row."""
        try:
            return find()
        except Retry as exc:
            if not exc.fatal:
                raise
            log.warning("cannot look a message up (%s); posting it again may duplicate it", exc.error)
            return None

    def _find_card(
        self, session: Session, message: outbox.Message, incident_id: str
    ) -> tuple[str, str] | None:
        """Look the incident's card up in the channel; adopt the first, retire any duplicates."""
        channel = self.channels.existing(session, incident_id) or self.slack.channel_id(
            session, message.attempts, self.services.settings.incident_channel
        )
        cards = self.slack.read_back(
            message.attempts,
            channel=channel,
            since=message.created_at,
            event_type=CARD_EVENT,
            match=lambda p: p.get("incident_id") == incident_id,
        )
        if not cards:
            return None
        first = cards[0]["ts"]
        for extra in cards[1:]:  # a copy posted twice must not keep live buttons
            self.slack.call(
                message.attempts,
                "chat.update",
                channel=channel,
                ts=extra["ts"],
                text=f"Duplicate card of {incident_id}; the live one is the first in the channel.",
                blocks=[],
            )
        log.info("card of %s found in the channel after an uncertain post: %s adopted", incident_id, first)
        return channel, str(first)

    def _find_message(
        self, message: outbox.Message, *, channel: str, thread_ts: str | None
    ) -> dict[str, Any] | None:
        """Return the message this row already posted, if an uncertain attempt did post it."""
        if not message.uncertain:
            return None
        if not CHANNEL_ID.match(channel):
            return None  # a lookup needs the channel's id; a name is looked up only for cards
        found = self._lookup(
            lambda: self.slack.read_back(
                message.attempts,
                channel=channel,
                since=message.created_at,
                event_type=MESSAGE_EVENT,
                match=lambda p: p.get("outbox_id") == message.id,
                thread_ts=thread_ts,
            )
        )
        return found[0] if found else None

    # -- delivery per kind ---------------------------------------------------------------------------
    def _card_call(
        self, session: Session, message: outbox.Message, method: str, text: str, blocks: Any, **where: Any
    ) -> tuple[Any, str]:
        """Send a card; if Slack refuses its blocks, send the minimal card instead. Return (answer, error)."""
        incident_id = message.incident_id or ""
        try:
            return self.slack.call(message.attempts, method, text=text, blocks=blocks, **where), ""
        except Retry as exc:
            if exc.slack_error not in BLOCK_ERRORS:
                raise
            log.error(
                "card of %s refused by Slack (%s); sent the minimal card instead", incident_id, exc.error
            )
            text, blocks = minimal_card(session, incident_id)
            return self.slack.call(
                message.attempts, method, text=text, blocks=blocks, **where
            ), exc.slack_error

    def _deliver(self, session: Session, message: outbox.Message) -> dict[str, Any]:
        if message.kind == "respond":
            return self.slack.post_url(message)
        if message.kind == "ephemeral":
            p = message.payload
            sent = self.slack.call(
                message.attempts,
                "chat.postEphemeral",
                channel=p["channel"],
                user=p["user"],
                text=p["text"],
                thread_ts=p.get("thread_ts"),
            )
            return {"message_ts": sent.get("message_ts")}
        if message.kind == "message":
            return self._say(message)
        if message.kind == "archive":
            return self.channels.archive(session, self.slack, message)
        if message.kind == summaries.KIND:  # the main channel's line on an incident with its own channel
            return self.channels.summary(session, self.slack, message, self._find_message,
                                         _metadata(MESSAGE_EVENT, message))  # fmt: skip
        incident_id = message.incident_id or ""
        if message.kind == "card":
            return self._card(session, message, incident_id)
        card = outbox.get_card(db_session=session, incident_id=incident_id) if incident_id else None
        if card is None:  # the card is not posted yet: the thread waits for it
            raise Retry(WAIT_FOR_CARD_S, "waiting for the card", counted=False)
        if message.kind == "timeline":
            return self._timeline(session, message, card)
        found = self._find_message(message, channel=card.channel, thread_ts=card.ts)
        if found is not None:
            return {"ts": found["ts"], "adopted": True}
        text = str(message.payload.get("text", ""))
        sent = self.slack.call(
            message.attempts,
            "chat.postMessage",
            channel=card.channel,
            thread_ts=card.ts,
            text=text,
            metadata=_metadata(MESSAGE_EVENT, message),
            **({"blocks": message.payload["blocks"]} if message.payload.get("blocks") else {}),  # postmortem
        )
        return {"ts": sent["ts"]}

    def _say(self, message: outbox.Message) -> dict[str, Any]:
        p = message.payload
        found = self._find_message(message, channel=str(p["channel"]), thread_ts=p.get("thread_ts"))
        if found is not None:
            return {"ts": found["ts"], "adopted": True}
        sent = self.slack.call(
            message.attempts,
            "chat.postMessage",
            channel=p["channel"],
            text=p["text"],
            thread_ts=p.get("thread_ts"),
            metadata=_metadata(MESSAGE_EVENT, message),
        )
        return {"channel": sent["channel"], "ts": sent["ts"]}

    def _card(self, session: Session, message: outbox.Message, incident_id: str) -> dict[str, Any]:
        now = self.services.clock()
        text, blocks = self.render(session, incident_id)
        card = outbox.get_card(db_session=session, incident_id=incident_id)
        if card is None and (
            message.uncertain or outbox.card_post_uncertain(db_session=session, incident_id=incident_id)
        ):
            found = self._lookup(lambda: self._find_card(session, message, incident_id))
            if found is not None:
                outbox.set_card(
                    db_session=session, incident_id=incident_id, channel=found[0], ts=found[1], now=now
                )
                session.commit()  # adopted for good, whatever the update below does
                card = outbox.get_card(db_session=session, incident_id=incident_id)
        if card is None:
            where = self.channels.first_card_channel(session, self.slack, message.attempts, incident_id)
            sent, refused = self._card_call(
                session, message, "chat.postMessage", text, blocks, channel=where,
                metadata=_metadata(CARD_EVENT, message),
            )  # fmt: skip
            outbox.set_card(
                db_session=session, incident_id=incident_id, channel=sent["channel"], ts=sent["ts"], now=now
            )
            if where != self.channels.main:  # the main channel gets a line pointing at the incident's channel
                self.channels.summarise(session, incident_id, now)
            return {"channel": sent["channel"], "ts": sent["ts"], **({"minimal": refused} if refused else {})}
        channel, ts = card.channel, card.ts
        _, refused = self._card_call(session, message, "chat.update", text, blocks, channel=channel, ts=ts)
        self.channels.invite_newcomers(session, self.slack, message.attempts, incident_id, channel)
        card = outbox.get_card(db_session=session, incident_id=incident_id)
        if card is not None:
            card.updated_at = now
        return {"channel": channel, "ts": ts, **({"minimal": refused} if refused else {})}

    def _timeline(self, session: Session, message: outbox.Message, card: outbox.SlackCard) -> dict[str, Any]:
        found = self._find_message(message, channel=card.channel, thread_ts=card.ts)
        if found is not None:
            seq = (found.get("metadata") or {}).get("event_payload", {}).get("seq")
            if isinstance(seq, int) and seq > card.thread_seq:
                card.thread_seq = seq
            return {"ts": found["ts"], "adopted": True}
        events = incidents.events_after(db_session=session, incident_id=card.incident_id, seq=card.thread_seq)
        shown = [e for e in events if e.type not in QUIET_EVENTS]
        if not shown:
            if events:
                card.thread_seq = events[-1].seq
            return {}
        text = timeline_text(
            event_to_dict(at=e.at, type_=e.type, service=e.service, payload=dict(e.payload)) for e in shown
        )
        sent = self.slack.call(
            message.attempts,
            "chat.postMessage",
            channel=card.channel,
            thread_ts=card.ts,
            text=text,
            metadata=_metadata(MESSAGE_EVENT, message, seq=events[-1].seq),
        )
        card.thread_seq = events[-1].seq
        return {"ts": sent["ts"]}
