"""What the Bolt listeners do: ack, then one service call on the work pool, replies through the outbox.

`mount` registers the middleware (retry and replay dedupe) and the listeners on a Bolt app;
`Listeners` holds the work each does after its ack. `error_text` is the one error path: our known
errors become a line a person can act on, anything else a trace id (logged; the OpenTelemetry trace's
id when the request is traced); no traceback reaches Slack.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import Ack, App, BoltContext, BoltRequest, BoltResponse, Respond

from bot import tracing
from bot.app import edits, postmortems, surfaces
from bot.app.clicks import CardRef, click
from bot.app.commands import Outcome, run
from bot.app.handoff import WorkProcess, capture
from bot.app.tenancy import actor, workspace_key
from bot.errors import BotError
from bot.notify.delivery import OutboxWorker
from bot.notify.workspaces import acting_in
from bot.services import Services
from incidents_db import outbox
from incidents_db.errors import StoreError
from playbooks.errors import PlaybookError
from remediation.errors import RemediationError
from sim.errors import SimError

log = logging.getLogger("remediate.bot")
KNOWN_ERRORS: tuple[type[Exception], ...] = (BotError, RemediationError, StoreError, PlaybookError, SimError)
BUTTONS = re.compile(
    r"\A(approve|approve_undo|approve_canary|reject|why):\d+\Z"
)  # Bolt searches; \Z refuses a trailing newline
COMMAND = "/remediate"
# interactive payloads deduplicated by request fingerprint (replays of a signed request)
INTERACTIONS = frozenset({"block_actions", "view_submission", "view_closed", "shortcut", "message_action"})


def error_text(error: Exception) -> str:
    """Return what a person sees for an error: our message, or a trace id for a bug (logged)."""
    if isinstance(error, KNOWN_ERRORS):
        return f"⚠️ {error}"
    trace = tracing.trace_id() or uuid.uuid4().hex[:12]  # the real trace when one is recorded
    log.error("internal error %s", trace, exc_info=error)
    return f"⚠️ Something went wrong on our side (trace id {trace}); it is logged."


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


Reply = Callable[[str, bool], None]


class Listeners:
    """The work after each ack: a command, a mention or a button click, answered through the outbox."""

    def __init__(
        self,
        services: Services,
        worker: OutboxWorker,
        work: ThreadPoolExecutor,
        *,
        front: WorkProcess | None = None,
        acked_elsewhere: bool = False,
    ) -> None:
        self.services, self.worker, self.work = services, worker, work
        self.changed: list[Callable[[], None]] = []  # after a change (App Home republishes)
        self.front = front  # set in the front process: the work after an ack goes to the work process
        self.acked_elsewhere = acked_elsewhere  # set in the work process: the front checked and acked

    def first_delivery(self, event_id: str) -> bool:
        """Record an event id or request fingerprint; False when it was recorded before."""
        with self.services.sessions() as s:
            return outbox.first_delivery(db_session=s, event_id=event_id, now=self.services.clock())

    def after_ack(self, job: Callable[[], None], *, also_here: bool = False) -> None:
        """Run a job on the bounded work pool, its failure logged (the reply path has its own).

        In the front process the request is handed to the work process instead (`bot.app.handoff`),
        which dispatches it again and runs the job there; ``also_here`` runs it in both (each process
        keeps its own copy of what the job refreshes).
        """
        if self.front is not None and self.front.forward() and not also_here:
            return

        def logged() -> None:
            try:
                job()
            except Exception:
                log.exception("work after the ack failed")

        self.work.submit(tracing.bound(logged))  # the work stays in the request's trace

    def guarded(self, reply: Reply, work: Callable[[], Outcome], body: dict[str, Any] | None = None) -> None:
        """Run one service call and reply with its outcome, or with the error's text.

        The replies queued meanwhile go out with the token of the workspace ``body`` came from (OAuth).
        """
        with acting_in(workspace_key(self.services, body or {})):
            try:
                outcome = work()
            except Exception as exc:
                reply(error_text(exc), False)
                return
            if outcome.queued:
                self.worker.wake()
                for hook in self.changed:
                    hook()
            reply(outcome.reply.text, outcome.reply.in_channel)

    # Replies go through the outbox (429 and 5xx handling, nothing lost); the worker is woken at once.
    def command(self, body: dict[str, Any]) -> None:
        """Run a slash command; the reply goes to its response_url."""

        def reply(text: str, in_channel: bool) -> None:
            self.worker.respond(
                response_url=body.get("response_url"),
                channel=body.get("channel_id", ""),
                user=body.get("user_id", ""),
                text=text,
                in_channel=in_channel,
            )

        user = actor(self.services, body, body["user_id"])  # T.../U... from another workspace (OAuth)
        self.guarded(reply, lambda: run(self.services, user=user, text=body.get("text", "")), body)

    def mention(self, body: dict[str, Any], event: dict[str, Any], recorded: bool) -> None:
        """Run a command said to the bot in a channel, once per event id (retries dropped)."""
        event_id = body.get("event_id")
        if event_id and not recorded and not self.first_delivery(str(event_id)):
            return  # a retry recorded it first and was processed
        channel, user = event["channel"], event.get("user", "")

        def reply(text: str, in_channel: bool) -> None:
            if in_channel:
                self.worker.say(channel=channel, text=text, thread_ts=event.get("thread_ts"))
            else:
                self.worker.ephemeral(channel=channel, user=user, text=text)

        who = actor(self.services, body, user)
        self.guarded(reply, lambda: run(self.services, user=who, text=event.get("text", "")), body)

    def button(self, body: dict[str, Any], handler: Callable[..., Outcome] = click) -> None:
        """Act on a card button (approve, reject, why; or ``handler``'s); the reply is ephemeral to the clicker."""
        action = body["actions"][0]
        container, message, channel = (_mapping(body.get(key)) for key in ("container", "message", "channel"))
        card = CardRef(
            channel=_text(container.get("channel_id") or channel.get("id")),
            ts=_text(container.get("message_ts") or message.get("ts")),
        )
        user = body["user"]["id"]

        def reply(text: str, _in_channel: bool) -> None:
            self.worker.respond(
                response_url=body.get("response_url"),
                channel=(body.get("channel") or {}).get("id", ""),
                user=user,
                text=text,
                replace_original=False,
            )

        value, who = str(action.get("value", "")), actor(self.services, body, user)
        self.guarded(
            reply,
            lambda: handler(self.services, user=who, action_id=action["action_id"], value=value, card=card),
            body,
        )


def checks_replay(listeners: Listeners, body: dict[str, Any]) -> bool:
    """Whether this process checks a command or interaction for a replay, before anything of it runs.

    In one process: all of them, before the ack. Split in two (`bot.app.handoff`), the front checks
    only form submissions, whose ack does their work, and the work process the rest before their
    work, so no store write (and no wait for the store's write lock) delays the ack of a command or
    a click; a replay still gets an empty ack and runs nothing.
    """
    if "command" not in body and body.get("type") not in INTERACTIONS:
        return False
    form = body.get("type") == "view_submission"
    if listeners.front is not None:
        return form
    return not form if listeners.acked_elsewhere else True


def _mount_dedupe(bolt: App, listeners: Listeners) -> None:
    if listeners.acked_elsewhere:  # the front checked retries (its flag comes in the frame)
        _mount_replays(bolt, listeners)
        return

    @bolt.middleware
    def dedupe_retries(
        req: BoltRequest, body: dict[str, Any], context: BoltContext, next: Callable[[], None]
    ) -> BoltResponse | None:
        """Acknowledge and drop Events API retries of an event id already handled.

        Only retries (``X-Slack-Retry-Num``) touch the store before the ack; a first delivery records
        its event id after the ack, in the work on the pool. Whichever records the id first is processed.
        """
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        # Socket Mode sends retry_attempt 0 on first deliveries too (Bolt maps it to this header)
        if event_id and (req.headers.get("x-slack-retry-num") or ["0"])[0] not in ("", "0"):
            if not listeners.first_delivery(str(event_id)):
                return BoltResponse(status=200, body="", headers={"X-Slack-No-Retry": "1"})
            context["event_recorded"] = True
        next()
        return None

    _mount_replays(bolt, listeners)


def _mount_replays(bolt: App, listeners: Listeners) -> None:
    @bolt.middleware
    def drop_replays(req: BoltRequest, body: dict[str, Any], next: Callable[[], None]) -> BoltResponse | None:
        """Acknowledge and drop a replayed command or interaction (same timestamp and body as one seen).

        Runs after Bolt checked the signature and its 5-minute window. Slack never sends one command or
        interaction twice (each carries a fresh trigger id), so an identical signed request is a replay;
        its fingerprint, sha256 of ``X-Slack-Request-Timestamp`` and the raw body, costs one INSERT.
        Socket Mode requests carry no signature and Bolt does not pass their envelope id: not checked.
        """
        if req.mode == "http" and checks_replay(listeners, body):
            stamp = (req.headers.get("x-slack-request-timestamp") or [""])[0]
            fingerprint = hashlib.sha256(f"{stamp}:{req.raw_body}".encode()).hexdigest()
            if not listeners.first_delivery("req:" + fingerprint):
                log.warning("dropped a replayed Slack request (fingerprint %s)", fingerprint[:16])
                return BoltResponse(status=200, body="")
        next()
        return None


def mount(bolt: App, listeners: Listeners) -> None:
    """Register the dedupe middleware, the listeners, the catch-all acks and the error handler.

    The front process first registers the middleware that lets `after_ack` hand the request over; the
    work process does not check retries (the front did: its ``recorded`` flag arrives in the frame).
    """
    if listeners.front is not None:
        capture(bolt)
    _mount_dedupe(bolt, listeners)

    # The listeners ack, then hand the work to the pool themselves (not as Bolt lazy listeners, which
    # deep-copy the whole request, card blocks included, in the request thread before the ack).
    # The card's buttons and the command come first: Bolt tries the listeners in order, each try
    # costs about 30 us before the ack, and these two are most of the traffic (the other listeners'
    # action ids are disjoint from these; a bare `declare` goes on to the form's listener).
    @bolt.action(BUTTONS)
    def on_button(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        listeners.after_ack(lambda: listeners.button(body))

    @bolt.command(COMMAND, matchers=[lambda body: not surfaces.bare_declare(body)])
    def on_command(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        listeners.after_ack(lambda: listeners.command(body))

    surfaces.mount(bolt, listeners, error_text)  # App Home, modals, shortcuts, controls

    @bolt.event("app_mention")
    def on_mention(ack: Ack, body: dict[str, Any], event: dict[str, Any], context: BoltContext) -> None:
        ack()
        recorded = bool(context.get("event_recorded"))
        listeners.after_ack(lambda: listeners.mention(body, event, recorded))

    postmortems.mount(bolt, listeners, error_text)  # the postmortem card's buttons and edit modal
    edits.mount(bolt, listeners, error_text)  # a suggestion's Edit button and modal (docs/verification.md)

    def ack_now(ack: Ack) -> None:
        ack()

    anything = re.compile(".*")
    # Everything else Slack may send (other events, buttons of other apps' messages, shortcuts, modals)
    # is acknowledged and ignored, so Slack neither retries it nor shows the person an error.
    bolt.event(anything)(ack_now)
    bolt.action(anything)(ack_now)
    bolt.shortcut(anything)(ack_now)
    bolt.view(anything)(ack_now)
    bolt.view_closed(anything)(ack_now)
    bolt.options(anything)(ack_now)  # block_suggestion: without it Bolt answers 404

    @bolt.error
    def on_error(error: Exception, body: dict[str, Any], respond: Respond | None = None) -> None:
        """Listener errors (before the ack; the work after it has its own) become one ephemeral line."""
        text = error_text(error)
        if respond is not None and body.get("response_url"):
            respond(text=text, response_type="ephemeral", replace_original=False)
