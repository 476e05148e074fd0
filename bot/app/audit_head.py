"""Publish the audit log's head where whoever administers the database cannot rewrite it.

Three targets, each optional (settings ``audit_head_file``, ``audit_head_channel``,
``audit_head_webhook``): an append-only JSON Lines file, a Slack channel message (through the outbox)
and a webhook (POST JSON). A head is published when it changed since the last publication (the file's
last line; in memory for the others) and only after the chain was checked from that publication on;
a failed check is logged and reported to the channel and the webhook instead, once per problem.
``remediate audit verify --head-file`` / ``--expect-head`` then catch a cut tail with a re-headed log.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.settings import Settings
from incidents_db import outbox
from remediation.audit import published
from remediation.audit.published import Publication
from remediation.errors import CheckpointError

log = logging.getLogger("remediate.audit")
WEBHOOK_TIMEOUT_S = 10.0
# the outbox kind the delivery worker posts as a plain message to payload["channel"] (as `OutboxWorker.say`)
CHANNEL_KIND = "message"


@dataclass(frozen=True)
class PublishResult:
    """What one publication round did: the head, where it went, and what failed or was refused."""

    head: Publication | None = None
    sent_to: tuple[str, ...] = ()
    unchanged: bool = False
    problem: str = ""
    failures: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Return whether the chain checked out and every target took the head."""
        return not self.problem and not self.failures

    def summary(self) -> str:
        """Return one line for a person."""
        if self.problem:
            return f"audit head not published: {self.problem}"
        if self.head is None:
            return "audit head not published: the audit log is empty"
        if self.unchanged:
            return f"audit head entry {self.head.seq} ({self.head.hash}) unchanged since the last publication"
        line = f"audit head entry {self.head.seq} ({self.head.hash}) published to {', '.join(self.sent_to) or 'nowhere'}"
        return line + "".join(f"; {failure}" for failure in self.failures)

    def as_dict(self) -> dict[str, Any]:
        """Return JSON-ready values."""
        return {
            "ok": self.ok,
            "head": self.head.as_dict() if self.head else None,
            "sent_to": list(self.sent_to),
            "unchanged": self.unchanged,
            "problem": self.problem,
            "failures": list(self.failures),
        }


def head_text(head: Publication) -> str:
    """Return the Slack message for a published head (a command that checks against it included)."""
    return (
        f"Audit log head: entry {head.seq} of {head.entries}, sha256 {head.hash}, at {head.at}.\n"
        f"Check the store against it: `remediate audit verify --expect-head {head.seq}:{head.hash}`"
    )


@dataclass
class HeadPublisher:
    """Publishes the audit head to the configured targets; `publish` is the scheduled job's one run.

    Attributes:
        sessions: session factory of the store.
        clock: time source for the publication's ``at`` and the outbox row.
        file: append-only JSON Lines file, or None.
        channel: Slack channel (name or id) for a message through the outbox, or None.
        webhook: URL to POST the head to as JSON, or None.
        every_s: seconds between scheduled runs.
    """

    sessions: sessionmaker[Session]
    clock: Callable[[], datetime]
    file: Path | None = None
    channel: str | None = None
    webhook: str | None = None
    every_s: float = 300.0
    _sent: dict[str, str] = field(default_factory=dict, repr=False)  # target -> hash last sent there
    _last: Publication | None = field(default=None, repr=False)  # newest head checked and published
    _alarmed: str = field(default="", repr=False)  # the problem last reported, so it is sent once

    @classmethod
    def from_settings(
        cls, settings: Settings, *, sessions: sessionmaker[Session], clock: Callable[[], datetime]
    ) -> HeadPublisher:
        """Build the publisher from the ``audit_head_*`` settings."""
        webhook = settings.audit_head_webhook
        return cls(
            sessions=sessions,
            clock=clock,
            file=settings.audit_head_file,
            channel=settings.audit_head_channel or None,
            webhook=webhook.get_secret_value() if webhook is not None else None,
            every_s=settings.audit_head_every_s,
        )

    @property
    def enabled(self) -> bool:
        """Return whether any target is configured."""
        return bool(self.file or self.channel or self.webhook)

    def publish(self) -> PublishResult:
        """Check the chain since the last publication and publish a changed head to every target."""
        try:
            last = published.read_last(self.file) if self.file is not None else self._last
        except CheckpointError as exc:
            return self._refuse(str(exc))
        with self.sessions() as session:
            verdict, head = published.check_head(
                db_session=session, since=last.checkpoint if last else None, now=self.clock()
            )
        if not verdict.ok:
            where = f" at entry {verdict.first_bad_seq}" if verdict.first_bad_seq is not None else ""
            return self._refuse(f"the chain check failed{where}: {verdict.problem}")
        self._alarmed = ""
        if head is None:
            return PublishResult()
        sent: list[str] = []
        failures: list[str] = []
        previous = last.hash if last else None  # a target not yet sent to by this process took that one
        if self.file is not None and previous != head.hash:
            try:
                published.append(self.file, head)
                sent.append(f"file {self.file}")
            except OSError as exc:
                failures.append(f"file {self.file}: {exc.strerror or exc}")
        if self.channel and self._sent.get("channel", previous) != head.hash:
            self._enqueue(head_text(head))
            self._sent["channel"] = head.hash
            sent.append(f"channel {self.channel} (queued)")
        if self.webhook and self._sent.get("webhook", previous) != head.hash:
            error = self._post({"ok": True, **head.as_dict(), "text": head_text(head)})
            if error:
                failures.append(error)  # not remembered: the next run tries again
            else:
                self._sent["webhook"] = head.hash
                sent.append("webhook")
        if not failures:
            self._last = head
        if sent:
            log.info("published the audit head (entry %d, %s) to %s", head.seq, head.hash, ", ".join(sent))
        return PublishResult(
            head=head, sent_to=tuple(sent), unchanged=not sent and not failures, failures=tuple(failures)
        )

    def _refuse(self, problem: str) -> PublishResult:
        """Log a failed check and report it to the channel and webhook (once per distinct problem)."""
        log.error("audit head not published: %s", problem)
        if problem != self._alarmed:
            self._alarmed = problem
            text = f"Audit log check FAILED, head not published: {problem}"
            if self.channel:
                self._enqueue(text)
            if self.webhook:
                self._post({"ok": False, "problem": problem, "text": text})
        return PublishResult(problem=problem)

    def _enqueue(self, text: str) -> None:
        assert self.channel is not None
        with self.sessions() as session:
            outbox.enqueue(
                db_session=session,
                kind=CHANNEL_KIND,
                payload={"channel": self.channel, "text": text, "thread_ts": None},
                now=self.clock(),
            )
            session.commit()

    def _post(self, body: dict[str, Any]) -> str:
        """POST JSON to the webhook; return an error line, or "" when it answered 2xx."""
        assert self.webhook is not None
        request = urllib.request.Request(
            self.webhook,
            data=json.dumps(body).encode("utf-8"),
            headers={"Content-Type": "application/json", "User-Agent": "remediate-audit-head"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            return f"webhook: HTTP {exc.code}"
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return f"webhook: {type(exc).__name__}: {reason}"
        return ""
