"""`build_app(settings, services)`: the Bolt app. Listeners ack first, then make one service call.

The ack is sent from the HTTP server's request thread; slow work runs after it on the app's own
bounded thread pool (`RemediateApp.work`); approved actions run on another, the action runner
(`bot/app/execution.py`), so no listener, webhook or job waits for one. What each listener does is in
`bot/app/listeners.py`; its one error path, `error_text`, turns our known errors into an ephemeral
reply and anything else into a short message with a trace id; no traceback reaches Slack.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urljoin

from slack_bolt import App
from slack_bolt.oauth import OAuthFlow
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk import WebClient

from bot.app.execution import ActionRunner
from bot.app.handoff import WorkProcess
from bot.app.listeners import Listeners, error_text, mount
from bot.app.requests import record_run
from bot.app.roster import Roster
from bot.errors import BotError
from bot.notify.cards import render_card
from bot.notify.delivery import OutboxWorker
from bot.notify.suggest import rank
from bot.services import Services
from bot.settings import Settings
from remediation.approvals.service import RequestView
from remediation.executors.routing import advisory

__all__ = ["RemediateApp", "build_app", "error_text", "web_client"]
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
        roster: Roster | None = None,
        handoff: WorkProcess | None = None,
    ) -> None:
        self.bolt = bolt
        self.services = services
        self.worker = worker
        self.work = work
        self.runner = runner
        self.roster = roster  # RBAC reloads and groups' sources (`bot.app.roster`)
        self.handoff = handoff  # the front's work process (`bot.app.handoff`); None in one process

    def close(self) -> None:
        """Let queued after-ack work and running actions finish, then stop the outbox worker (server stopped).

        The front first hands over what it queued for the work process and waits for it to finish.
        """
        if self.handoff is not None:
            self.handoff.close()
        if self.work is not None:
            self.work.shutdown(wait=True, cancel_futures=False)
        if self.runner is not None:
            self.runner.close()
        self.worker.stop()


def web_client(settings: Settings, *, timeout: int = 10) -> WebClient:
    """Return a Web API client for the settings' token and API URL (the outbox does the retrying)."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return WebClient(token=token, base_url=settings.slack_api_url, timeout=timeout, retry_handlers=[])


def authorize_url(api_url: str) -> str:
    """Return Slack's authorize page beside its Web API (https://slack.com/oauth/v2/authorize; the sandbox's)."""
    return urljoin(api_url, "../oauth/v2/authorize")


def oauth_flow(settings: Settings, services: Services) -> OAuthFlow | None:
    """Return Bolt's OAuth v2 flow on our store (/slack/install, /slack/oauth_redirect); None with one token.

    /slack/install answers 302 to Slack's authorize page with a one-use state (stored, and set as a
    cookie); the callback exchanges the code (`oauth.v2.access`) only for a state that is stored, unused,
    unexpired and matches the cookie, and saves the installation (an org-wide one too).
    """
    secret = settings.slack_client_secret
    if not settings.oauth or secret is None or services.installations is None:
        return None
    flow_settings = OAuthSettings(
        client_id=settings.slack_client_id,
        client_secret=secret.get_secret_value(),
        scopes=list(settings.slack_scopes),
        redirect_uri=settings.slack_redirect_uri,
        install_page_rendering_enabled=False,
        authorization_url=authorize_url(settings.slack_api_url),
        installation_store=services.installations,
        installation_store_bot_only=True,
        state_store=services.oauth_states,
    )
    return OAuthFlow(
        client=WebClient(base_url=settings.slack_api_url, retry_handlers=[]), settings=flow_settings
    )


def build_app(
    settings: Settings,
    services: Services,
    *,
    client: WebClient | None = None,
    work_threads: int = WORK_THREADS,
    socket_mode: bool = False,
    front: WorkProcess | None = None,
    work_process: bool = False,
) -> RemediateApp:
    """Build the Bolt app and its outbox worker (not started) from settings and services.

    The ack runs in the HTTP server's request thread (``process_before_response``), so an ack never
    waits for a free worker; the work after the ack runs on the app's own bounded pool of
    ``work_threads`` threads, queued when all are busy, so a burst of slow work cannot starve acks.
    With ``socket_mode`` the signing secret is optional: Slack's requests then arrive over the
    websocket the app opened itself, and /slack/events is not served.

    Split in two processes (`bot.app.handoff`): the ``front`` acks and hands the work after each ack
    (and each outbox wake) to the work process; the ``work_process`` app dispatches what the front
    already verified and deduplicated, so it checks no signature and records no request.
    """
    secret = None if work_process else settings.slack_signing_secret
    if secret is None and not socket_mode and not work_process:
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
        # OAuth mode: Bolt's install flow, and each request authorized with its workspace's installed bot
        oauth_flow=oauth_flow(settings, services),
        installation_store=services.installations,
    )

    def render(session: Any, incident_id: str) -> tuple[str, list[dict[str, Any]]]:
        ranking = rank(services, db_session=session, incident_id=incident_id)
        session.commit()  # the stored suggestions, before the Slack call (SQLite: release the write lock)
        return render_card(
            ranking,
            policy_name=services.policy.name,
            now=services.clock(),
            advisory=advisory(services.executor),
        )

    worker = OutboxWorker(services, api, render)
    if front is not None:
        worker.elsewhere = front.wake  # the work process's worker delivers

    def ran(view: RequestView, actor: str) -> None:
        record_run(services, view, actor)
        worker.wake()

    # Approved actions run on their own bounded pool, so intake and commands never wait for one.
    runner = ActionRunner(services, done=ran, threads=services.settings.action_threads)
    services.runner = runner
    roster = Roster(services, api)
    listeners = Listeners(services, worker, work, front=front, acked_elsewhere=work_process)
    roster.mount(bolt, listeners.after_ack)  # before the catch-all event listener that `mount` registers last
    roster.start()
    mount(bolt, listeners)
    return RemediateApp(bolt, services, worker, work, runner, roster, front)
