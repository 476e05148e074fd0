"""`build_app(settings, services)`: the Bolt app. Listeners ack first, then make one service call.

The ack is sent from the HTTP server's request thread; slow work runs after it on the app's own
bounded thread pool (`RemediateApp.work`); approved actions run on another, the action runner
(`bot/app/execution.py`), so no listener, webhook or job waits for one. One error path,
`reply_error`, turns our known errors into an ephemeral reply and anything else into a short message
with a trace id; no traceback reaches Slack.
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
from slack_sdk import WebClient

from bot.app.clicks import CardRef, click
from bot.app.commands import Outcome, run
from bot.app.execution import ActionRunner
from bot.app.requests import record_run
from bot.errors import BotError
from bot.notify.cards import render_card
from bot.notify.delivery import OutboxWorker
from bot.notify.suggest import rank
from bot.services import Services
from bot.settings import Settings
from incidents_db import outbox
from incidents_db.errors import StoreError
from playbooks.errors import PlaybookError
from remediation.approvals.service import RequestView
from remediation.errors import RemediationError
from sim.errors import SimError

log = logging.getLogger("remediate.bot")
KNOWN_ERRORS: tuple[type[Exception], ...] = (BotError, RemediationError, StoreError, PlaybookError, SimError)
BUTTONS = re.compile(r"\A(approve|reject|why):\d+\Z")  # Bolt searches; \Z refuses a trailing newline
COMMAND = "/remediate"
# interactive payloads deduplicated by request fingerprint (replays of a signed request)
INTERACTIONS = frozenset({"block_actions", "view_submission", "view_closed", "shortcut", "message_action"})
WORK_THREADS = 8


class RemediateApp:
    """The Bolt app with what it needs beside it: the services and the outbox worker."""

    def __init__(
        self,
        bolt: App,
        services: Services,
        worker: OutboxWorker,
        work: ThreadPoolExecutor | None = None,
        runner: ActionRunner | None = None,
    ) -> None:
        self.bolt = bolt
        self.services = services
        self.worker = worker
        self.work = work
        self.runner = runner

    def close(self) -> None:
        """Let queued after-ack work and running actions finish, then stop the outbox worker (server stopped)."""
        if self.work is not None:
            self.work.shutdown(wait=True, cancel_futures=False)
        if self.runner is not None:
            self.runner.close()
        self.worker.stop()


def error_text(error: Exception) -> str:
    """Return what a person sees for an error: our message, or a trace id for a bug (logged)."""
    if isinstance(error, KNOWN_ERRORS):
        return f"⚠️ {error}"
    trace = uuid.uuid4().hex[:12]
    log.error("internal error %s", trace, exc_info=error)
    return f"⚠️ Something went wrong on our side (trace id {trace}); it is logged."


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def web_client(settings: Settings, *, timeout: int = 10) -> WebClient:
    """Return a Web API client for the settings' token and API URL (the outbox does the retrying)."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return WebClient(token=token, base_url=settings.slack_api_url, timeout=timeout, retry_handlers=[])


def build_app(
    settings: Settings,
    services: Services,
    *,
    client: WebClient | None = None,
    work_threads: int = WORK_THREADS,
    socket_mode: bool = False,
) -> RemediateApp:
    """Build the Bolt app and its outbox worker (not started) from settings and services.

    The ack runs in the HTTP server's request thread (``process_before_response``), so an ack never
    waits for a free worker; the work after the ack runs on the app's own bounded pool of
    ``work_threads`` threads, queued when all are busy, so a burst of slow work cannot starve acks.
    With ``socket_mode`` the signing secret is optional: Slack's requests then arrive over the
    websocket the app opened itself, and /slack/events is not served.
    """
    secret = settings.slack_signing_secret
    if secret is None and not socket_mode:
        raise BotError("SLACK_SIGNING_SECRET is not set; the app cannot verify Slack's requests without it")
    api = client or web_client(settings)
    work = ThreadPoolExecutor(max_workers=work_threads, thread_name_prefix="remediate-work")
    bolt = App(
        signing_secret=secret.get_secret_value() if secret else "",
        request_verification_enabled=secret is not None,
        client=api,
        token_verification_enabled=False,
        process_before_response=True,
        listener_executor=work,
        raise_error_for_unhandled_request=False,
    )

    def render(session: Any, incident_id: str) -> tuple[str, list[dict[str, Any]]]:
        ranking = rank(services, db_session=session, incident_id=incident_id)
        session.commit()  # the stored suggestions, before the Slack call (SQLite: release the write lock)
        return render_card(ranking, policy_name=services.policy.name, now=services.clock())

    worker = OutboxWorker(services, api, render)

    def ran(view: RequestView, actor: str) -> None:
        record_run(services, view, actor)
        worker.wake()

    # Approved actions run on their own bounded pool, so intake and commands never wait for one.
    runner = ActionRunner(services, done=ran, threads=services.settings.action_threads)
    services.runner = runner

    def finish(outcome: Outcome) -> Outcome:
        if outcome.queued:
            worker.wake()
        return outcome

    def guarded(reply: Callable[[str, bool], None], work: Callable[[], Outcome]) -> None:
        try:
            outcome = finish(work())
        except Exception as exc:
            reply(error_text(exc), False)
            return
        reply(outcome.reply.text, outcome.reply.in_channel)

    def first_delivery(event_id: str) -> bool:
        with services.sessions() as s:
            return outbox.first_delivery(db_session=s, event_id=event_id, now=services.clock())

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
            if not first_delivery(str(event_id)):
                return BoltResponse(status=200, body="", headers={"X-Slack-No-Retry": "1"})
            context["event_recorded"] = True
        next()
        return None

    @bolt.middleware
    def drop_replays(req: BoltRequest, body: dict[str, Any], next: Callable[[], None]) -> BoltResponse | None:
        """Acknowledge and drop a replayed command or interaction (same timestamp and body as one seen).

        Runs after Bolt checked the signature and its 5-minute window. Slack never sends one command or
        interaction twice (each carries a fresh trigger id), so an identical signed request is a replay;
        its fingerprint, sha256 of ``X-Slack-Request-Timestamp`` and the raw body, costs one INSERT.
        Socket Mode requests carry no signature and Bolt does not pass their envelope id: not checked.
        """
        if req.mode == "http" and ("command" in body or body.get("type") in INTERACTIONS):
            stamp = (req.headers.get("x-slack-request-timestamp") or [""])[0]
            fingerprint = hashlib.sha256(f"{stamp}:{req.raw_body}".encode()).hexdigest()
            if not first_delivery("req:" + fingerprint):
                log.warning("dropped a replayed Slack request (fingerprint %s)", fingerprint[:16])
                return BoltResponse(status=200, body="")
        next()
        return None

    def ack_now(ack: Ack) -> None:
        ack()

    def after_ack(job: Callable[[], None]) -> None:
        def logged() -> None:
            try:
                job()
            except Exception:
                log.exception("work after the ack failed")

        work.submit(logged)

    # Replies go through the outbox (429 and 5xx handling, nothing lost); the worker is woken at once.
    def command(body: dict[str, Any], respond: Respond) -> None:
        def reply(text: str, in_channel: bool) -> None:
            worker.respond(
                response_url=body.get("response_url"),
                channel=body.get("channel_id", ""),
                user=body.get("user_id", ""),
                text=text,
                in_channel=in_channel,
            )

        guarded(reply, lambda: run(services, user=body["user_id"], text=body.get("text", "")))

    def mention(body: dict[str, Any], event: dict[str, Any], client: WebClient, recorded: bool) -> None:
        event_id = body.get("event_id")
        if event_id and not recorded and not first_delivery(str(event_id)):
            return  # a retry recorded it first and was processed
        channel, user = event["channel"], event.get("user", "")

        def reply(text: str, in_channel: bool) -> None:
            if in_channel:
                worker.say(channel=channel, text=text, thread_ts=event.get("thread_ts"))
            else:
                worker.ephemeral(channel=channel, user=user, text=text)

        guarded(reply, lambda: run(services, user=user, text=event.get("text", "")))

    def button(body: dict[str, Any], respond: Respond) -> None:
        action = body["actions"][0]
        container, message, channel = (_mapping(body.get(key)) for key in ("container", "message", "channel"))
        card = CardRef(
            channel=_text(container.get("channel_id") or channel.get("id")),
            ts=_text(container.get("message_ts") or message.get("ts")),
        )

        def reply(text: str, _in_channel: bool) -> None:
            worker.respond(
                response_url=body.get("response_url"),
                channel=(body.get("channel") or {}).get("id", ""),
                user=body["user"]["id"],
                text=text,
                replace_original=False,
            )

        guarded(
            reply,
            lambda: click(
                services,
                user=body["user"]["id"],
                action_id=action["action_id"],
                value=str(action.get("value", "")),
                card=card,
            ),
        )

    # The listeners ack, then hand the work to the pool themselves (not as Bolt lazy listeners, which
    # deep-copy the whole request, card blocks included, in the request thread before the ack).
    @bolt.command(COMMAND)
    def on_command(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        after_ack(lambda: command(body, respond))

    @bolt.event("app_mention")
    def on_mention(
        ack: Ack, body: dict[str, Any], event: dict[str, Any], client: WebClient, context: BoltContext
    ) -> None:
        ack()
        recorded = bool(context.get("event_recorded"))
        after_ack(lambda: mention(body, event, client, recorded))

    @bolt.action(BUTTONS)
    def on_button(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        after_ack(lambda: button(body, respond))

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

    return RemediateApp(bolt, services, worker, work, runner)
