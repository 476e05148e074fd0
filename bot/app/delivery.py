"""What reaches Slack from the outbox: cards posted then updated in place, the timeline in their thread.

Changes are announced by writing outbox rows in the same transaction as the change; the worker thread
delivers them and retries with backoff on 429 (honouring Retry-After), 5xx and timeouts. A card is
rendered when it is sent, so a storm of changes coalesces into one update.
"""

from __future__ import annotations

import logging
import threading
import urllib.error
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.orm import Session

from bot.app.cards import timeline_text
from bot.app.services import Services
from incidents_db import outbox
from incidents_db.models import IncidentEvent
from incidents_db.service import event_to_dict

log = logging.getLogger("remediate.slack")
Render = Callable[[Session, str], tuple[str, list[dict[str, Any]]]]
RETRYABLE_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout"})
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
        payload={},
        now=now,
        min_interval_s=REFRESH_INTERVAL_S,
    )


def announce(*, db_session: Session, incident_id: str, now: datetime) -> None:
    """Queue a card refresh and a timeline update for the incident (coalesced; not committed)."""
    refresh_card(db_session=db_session, incident_id=incident_id, now=now)
    outbox.enqueue(
        db_session=db_session,
        kind="timeline",
        incident_id=incident_id,
        coalesce_key=f"timeline:{incident_id}",
        payload={},
        now=now,
        min_interval_s=REFRESH_INTERVAL_S,
    )


def post_in_thread(*, db_session: Session, incident_id: str, text: str, now: datetime) -> None:
    """Queue one message for the incident card's thread (not committed)."""
    outbox.enqueue(
        db_session=db_session, kind="thread", incident_id=incident_id, payload={"text": text}, now=now
    )


class _Retry(Exception):
    def __init__(self, delay_s: float, error: str, *, fatal: bool = False, counted: bool = True) -> None:
        super().__init__(error)
        self.delay_s, self.error, self.fatal, self.counted = delay_s, error, fatal, counted


def _header(response: Any, name: str) -> str | None:
    headers = getattr(response, "headers", None) or {}
    for key, value in dict(headers).items():
        if str(key).lower() == name.lower():
            return str(value[0] if isinstance(value, list) else value)
    return None


class OutboxWorker:
    """Delivers outbox rows to Slack on a background thread; `wake` after committing new rows."""

    def __init__(self, services: Services, client: WebClient, render: Render) -> None:
        self.services = services
        self.client = client
        self.render = render
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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
        """Tell the thread new rows are waiting."""
        self._wake.set()

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
        return float(min(self.services.retry_max_s, self.services.retry_base_s * (2**attempts)))

    def drain_once(self) -> int:
        """Deliver every due row once; return how many were handled (sent, rescheduled or given up)."""
        sessions, clock = self.services.sessions, self.services.clock
        with sessions() as session:
            claimed = outbox.claim_due(db_session=session, now=clock())
        for message in claimed:
            with sessions() as session:
                try:
                    result = self._deliver(session, message)
                    outbox.mark_sent(db_session=session, message_id=message.id, now=clock(), result=result)
                except _Retry as retry:
                    session.rollback()
                    if not retry.counted:
                        outbox.release(
                            db_session=session, message_id=message.id, now=clock(), delay_s=retry.delay_s
                        )
                    else:
                        again = outbox.mark_retry(
                            db_session=session,
                            message_id=message.id,
                            now=clock(),
                            delay_s=retry.delay_s,
                            error=retry.error,
                            max_attempts=0 if retry.fatal else self.services.max_attempts,
                        )
                        level = logging.INFO if again else logging.ERROR
                        log.log(
                            level,
                            "outbox %s #%s: %s (retry: %s)",
                            message.kind,
                            message.id,
                            retry.error,
                            again,
                        )
                session.commit()
        return len(claimed)

    def _call(self, attempts: int, method: str, **kwargs: Any) -> Any:
        try:
            return self.client.api_call(method, json=kwargs)
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error", "")) if exc.response is not None else ""
            if status == 429:
                after = _header(exc.response, "Retry-After")
                delay = (
                    float(after) if after and after.replace(".", "", 1).isdigit() else self.backoff(attempts)
                )
                raise _Retry(max(delay, self.services.retry_base_s), f"{method}: 429 rate limited") from None
            if status >= 500 or error in RETRYABLE_ERRORS:
                raise _Retry(self.backoff(attempts), f"{method}: HTTP {status} {error}".strip()) from None
            raise _Retry(0, f"{method}: {error or status}", fatal=True) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            raise _Retry(self.backoff(attempts), f"{method}: {type(exc).__name__}: {exc}") from None

    def _deliver(self, session: Session, message: outbox.Message) -> dict[str, Any]:
        if message.kind == "channel":  # a plain message to a channel of its own (the audit head)
            channel, text = str(message.payload["channel"]), str(message.payload["text"])
            sent = self._call(message.attempts, "chat.postMessage", channel=channel, text=text)
            return {"channel": sent["channel"], "ts": sent["ts"]}
        incident_id = message.incident_id or ""
        card = outbox.get_card(db_session=session, incident_id=incident_id) if incident_id else None
        now = self.services.clock()
        if message.kind == "card":
            text, blocks = self.render(session, incident_id)
            if card is None:
                sent = self._call(
                    message.attempts,
                    "chat.postMessage",
                    channel=self.services.channel,
                    text=text,
                    blocks=blocks,
                )
                outbox.set_card(
                    db_session=session,
                    incident_id=incident_id,
                    channel=sent["channel"],
                    ts=sent["ts"],
                    now=now,
                )
                return {"channel": sent["channel"], "ts": sent["ts"]}
            self._call(
                message.attempts, "chat.update", channel=card.channel, ts=card.ts, text=text, blocks=blocks
            )
            card.updated_at = now
            return {"channel": card.channel, "ts": card.ts}
        if card is None:  # the card is not posted yet: the thread waits for it
            raise _Retry(WAIT_FOR_CARD_S, "waiting for the card", counted=False)
        if message.kind == "timeline":
            rows = session.execute(
                sa.select(IncidentEvent)
                .where(IncidentEvent.incident_id == incident_id, IncidentEvent.seq > card.thread_seq)
                .order_by(IncidentEvent.seq)
            ).scalars()
            events = list(rows)
            shown = [e for e in events if e.type not in QUIET_EVENTS]
            if not shown:
                if events:
                    card.thread_seq = events[-1].seq
                return {}
            text = timeline_text(
                event_to_dict(at=e.at, type_=e.type, service=e.service, payload=dict(e.payload))
                for e in shown
            )
            sent = self._call(
                message.attempts, "chat.postMessage", channel=card.channel, thread_ts=card.ts, text=text
            )
            card.thread_seq = events[-1].seq
            return {"ts": sent["ts"]}
        text = str(message.payload.get("text", ""))
        sent = self._call(
            message.attempts, "chat.postMessage", channel=card.channel, thread_ts=card.ts, text=text
        )
        return {"ts": sent["ts"]}
